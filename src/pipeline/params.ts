import { createDict, isPlainObject, type JsonObject, type JsonValue } from '../core/json.js';
import type { ParamSpec, ParamType } from './spec.js';
import { jsonEqual } from './expressions.js';
import { suggest } from './suggest.js';

/**
 * Run parameters: the values given on the command line (`--param k=v`, strings coerced by the
 * declared type) or as JSON (API, `--params-file`: taken as they are), checked against the
 * pipeline's `params` declarations, with defaults applied.
 */

const EXPECTED: Record<ParamType, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  object: 'a JSON object',
  array: 'a JSON array',
};

function matchesType(type: ParamType, value: JsonValue): boolean {
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value);
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'boolean':
      return typeof value === 'boolean';
    case 'object':
      return isPlainObject(value);
    case 'array':
      return Array.isArray(value);
  }
}

function describeValue(value: JsonValue): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'number' && Number.isInteger(value)) return `the integer ${value}`;
  return `${typeof value} ${JSON.stringify(value)}`;
}

/**
 * Checks a value against a param's declared type and enum. Returns what was expected, in words,
 * or null when the value fits. Shared with the compiler's PARAM_DEFAULT_TYPE check.
 */
export function checkParamValue(spec: ParamSpec, value: JsonValue): string | null {
  if (!matchesType(spec.type, value)) return `expected ${EXPECTED[spec.type]}, got ${describeValue(value)}`;
  if (spec.enum && !spec.enum.some((allowed) => jsonEqual(allowed, value))) {
    return `expected one of ${spec.enum.map((v) => JSON.stringify(v)).join(', ')}, got ${JSON.stringify(value)}`;
  }
  return null;
}

/** Turns the text of `--param k=v` into a value of the declared type, or says what was expected. */
export function coerceParam(type: ParamType, text: string): { value: JsonValue } | { error: string } {
  const expected = { error: `expected ${EXPECTED[type]}, got ${JSON.stringify(text)}` };
  switch (type) {
    case 'string':
      return { value: text };
    case 'integer':
      return /^[+-]?\d+$/.test(text.trim()) && Number.isSafeInteger(Number(text))
        ? { value: Number(text) }
        : expected;
    case 'number': {
      const n = Number(text);
      return text.trim() !== '' && Number.isFinite(n) ? { value: n } : expected;
    }
    case 'boolean':
      if (text === 'true') return { value: true };
      if (text === 'false') return { value: false };
      return expected;
    case 'object':
    case 'array': {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        return { error: `expected ${EXPECTED[type]} (JSON), got ${JSON.stringify(text)}` };
      }
      return matchesType(type, parsed as JsonValue) ? { value: parsed as JsonValue } : expected;
    }
  }
}

export function resolveParams(
  declared: Record<string, ParamSpec>,
  /** From the CLI: the text after `=` of each `--param k=v`; from JSON: values as they are. */
  given: Record<string, JsonValue>,
  source: 'cli' | 'json',
): { params: JsonObject; errors: string[] } {
  const params = createDict<JsonValue>();
  const errors: string[] = [];
  const names = Object.keys(declared);
  const label = (name: string, raw?: JsonValue) =>
    source === 'cli'
      ? `--param ${name}=${typeof raw === 'string' ? raw : JSON.stringify(raw ?? '')}`
      : `param "${name}"`;

  for (const name of Object.keys(given)) {
    if (Object.hasOwn(declared, name)) continue;
    const close = suggest(name, names);
    const known =
      names.length > 0 ? ` (declared: ${names.join(', ')})` : ' (this pipeline declares no params)';
    errors.push(
      `${label(name, given[name])}: unknown param "${name}"${close ? `; did you mean "${close}"?` : known}`,
    );
  }

  for (const name of names) {
    const spec = declared[name]!;
    if (!Object.hasOwn(given, name)) {
      if (spec.default !== undefined) params[name] = spec.default;
      else
        errors.push(
          `param "${name}" is required (${EXPECTED[spec.type]}): pass ${source === 'cli' ? `--param ${name}=…` : `"${name}"`}`,
        );
      continue;
    }
    const raw = given[name]!;
    let value: JsonValue = raw;
    if (source === 'cli' && typeof raw === 'string') {
      const coerced = coerceParam(spec.type, raw);
      if ('error' in coerced) {
        errors.push(`${label(name, raw)}: ${coerced.error}`);
        continue;
      }
      value = coerced.value;
    }
    const problem = checkParamValue(spec, value);
    if (problem) {
      errors.push(`${label(name, raw)}: ${problem}`);
      continue;
    }
    params[name] = value;
  }
  return { params, errors };
}
