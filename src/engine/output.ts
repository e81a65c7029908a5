import type { JsonValue } from '../core/json.js';
import { WeftError } from '../errors.js';

/**
 * Turns what a handler returned into the task's output: `undefined` becomes null, and anything that
 * would not survive JSON.stringify/parse unchanged is refused with HANDLER_OUTPUT_INVALID (not
 * retryable: the same code returns the same shape again), naming the task and the offending path.
 * Object keys whose value is undefined are dropped, as JSON.stringify drops them, so that every
 * store returns the same output.
 */
export function normaliseOutput(value: unknown, task: string): JsonValue {
  if (value === undefined || value === null) return null;
  // Plain values skip the walk: most outputs are small, many are null.
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  return copyJson(value, task, '$', new Set());
}

function invalid(task: string, path: string, problem: string): WeftError {
  return new WeftError(
    'HANDLER_OUTPUT_INVALID',
    `the output of task "${task}" is not JSON: ${path} ${problem}`,
    {
      retryable: false,
      hint: 'return plain objects, arrays, strings, finite numbers, booleans or null',
    },
  );
}

function describe(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'bigint') return 'a BigInt';
  if (typeof value === 'symbol') return 'a symbol';
  if (value === undefined) return 'undefined';
  if (typeof value === 'object' && value !== null) {
    const name = (Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null)?.constructor
      ?.name;
    return name ? `a ${name}` : 'an object of a class';
  }
  return typeof value;
}

function keyPath(path: string, key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function copyJson(value: unknown, task: string, path: string, stack: Set<object>): JsonValue {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw invalid(task, path, `is ${String(value)}, which JSON cannot hold`);
    return value;
  }
  if (typeof value !== 'object') throw invalid(task, path, `is ${describe(value)}`);
  const object = value;
  if (stack.has(object)) throw invalid(task, path, 'refers back to itself (a cycle)');
  stack.add(object);
  try {
    if (Array.isArray(object)) {
      const out: JsonValue[] = [];
      for (let i = 0; i < object.length; i++) {
        const item: unknown = object[i];
        if (item === undefined) throw invalid(task, `${path}[${i}]`, 'is undefined');
        out.push(copyJson(item, task, `${path}[${i}]`, stack));
      }
      return out;
    }
    const proto = Object.getPrototypeOf(object) as unknown;
    if (proto !== Object.prototype && proto !== null) throw invalid(task, path, `is ${describe(object)}`);
    const out: Record<string, JsonValue> = {};
    for (const key of Object.keys(object)) {
      const item = (object as Record<string, unknown>)[key];
      if (item === undefined) continue;
      const copy = copyJson(item, task, keyPath(path, key), stack);
      // Defined, not assigned: assigning "__proto__" would replace the copy's prototype, while
      // JSON.parse (what every store hands back) makes it an ordinary own key.
      if (key === '__proto__')
        Object.defineProperty(out, key, {
          value: copy,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      else out[key] = copy;
    }
    return out;
  } finally {
    stack.delete(object);
  }
}
