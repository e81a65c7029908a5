import { ApiError, badRequest } from './api-error.js';

/**
 * Request paths, parsed once and strictly: each segment is percent-decoded exactly once, and a
 * path whose segments could mean something else after decoding (`..`, an encoded `/` or `\`, a
 * NUL) is refused rather than normalised, so an id can never smuggle in another path.
 */

export type Segments = readonly string[];

export function parsePath(rawPath: string): Segments {
  if (!rawPath.startsWith('/')) throw badRequest('the request path must start with /');
  if (rawPath === '/') return [];
  const raw = rawPath.slice(1).split('/');
  return raw.map((segment) => {
    if (segment === '') throw new ApiError(404, 'NOT_FOUND', 'no such route (empty path segment)');
    if (/%(2f|5c|00)/i.test(segment)) throw badRequest('encoded "/", "\\" or NUL in a path segment');
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      throw badRequest('malformed percent-encoding in the path');
    }
    if (decoded === '..' || decoded === '.') throw badRequest('"." and ".." are not allowed in paths');
    if (decoded.includes('/') || decoded.includes('\\') || decoded.includes('\0')) {
      throw badRequest('"/", "\\" or NUL in a path segment');
    }
    return decoded;
  });
}

/** `/api/runs/:id/logs` -> a matcher giving `{ id }` for exactly that many segments. */
export function compilePattern(pattern: string): (segments: Segments) => Record<string, string> | null {
  const parts = pattern === '/' ? [] : pattern.slice(1).split('/');
  return (segments) => {
    if (segments.length !== parts.length) return null;
    const params: Record<string, string> = Object.create(null) as Record<string, string>;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      const segment = segments[i]!;
      if (part.startsWith(':')) params[part.slice(1)] = segment;
      else if (part !== segment) return null;
    }
    return params;
  };
}

/** Query parameters, with only the names a route accepts (anything else is a 400). */
export function readQuery(search: URLSearchParams, allowed: readonly string[]): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [key, value] of search) {
    if (!allowed.includes(key)) {
      throw badRequest(
        `unknown query parameter "${key}"${allowed.length > 0 ? ` (allowed: ${allowed.join(', ')})` : ''}`,
      );
    }
    if (key in out) throw badRequest(`query parameter "${key}" given twice`);
    out[key] = value;
  }
  return out;
}

export function readInteger(
  query: Record<string, string>,
  name: string,
  options: { min: number; max: number; fallback: number },
): number {
  const text = query[name];
  if (text === undefined || text === '') return options.fallback;
  if (!/^\d+$/.test(text)) throw badRequest(`"${name}" must be a whole number, got ${JSON.stringify(text)}`);
  const n = Number(text);
  if (n < options.min || n > options.max) {
    throw badRequest(`"${name}" must be between ${options.min} and ${options.max}, got ${n}`);
  }
  return n;
}
