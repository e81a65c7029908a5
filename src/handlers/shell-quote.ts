import { WeftError } from '../errors.js';
import { parseTemplate, type SubstitutionSite } from '../pipeline/expressions.js';
import {
  describeShellRefusal,
  quoteForShellContext,
  scanShellTemplate,
  type ShellContext,
} from './shell-context.js';

/**
 * Quotes `text` as exactly one POSIX shell word. Single quotes make everything literal inside
 * them; a single quote itself is written as '\'' (close, escaped quote, reopen). Used to show
 * words (`weft plan`, error messages); a value substituted into a command goes through
 * `quoteShellSubstitution`, which knows where in the command it lands.
 */
export function quoteShellWord(text: string): string {
  if (text !== '' && /^[A-Za-z0-9_./:=@%+,-]+$/.test(text)) return text;
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** Contexts by expression offset, per template: a task's command is quoted again on every attempt. */
const contextCache = new Map<string, Map<number, ShellContext>>();
const CONTEXT_CACHE_SIZE = 256;

/** The context of each expression in a shell command template, by the offset of its `${{`. */
export function shellContextsOf(template: string): Map<number, ShellContext> {
  let contexts = contextCache.get(template);
  if (contexts === undefined) {
    const { parts } = parseTemplate(template);
    const found = scanShellTemplate(parts);
    contexts = new Map();
    let hole = 0;
    for (const part of parts) if (part.kind === 'expr') contexts.set(part.offset, found[hole++]!);
    // Plans are few and their commands fixed: a bound, not an LRU, is enough.
    if (contextCache.size >= CONTEXT_CACHE_SIZE) contextCache.clear();
    contextCache.set(template, contexts);
  }
  return contexts;
}

/**
 * The text to splice into a shell command for a value substituted at `site`, so that the shell
 * reads back exactly `value` (see `quoteForShellContext`). Where no quoting is safe the value is
 * never spliced: EXPRESSION_FAILED, not retryable. `weft validate` refuses such a command
 * (EXPRESSION_SHELL_CONTEXT), so this is reached only by a plan compiled without the handler.
 */
export function quoteShellSubstitution(value: string, site: SubstitutionSite): string {
  const context = shellContextsOf(site.template).get(site.offset);
  if (context === undefined) {
    // Not an expression of this template: a caller bug, and splicing unquoted would be unsafe.
    throw new WeftError('INTERNAL', `no expression at offset ${site.offset} of a shell command`, {
      retryable: false,
    });
  }
  if (context.kind !== 'refused') return quoteForShellContext(value, context);
  const { where, advice } = describeShellRefusal(context.refusal);
  throw new WeftError(
    'EXPRESSION_FAILED',
    `the expression at character ${site.offset + 1} of the shell command is ${where}; weft cannot quote a value there`,
    { retryable: false, hint: advice },
  );
}
