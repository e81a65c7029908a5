import { isPlainObject } from '../core/json.js';

/**
 * Compares an expected value with what happened and lists every difference as
 * `path: expected X, got Y`. Objects match as a subset (the actual object may hold more keys, so a
 * test states only what it cares about); arrays match element by element and in length; scalars
 * must be equal.
 */
export function matchSubset(expected: unknown, actual: unknown, path: string): string[] {
  if (isPlainObject(expected)) {
    if (!isPlainObject(actual)) return [mismatch(path, expected, actual)];
    return Object.keys(expected).flatMap((key) =>
      Object.hasOwn(actual, key)
        ? matchSubset(expected[key], actual[key], `${path}.${key}`)
        : [`${path}.${key}: expected ${show(expected[key])}, but there is no such key`],
    );
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return [mismatch(path, expected, actual)];
    if (actual.length !== expected.length) {
      return [`${path}: expected ${expected.length} item(s), got ${actual.length}: ${show(actual)}`];
    }
    return expected.flatMap((item, i) => matchSubset(item, actual[i], `${path}[${i}]`));
  }
  return Object.is(expected, actual) || (expected === 0 && actual === 0)
    ? []
    : [mismatch(path, expected, actual)];
}

function mismatch(path: string, expected: unknown, actual: unknown): string {
  return `${path}: expected ${show(expected)}, got ${show(actual)}`;
}

/** One line, cut when long: a diff line names the difference, it does not dump the output. */
export function show(value: unknown): string {
  const text = value === undefined ? 'nothing' : JSON.stringify(value);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}
