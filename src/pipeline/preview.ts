import { isPlainObject, type JsonObject, type JsonValue } from '../core/json.js';
import {
  evaluateExpression,
  hasExpression,
  parseTemplate,
  referencesOf,
  type ExpressionScope,
  type QuoteFunction,
} from './expressions.js';

/**
 * Substitutes what is known before a run starts (params, env, run fields) and leaves what is not
 * (upstream task outputs) as the expression text, so `weft plan` shows each task's arguments as
 * close to what will run as can be known without running anything. Shell-quoting is applied the
 * way the engine applies it, so the plan shows the exact command.
 */
export function previewTemplate(
  value: JsonValue,
  scope: Omit<ExpressionScope, 'tasks'>,
  options: { quoteKeys?: readonly string[]; quote?: QuoteFunction } = {},
): JsonValue {
  const full: ExpressionScope = { ...scope, tasks: {} };
  const walk = (node: JsonValue, quote: QuoteFunction | undefined): JsonValue => {
    if (typeof node === 'string') return previewString(node, full, quote);
    if (Array.isArray(node)) return node.map((item) => walk(item, quote));
    if (isPlainObject(node)) {
      const result: JsonObject = {};
      for (const [key, child] of Object.entries(node)) {
        Object.defineProperty(result, key, { value: walk(child, quote), enumerable: true, writable: true });
      }
      return result;
    }
    return node;
  };
  if (isPlainObject(value) && options.quote && options.quoteKeys?.length) {
    const result: JsonObject = {};
    for (const [key, child] of Object.entries(value)) {
      const quote = options.quoteKeys.includes(key) && typeof child === 'string' ? options.quote : undefined;
      Object.defineProperty(result, key, { value: walk(child, quote), enumerable: true, writable: true });
    }
    return result;
  }
  return walk(value, undefined);
}

function previewString(text: string, scope: ExpressionScope, quote: QuoteFunction | undefined): JsonValue {
  if (!hasExpression(text)) return text;
  const { parts, errors } = parseTemplate(text);
  if (errors.length > 0) return text;
  const known = (part: (typeof parts)[number]) =>
    part.kind === 'expr' && part.expr !== null && referencesOf(part.expr).every((r) => r.root !== 'tasks');
  const [only] = parts;
  if (parts.length === 1 && only?.kind === 'expr') {
    return known(only) ? evaluateExpression(only.expr!, scope, only.source) : text;
  }
  let result = '';
  for (const part of parts) {
    if (part.kind === 'text') result += part.text;
    else if (known(part)) {
      const value = evaluateExpression(part.expr!, scope, part.source);
      const piece = value === null ? '' : typeof value === 'string' ? value : JSON.stringify(value);
      result += quote ? quote(piece, { template: text, offset: part.offset }) : piece;
    } else result += `\${{ ${part.source} }}`;
  }
  return result;
}
