import { WeftError } from '../errors.js';
import { isPlainObject, type JsonObject, type JsonValue } from '../core/json.js';
import { evaluateExpression, isTruthy, type ExpressionScope } from './expression-evaluator.js';
import {
  formatPath,
  parseExpression,
  readQuoted,
  type Expr,
  type ExpressionError,
  type PathSegment,
} from './expression-parser.js';

/**
 * `${{ … }}` templates in `with`, `when` and hooks. Static checks use `scanTemplates` and
 * `referencesOf`; the engine uses `resolveTemplate` and `evaluateCondition` just before each attempt.
 *
 * Evaluation (expression-evaluator.ts) is an interpreter over a tiny AST: no eval, no Function,
 * and every property read goes through `Object.hasOwn` on plain objects and arrays, so nothing
 * reaches a prototype.
 *
 * Value rules:
 *  - a string that is exactly one `${{ … }}` keeps the expression's JSON type;
 *  - inside a longer string the value becomes text: strings as they are, numbers and booleans as
 *    written, objects and arrays as JSON, and null as '' (so an unset env var adds nothing);
 *  - an unset env var is `null`;
 *  - `a && b`, `a || b` return one of their operands (as in JavaScript), so
 *    `${{ params.label || 'none' }}` works; false, null, 0 and '' are falsy, everything else truthy.
 */

export {
  EXPRESSION_ROOTS,
  RUN_FIELDS,
  TASK_FIELDS,
  formatPath,
  parseExpression,
  type CompareOp,
  type Expr,
  type ExpressionError,
  type ExpressionRoot,
  type PathSegment,
} from './expression-parser.js';
export { evaluateExpression, isTruthy, jsonEqual, type ExpressionScope } from './expression-evaluator.js';

export type TemplatePart =
  | { kind: 'text'; text: string }
  | {
      kind: 'expr';
      /** The text between `${{` and `}}`, trimmed. */
      source: string;
      /** Offset of `${{` in the template. */
      offset: number;
      expr: Expr | null;
    };

const OPEN = '${{';
const CLOSE = '}}';

/** Splits a string into text and expressions. Never throws; problems come back as errors. */
export function parseTemplate(text: string): { parts: TemplatePart[]; errors: ExpressionError[] } {
  const parts: TemplatePart[] = [];
  const errors: ExpressionError[] = [];
  let textStart = 0;
  let search = 0;
  for (;;) {
    const open = text.indexOf(OPEN, search);
    if (open < 0) break;
    let close = -1;
    let i = open + OPEN.length;
    while (i < text.length) {
      const ch = text[i];
      if (ch === '"' || ch === "'") {
        const read = readQuoted(text, i);
        if ('error' in read) {
          // A broken string literal: end at the next `}}` and let the parser report the string.
          close = text.indexOf(CLOSE, i);
          break;
        }
        i = read.end;
        continue;
      }
      if (text.startsWith(CLOSE, i)) {
        close = i;
        break;
      }
      i += 1;
    }
    if (close < 0) {
      errors.push({ message: 'unterminated expression: "${{" without a matching "}}"', offset: open });
      break;
    }
    if (open > textStart) parts.push({ kind: 'text', text: text.slice(textStart, open) });
    const inner = text.slice(open + OPEN.length, close);
    const parsed = parseExpression(inner, open + OPEN.length);
    errors.push(...parsed.errors);
    parts.push({ kind: 'expr', source: inner.trim(), offset: open, expr: parsed.expr });
    textStart = search = close + CLOSE.length;
  }
  if (textStart < text.length) parts.push({ kind: 'text', text: text.slice(textStart) });
  return { parts, errors };
}

export function hasExpression(text: string): boolean {
  return text.includes(OPEN);
}

/** True when `value` holds a `${{` anywhere (a string, or inside an object or array). */
export function containsExpression(value: unknown): boolean {
  if (typeof value === 'string') return hasExpression(value);
  if (Array.isArray(value)) return value.some(containsExpression);
  if (isPlainObject(value)) return Object.values(value).some(containsExpression);
  return false;
}

