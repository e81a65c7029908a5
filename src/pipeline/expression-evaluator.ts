import { isPlainObject, type JsonObject, type JsonValue } from '../core/json.js';
import { WeftError } from '../errors.js';
import { formatPath, type Expr, type PathSegment } from './expression-parser.js';

/**
 * The interpreter over an expression's AST (why it is safe, and the value rules: expressions.ts).
 */

export interface ExpressionScope {
  params: JsonObject;
  env: Readonly<Record<string, string | undefined>>;
  /** Tasks that have finished (their output is null unless they succeeded). */
  tasks: Record<string, { output: JsonValue; state?: string }>;
  run: { id: string; scheduled_for: string | null; attempt: number };
}

/** JavaScript-like truthiness over JSON values: false, null, 0 and '' are falsy. */
export function isTruthy(value: JsonValue): boolean {
  return !(value === null || value === false || value === 0 || value === '');
}

/** Evaluates a parsed expression; `source` is the text used in error messages. */
export function evaluateExpression(expr: Expr, scope: ExpressionScope, source: string): JsonValue {
  const fail = (message: string): never => {
    throw new WeftError('EXPRESSION_FAILED', `expression \`${source}\` failed: ${message}`, {
      retryable: false,
    });
  };
  const evaluate = (node: Expr): JsonValue => {
    switch (node.kind) {
      case 'literal':
        return node.value;
      case 'path':
        return readPath(node.root, node.segments, scope, fail);
      case 'not':
        return !isTruthy(evaluate(node.operand));
      case 'logical': {
        const left = evaluate(node.left);
        if (node.op === '&&') return isTruthy(left) ? evaluate(node.right) : left;
        return isTruthy(left) ? left : evaluate(node.right);
      }
      case 'compare': {
        const left = evaluate(node.left);
        const right = evaluate(node.right);
        if (node.op === '==') return jsonEqual(left, right);
        if (node.op === '!=') return !jsonEqual(left, right);
        const comparable =
          (typeof left === 'number' && typeof right === 'number') ||
          (typeof left === 'string' && typeof right === 'string');
        if (!comparable)
          return fail(`cannot compare ${typeName(left)} with ${typeName(right)} using ${node.op}`);
        const l = left;
        const r = right;
        switch (node.op) {
          case '<':
            return l < r;
          case '<=':
            return l <= r;
          case '>':
            return l > r;
          case '>=':
            return l >= r;
        }
      }
    }
  };
  return evaluate(expr);
}

function readPath(
  root: string,
  segments: readonly PathSegment[],
  scope: ExpressionScope,
  fail: (message: string) => never,
): JsonValue {
  const name = segments[0];
  switch (root) {
    case 'params': {
      if (typeof name !== 'string' || !Object.hasOwn(scope.params, name))
        return fail(`param "${String(name)}" is not defined`);
      return descend(scope.params[name]!, root, segments, 1, fail);
    }
    case 'env': {
      if (typeof name !== 'string' || !Object.hasOwn(scope.env, name)) return null;
      return scope.env[name] ?? null;
    }
    case 'run': {
      if (name === 'id') return scope.run.id;
      if (name === 'scheduled_for') return scope.run.scheduled_for;
      if (name === 'attempt') return scope.run.attempt;
      return fail(`unknown field run.${String(name)}`);
    }
    case 'tasks': {
      if (typeof name !== 'string' || !Object.hasOwn(scope.tasks, name)) {
        return fail(`task "${String(name)}" has not finished before this point (it must be upstream)`);
      }
      const task = scope.tasks[name]!;
      if (segments[1] === 'state') return task.state ?? null;
      if (segments.length > 2 && task.output === null) {
        return fail(`task "${name}" has no output${task.state ? ` (it ${task.state})` : ''}`);
      }
      return descend(task.output, root, segments, 2, fail);
    }
    default:
      return fail(`unknown root "${root}"`);
  }
}

function descend(
  start: JsonValue,
  root: string,
  segments: readonly PathSegment[],
  from: number,
  fail: (message: string) => never,
): JsonValue {
  let value: JsonValue = start;
  for (let i = from; i < segments.length; i++) {
    const segment = segments[i]!;
    if (Array.isArray(value) && typeof segment === 'number' && segment < value.length) {
      value = value[segment]!;
    } else if (isPlainObject(value) && typeof segment === 'string' && Object.hasOwn(value, segment)) {
      value = value[segment] as JsonValue;
    } else {
      return fail(
        `${formatPath(root, segments.slice(0, i + 1))} does not exist (${formatPath(root, segments.slice(0, i))} is ${typeName(value)})`,
      );
    }
  }
  return value;
}

function typeName(value: JsonValue): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

/** Structural equality of JSON values (key order does not matter). */
export function jsonEqual(a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true;
  if (Array.isArray(a))
    return Array.isArray(b) && a.length === b.length && a.every((item, i) => jsonEqual(item, b[i]!));
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = Object.keys(a);
    if (keys.length !== Object.keys(b).length) return false;
    return keys.every((key) => Object.hasOwn(b, key) && jsonEqual(a[key] as JsonValue, b[key] as JsonValue));
  }
  return false;
}
