/**
 * A URL with its password replaced by `***` (what may appear in messages and logs). Lives with the
 * PostgreSQL adapter, the one store addressed by URL; open-store.ts re-exports it.
 */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    // Not parseable: hide everything between "://" and "@", where a password would be.
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}
