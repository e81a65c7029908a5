/**
 * Quotes `text` as exactly one POSIX shell word. Single quotes make everything literal inside
 * them; a single quote itself is written as '\'' (close, escaped quote, reopen). This is what
 * keeps a parameter substituted into a `shell` command from ever injecting shell syntax.
 */
export function quoteShellWord(text: string): string {
  if (text !== '' && /^[A-Za-z0-9_./:=@%+,-]+$/.test(text)) return text;
  return `'${text.replace(/'/g, `'\\''`)}'`;
}