/**
 * A `when` condition: `${{ EXPR }}` or a bare `EXPR`. Anything else (text around an expression,
 * two expressions) is an error, because a condition must be one value.
 */
export function parseCondition(text: string): { expr: Expr | null; errors: ExpressionError[] } {
  if (!hasExpression(text)) return parseExpression(text, 0);
  const { parts, errors } = parseTemplate(text);
  if (errors.length > 0) return { expr: null, errors };
  const meaningful = parts.filter((part) => part.kind === 'expr' || part.text.trim() !== '');
  const only = meaningful[0];
  if (meaningful.length !== 1 || only?.kind !== 'expr') {
    return {
      expr: null,
      errors: [
        { message: 'a condition must be a single expression: ${{ … }} or a bare expression', offset: 0 },
      ],
    };
  }
  return { expr: only.expr, errors: [] };
}

export interface ExpressionSite {
  /** Path of the string inside the scanned value. */
  path: PathSegment[];
  /** The expression text (between `${{` and `}}`, trimmed). */
  text: string;
  /** Offset of `${{` in the string. */
  offset: number;
  expr: Expr;
}

export interface TemplateSyntaxError {
  path: PathSegment[];
  message: string;
  /** Offset of the problem in the string. */
  offset: number;
}

/** Every expression and every syntax error in a JSON value (keys are not templates). */
export function scanTemplates(value: JsonValue | undefined): {
  expressions: ExpressionSite[];
  errors: TemplateSyntaxError[];
} {
  const expressions: ExpressionSite[] = [];
  const errors: TemplateSyntaxError[] = [];
  // Iterative, so a deeply nested `with` cannot overflow the stack.
  const stack: { value: unknown; path: PathSegment[] }[] = [{ value, path: [] }];
  while (stack.length > 0) {
    const { value: current, path } = stack.pop()!;
    if (typeof current === 'string') {
      if (!hasExpression(current)) continue;
      const parsed = parseTemplate(current);
      for (const error of parsed.errors) errors.push({ path, ...error });
      for (const part of parsed.parts) {
        if (part.kind === 'expr' && part.expr) {
          expressions.push({ path, text: part.source, offset: part.offset, expr: part.expr });
        }
      }
    } else if (Array.isArray(current)) {
      for (let i = current.length - 1; i >= 0; i--) stack.push({ value: current[i], path: [...path, i] });
    } else if (isPlainObject(current)) {
      const keys = Object.keys(current);
      for (let i = keys.length - 1; i >= 0; i--) {
        stack.push({ value: current[keys[i]!], path: [...path, keys[i]!] });
      }
    }
  }
  return { expressions, errors };
}

/** The expressions in a value (for static checks); see `scanTemplates` for the errors too. */
export function collectExpressions(value: JsonValue): ExpressionSite[] {
  return scanTemplates(value).expressions;
}

export interface Reference {
  /** `params`, `env`, `tasks`, `run`, or an unknown root the checker reports. */
  root: string;
  /** params/env/tasks: the name after the root; run: the field. */
  name: string | null;
  /** tasks only: `output` or `state`. */
  field: string | null;
  /** The path as written, e.g. `tasks.a.output.rows[0]`. */
  text: string;
  offset: number;
}

/** Every path an expression reads, in source order. */
export function referencesOf(expr: Expr): Reference[] {
  const found: Reference[] = [];
  const stack: Expr[] = [expr];
  while (stack.length > 0) {
    const node = stack.pop()!;
    switch (node.kind) {
      case 'literal':
        break;
      case 'path': {
        const [name, field] = node.segments;
        found.push({
          root: node.root,
          name: typeof name === 'string' ? name : null,
          field: node.root === 'tasks' && typeof field === 'string' ? field : null,
          text: formatPath(node.root, node.segments),
          offset: node.offset,
        });
        break;
      }
      case 'not':
        stack.push(node.operand);
        break;
      case 'compare':
      case 'logical':
        stack.push(node.right, node.left);
        break;
    }
  }
  return found.sort((a, b) => a.offset - b.offset);
}

