import type { JsonSchema } from '../handlers/types.js';
import { constraintsInWords, typeInWords, yamlBlock, yamlInline, text } from './schema-words.js';

export const LANGUAGE_DOC_PATH = 'docs/language.md';

/** The sections of the reference, in reading order: the top level, then each `$defs` entry. */
const SECTIONS: { def: string | null; title: string; id: string; intro: string }[] = [
  { def: null, title: 'Pipeline', id: 'pipeline', intro: 'The top level of a pipeline file.' },
  { def: 'task', title: 'Task', id: 'task', intro: 'An entry under `tasks:`, by name.' },
  {
    def: 'taskSettings',
    title: 'Task settings (`defaults`)',
    id: 'tasksettings',
    intro: 'What `defaults:` may set for every task (each task may override it).',
  },
  { def: 'schedule', title: 'Schedule', id: 'schedule', intro: '' },
  { def: 'param', title: 'Param', id: 'param', intro: 'An entry under `params:`, by name.' },
  { def: 'hooks', title: 'Hooks', id: 'hooks', intro: '' },
  { def: 'hook', title: 'Hook', id: 'hook', intro: '' },
  { def: 'duration', title: 'Duration', id: 'duration', intro: '' },
];

const anchor = (def: string): string | null => SECTIONS.find((s) => s.def === def)?.id ?? null;

/**
 * docs/language.md, generated from schema/pipeline.schema.json: every property with its
 * description, type, constraints, default and examples. A test regenerates it and compares, so the
 * reference cannot drift from the schema.
 */
export function generateLanguageDoc(schema: JsonSchema): string {
  const defs = (schema.$defs ?? {}) as Record<string, JsonSchema>;
  const out: string[] = [
    '# The pipeline language',
    '',
    '<!-- Generated from schema/pipeline.schema.json by `node scripts/gen-docs.mjs`; do not edit by hand. -->',
    '',
    text(schema.description),
    '',
    'Editors complete and check pipeline files when the file starts with',
    '`# yaml-language-server: $schema=<path to schema/pipeline.schema.json>`; `weft schema --write FILE` gives a',
    "schema that also knows your handlers' arguments.",
    '',
    '## Contents',
    '',
    ...SECTIONS.map((s) => `- [${s.title}](#${s.id})`),
    '',
  ];
  for (const section of SECTIONS) {
    const node = section.def === null ? schema : defs[section.def];
    if (!node) continue;
    out.push(`## ${section.title}`, '');
    const description = section.def === null ? section.intro : text(node.description) || section.intro;
    if (description) out.push(description, '');
    const properties = (node.properties ?? {}) as Record<string, JsonSchema>;
    const names = Object.keys(properties);
    if (names.length === 0) {
      out.push(...describeValue(node), '');
      continue;
    }
    const required = new Set(Array.isArray(node.required) ? (node.required as string[]) : []);
    out.push(
      `Keys: ${names.map((n) => `\`${n}\``).join(', ')}.${node.additionalProperties === false ? ' Any other key is an error.' : ''}`,
      '',
    );
    for (const name of names) {
      const property = properties[name]!;
      out.push(
        `### \`${section.def === null ? '' : `${section.id}.`}${name}\`${required.has(name) ? ' (required)' : ''}`,
        '',
      );
      if (property.description) out.push(text(property.description), '');
      out.push(...describeValue(property, name), '');
    }
  }
  return (
    out
      .join('\n')
      .replace(/\n{3,}/g, '\n\n')
      .trimEnd() + '\n'
  );
}

function describeValue(schema: JsonSchema, key?: string): string[] {
  const lines = [`- **Type:** ${typeInWords(schema, anchor)}`];
  const constraints = constraintsInWords(schema);
  if (constraints.length > 0) lines.push(`- **Constraints:** ${constraints.join('; ')}`);
  if (schema.default !== undefined) lines.push(`- **Default:** ${yamlInline(schema.default)}`);
  const examples = Array.isArray(schema.examples) ? schema.examples : [];
  if (examples.length > 0) {
    const simple = examples.every((e) => e === null || typeof e !== 'object');
    if (simple || key === undefined) {
      lines.push(`- **Examples:** ${examples.map(yamlInline).join(', ')}`);
    } else {
      lines.push('- **Example:**', '', yamlBlock(key, examples[0]));
    }
  }
  return lines;
}
