import type { AnyHandler, JsonSchema } from '../handlers/types.js';
import { cell, constraintsInWords, typeInWords, yamlBlock, yamlInline, text } from './schema-words.js';

export const BUILTIN_HANDLERS_DOC_PATH = 'docs/builtin-handlers.md';

/**
 * docs/builtin-handlers.md, generated from the handlers' own `args` schemas (the ones the engine
 * validates with), so the reference says exactly what is accepted.
 */
export function generateBuiltinHandlersDoc(
  groups: { title: string; intro: string; handlers: readonly AnyHandler[] }[],
): string {
  const out: string[] = [
    '# Built-in handlers',
    '',
    "<!-- Generated from the handlers' `args` schemas by `node scripts/gen-docs.mjs`; do not edit by hand. -->",
    '',
    'Every project has these handlers without any configuration. A task calls one with `handler: NAME` and',
    'passes its arguments under `with:`; `weft validate` checks them against the schema shown here, and the',
    'engine checks them again after `${{ … }}` substitution.',
    '',
  ];
  for (const group of groups) {
    out.push(`## ${group.title}`, '', group.intro, '');
    out.push(
      ...group.handlers.map(
        (h) => `- [\`${h.name}\`](#${h.name.replace(/[^a-z0-9_-]/gi, '').toLowerCase()})`,
      ),
      '',
    );
    for (const handler of group.handlers) out.push(...describeHandler(handler), '');
  }
  return (
    out
      .join('\n')
      .replace(/\n{3,}/g, '\n\n')
      .trimEnd() + '\n'
  );
}

function describeHandler(handler: AnyHandler): string[] {
  const lines = [`### \`${handler.name}\``, ''];
  if (handler.description) lines.push(handler.description, '');
  const args = handler.args;
  if (!args) {
    lines.push('Takes no arguments (`with:` may be left out).');
    return lines;
  }
  if (args.description) lines.push(`Arguments: ${text(args.description)}`, '');
  const properties = (args.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set(Array.isArray(args.required) ? (args.required as string[]) : []);
  if (Object.keys(properties).length === 0) {
    lines.push(`Arguments: ${typeInWords(args)}.`);
    return lines;
  }
  lines.push('| argument | type | required | default | description |', '| --- | --- | --- | --- | --- |');
  const example: Record<string, unknown> = {};
  for (const [name, property] of Object.entries(properties)) {
    const constraints = constraintsInWords(property);
    const type = typeInWords(property) + (constraints.length > 0 ? ` (${constraints.join('; ')})` : '');
    lines.push(
      `| \`${name}\` | ${cell(type)} | ${required.has(name) ? 'yes' : ''} | ${property.default === undefined ? '' : cell(yamlInline(property.default))} | ${cell(text(property.description))} |`,
    );
    const first = Array.isArray(property.examples) ? (property.examples as unknown[])[0] : undefined;
    if (first !== undefined && (required.has(name) || Object.keys(example).length < 4)) example[name] = first;
  }
  if (args.additionalProperties === false) lines.push('', 'Any other argument is an error.');
  if (Object.keys(example).length > 0) {
    lines.push('', 'Example:', '', yamlBlock('with', example));
  }
  return lines;
}
