import { MIN_CORE_LENGTH, MIN_SECRET_LENGTH } from '../engine/mask.js';
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

/**
 * What a property's one-line schema description cannot say: behaviour the reference must still
 * state, by heading (`secrets`, `param.default`). Kept here rather than in the schema, whose
 * descriptions editors show as tooltips.
 */
const NOTES: Record<string, string[]> = {
  'task.with': [
    'In a string handed to a shell (the `command` string of `shell`, or any argument a handler lists in ' +
      '`shellQuoted`), each `${{ … }}` is quoted for where it stands, so that the command receives exactly the ' +
      "value's text (numbers, booleans and JSON after their usual conversion to text):",
    [
      "- as a word or part of one, also at the top level of a `$( … )`: in single quotes, each `'` written `'\\''` " +
        '(a value of only letters, digits and `_ . / @ % + , -` that stands as a word by itself and is not a shell ' +
        'keyword is left bare: it reads back the same);',
      "- inside `'…'`: spliced in, each `'` written `'\\''`;",
      '- inside `"…"`: spliced in with a backslash before each `\\`, `$`, `` ` `` and `"` (the only characters a ' +
        'backslash escapes there).',
    ].join('\n'),
    'Anywhere else no quoting is safe, and `weft validate` and `weft plan` refuse the pipeline with ' +
      "`EXPRESSION_SHELL_CONTEXT` at the expression's line and column: inside backticks, `$(( … ))`, `(( … ))`, " +
      "`[[ … ]]`, `${ … }`, `$'…'` or `$\"…\"`; in a here-document's body or delimiter; in a `#` comment; right " +
      'after a `$` or a `\\`; after a `case` statement inside `$( … )` or a `$[`; after a quote, `$(` or `${` ' +
      'that is never closed. The hint says where to put the expression instead (as its own word, or in double ' +
      'quotes; through a variable for a here-document). A command that is one whole expression is that value, ' +
      'run as the script; an argv array (`command: [...]`) runs without a shell, its items unquoted.',
  ],
  secrets: [
    `A value shorter than ${MIN_SECRET_LENGTH} characters is not masked: masking every \`1\` or \`ab\` would ` +
      'shred every line while hiding nothing; nor is it sealed in params (below). Each value is masked as it ' +
      'is and in the forms it takes on its way out: JSON-escaped, URL-encoded (`%20` and `+` spellings), ' +
      'base64 and base64url (also inside a longer base64 value such as an HTTP basic-auth header, through a ' +
      `fragment of at least ${MIN_CORE_LENGTH} characters).`,
    'Params that carry a secret are not stored with it: when a run (or a `weft trigger` request) is created, each occurrence of a secret\'s value, in any of those forms, inside a param — a string, or a string or key nested in an object or array param — is stored as a reference to the secret, and expanded from the environment each time the run executes: handlers, expressions and hooks see the real value, on resume and run retries and on workers too. A string holding a secret is stored as `{"$weft:secret-text": ["Bearer ", {"secret": "API_TOKEN"}]}` (`"form": "base64"` and the like when the secret was found encoded); an object with a key holding a secret, or with a key that starts with `$weft:`, as `{"$weft:entries": [[key, value], …]}`. The API, the dashboard and `weft runs` show this stored form. A run whose params refer to a secret that is not set where it executes or resumes fails with `SECRET_MISSING`, naming the variable; the value is taken from that environment, so a secret changed since the run was created is expanded to its new value.',
  ],
};

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
      const heading = `${section.def === null ? '' : `${section.id}.`}${name}`;
      out.push(`### \`${heading}\`${required.has(name) ? ' (required)' : ''}`, '');
      if (property.description) out.push(text(property.description), '');
      for (const note of NOTES[heading] ?? []) out.push(note, '');
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
