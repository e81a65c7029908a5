import { stringify } from 'yaml';
import type { JsonSchema } from '../handlers/types.js';

/** Shared by the doc generators: a schema's type in words, and values shown as YAML. */

function asSchema(value: unknown): JsonSchema | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as JsonSchema)
    : undefined;
}

/** `#/$defs/duration` -> a markdown link to that section (`anchor` maps a def name to its heading id). */
export function typeInWords(schema: JsonSchema, anchor: (def: string) => string | null = () => null): string {
  const ref = schema.$ref;
  if (typeof ref === 'string') {
    const def = ref.replace(/^#\/\$defs\//, '');
    const id = anchor(def);
    return id ? `[${def}](#${id})` : def;
  }
  if (schema.const !== undefined) return `\`${JSON.stringify(schema.const)}\``;
  if (Array.isArray(schema.enum))
    return `one of ${schema.enum.map((v) => `\`${typeof v === 'string' ? v : JSON.stringify(v)}\``).join(', ')}`;
  for (const key of ['oneOf', 'anyOf'] as const) {
    const branches = schema[key];
    if (Array.isArray(branches)) {
      return branches.map((b) => typeInWords(asSchema(b) ?? {}, anchor)).join(' or ');
    }
  }
  const types = Array.isArray(schema.type)
    ? (schema.type as string[])
    : typeof schema.type === 'string'
      ? [schema.type]
      : [];
  if (types.length === 0) return 'any';
  return types
    .map((type) => {
      if (type === 'array') {
        const items = asSchema(schema.items);
        return items ? `array of ${typeInWords(items, anchor)}` : 'array';
      }
      if (type === 'object') {
        const values = asSchema(schema.additionalProperties);
        return values ? `map of name → ${typeInWords(values, anchor)}` : 'object';
      }
      return type;
    })
    .join(' or ');
}

/** Constraints worth a reader's attention, in words. */
export function constraintsInWords(schema: JsonSchema): string[] {
  const words: string[] = [];
  if (typeof schema.minimum === 'number') words.push(`at least ${schema.minimum}`);
  if (typeof schema.maximum === 'number') words.push(`at most ${schema.maximum}`);
  if (typeof schema.minLength === 'number' && schema.minLength > 1)
    words.push(`at least ${schema.minLength} characters`);
  if (typeof schema.pattern === 'string') words.push(`matches \`${schema.pattern}\``);
  if (schema.uniqueItems === true) words.push('no duplicates');
  if (typeof schema.format === 'string') words.push(`format ${schema.format}`);
  return words;
}

/** A value as it would be written in YAML, inline when short. */
export function yamlInline(value: unknown): string {
  if (typeof value === 'string') return `\`${value}\``;
  const text = JSON.stringify(value);
  return `\`${text}\``;
}

/** A YAML block showing `key: value`. */
export function yamlBlock(key: string, value: unknown): string {
  return '```yaml\n' + stringify({ [key]: value }, { lineWidth: 0 }).trimEnd() + '\n```';
}

/** A table cell: no line breaks, no unescaped pipes. */
export function cell(text: string): string {
  return text.replace(/\r?\n/g, ' ').replace(/\|/g, '\\|');
}

/** A schema's text field (description, title) as a string; anything else is no text. */
export function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}