/** Where an expression is substituted: the whole string, and the offset of the expression's `${{`. */
export interface SubstitutionSite {
  template: string;
  offset: number;
}

/** Turns a substituted value into the text spliced in; told where, since the right quoting depends on it. */
export type QuoteFunction = (text: string, site: SubstitutionSite) => string;

export interface ResolveOptions {
  /** Top-level keys of `with` whose strings get each substituted expression passed through `quote`. */
  quoteKeys?: readonly string[];
  quote?: QuoteFunction;
}

/**
 * Substitutes every expression in `value`. Throws `EXPRESSION_FAILED` (not retryable: the same
 * inputs fail the same way) naming the expression when one cannot be evaluated.
 */
export function resolveTemplate(
  value: JsonValue,
  scope: ExpressionScope,
  options: ResolveOptions = {},
): JsonValue {
  const { quoteKeys = [], quote } = options;
  if (isPlainObject(value) && quote && quoteKeys.length > 0) {
    const result: JsonObject = {};
    for (const [key, child] of Object.entries(value)) {
      // Only a string is a script: an argv array (shell's `command: [...]`) reaches its program
      // without a shell, so quoting its items would hand the program literal quote characters.
      const quoted = quoteKeys.includes(key) && typeof child === 'string' ? quote : undefined;
      defineOwn(result, key, resolveValue(child, scope, quoted));
    }
    return result;
  }
  return resolveValue(value, scope, undefined);
}

function resolveValue(value: JsonValue, scope: ExpressionScope, quote: QuoteFunction | undefined): JsonValue {
  if (typeof value === 'string') return resolveString(value, scope, quote);
  if (Array.isArray(value)) return value.map((item) => resolveValue(item, scope, quote));
  if (isPlainObject(value)) {
    const result: JsonObject = {};
    for (const [key, child] of Object.entries(value))
      defineOwn(result, key, resolveValue(child, scope, quote));
    return result;
  }
  return value;
}

/** Sets a key as an own data property, so a user key `__proto__` stays data and never sets a prototype. */
function defineOwn(target: JsonObject, key: string, value: JsonValue): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function resolveString(text: string, scope: ExpressionScope, quote: QuoteFunction | undefined): JsonValue {
  if (!hasExpression(text)) return text;
  const { parts, errors } = parseTemplate(text);
  if (errors.length > 0) {
    throw new WeftError(
      'EXPRESSION_FAILED',
      `invalid expression in ${JSON.stringify(text)}: ${errors[0]!.message}`,
      {
        retryable: false,
      },
    );
  }
  const [only] = parts;
  if (parts.length === 1 && only?.kind === 'expr') return evaluateExpression(only.expr!, scope, only.source);
  let result = '';
  for (const part of parts) {
    if (part.kind === 'text') {
      result += part.text;
    } else {
      const piece = toText(evaluateExpression(part.expr!, scope, part.source));
      result += quote ? quote(piece, { template: text, offset: part.offset }) : piece;
    }
  }
  return result;
}

function toText(value: JsonValue): string {
  if (value === null) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

/** Evaluates a task's `when`: a boolean, `${{ EXPR }}` or a bare `EXPR`. */
export function evaluateCondition(when: string | boolean, scope: ExpressionScope): boolean {
  if (typeof when === 'boolean') return when;
  const { expr, errors } = parseCondition(when);
  if (!expr) {
    throw new WeftError(
      'EXPRESSION_FAILED',
      `invalid condition ${JSON.stringify(when)}: ${errors[0]?.message ?? 'empty'}`,
      {
        retryable: false,
      },
    );
  }
  return isTruthy(evaluateExpression(expr, scope, when.trim()));
}
