/** A value that survives JSON.stringify/parse unchanged: what handlers take and return. */
export type JsonPrimitive = string | number | boolean | null;
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/**
 * An object with no prototype, for maps keyed by user input (task names, params), so that a key
 * such as `__proto__` or `constructor` is a plain key and can never reach Object.prototype.
 */
export function createDict<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

/** Builds a prototype-free dict from entries (see createDict). */
export function dictFromEntries<T>(entries: Iterable<readonly [string, T]>): Record<string, T> {
  const dict = createDict<T>();
  for (const [key, value] of entries) dict[key] = value;
  return dict;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}
