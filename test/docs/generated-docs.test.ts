import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as prettier from 'prettier';
import { describe, expect, it } from 'vitest';
import { createBuiltinHandlers } from '../../src/handlers/builtins.js';
import type { JsonSchema } from '../../src/handlers/types.js';
import { loadPipelineSchema } from '../../src/pipeline/schema.js';
import { generateBuiltinHandlersDoc } from '../../src/docs/builtin-handlers-doc.js';
import { buildProgramForDocs, generateCliDoc } from '../../src/docs/cli-doc.js';
import { generateDocs } from '../../src/docs/index.js';
import { generateLanguageDoc } from '../../src/docs/language-doc.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const generated = generateDocs();

describe('generated docs do not drift from their sources', () => {
  for (const [path, text] of Object.entries(generated)) {
    it(`${path} is up to date (else run: node scripts/gen-docs.mjs)`, async () => {
      const file = join(ROOT, path);
      // scripts/gen-docs.mjs formats with Prettier, so that `npm run format` accepts the files.
      const formatted = await prettier.format(text, {
        ...(await prettier.resolveConfig(file)),
        filepath: file,
      });
      expect(readFileSync(file, 'utf8')).toBe(formatted);
    });
  }
});

describe('docs/language.md', () => {
  const schema = loadPipelineSchema();
  const doc = generated['docs/language.md']!;

  it('has every property of the schema with its description', () => {
    const sections: [string, JsonSchema][] = [
      ['', schema],
      ...Object.entries(schema.$defs as Record<string, JsonSchema>),
    ];
    let count = 0;
    for (const [, node] of sections) {
      for (const [name, property] of Object.entries((node.properties ?? {}) as Record<string, JsonSchema>)) {
        expect(doc).toContain(`${name}\``);
        expect(doc).toContain(String(property.description));
        count++;
      }
    }
    expect(count).toBeGreaterThan(30);
  });

  it('shows type, default and examples', () => {
    expect(doc).toMatch(
      /### `retries`\n\nHow many times the whole run is retried[^\n]*\n\n- \*\*Type:\*\* integer\n- \*\*Constraints:\*\* at least 0\n- \*\*Default:\*\* `0`\n- \*\*Examples:\*\* `0`, `1`/,
    );
    expect(doc).toContain('- **Type:** [duration](#duration)');
  });

  it('follows the schema: a changed description changes the document', () => {
    const changed = structuredClone(schema);
    (changed.properties as Record<string, JsonSchema>).name!.description = 'A brand new description.';
    expect(generateLanguageDoc(changed)).toContain('A brand new description.');
    expect(generateLanguageDoc(changed)).not.toBe(doc);
  });
});

describe('docs/cli.md', () => {
  const doc = generated['docs/cli.md']!;

  it('has every command, argument and option of the real command tree', () => {
    const program = buildProgramForDocs();
    const names = program.commands.map((c) => c.name());
    expect(names).toEqual(expect.arrayContaining(['validate', 'run', 'test', 'init', 'config']));
    for (const command of program.commands) {
      for (const sub of command.commands) expect(doc).toContain(`## weft ${command.name()} ${sub.name()}\n`);
      expect(doc).toContain(`## weft ${command.name()}\n\n${command.description()}`);
      for (const option of command.options) expect(doc).toContain(`\`${option.flags}\``);
    }
    expect(doc).toContain(
      '| `-f, --format <format>` | output format; one of: text, json, github; default: text |',
    );
    expect(doc).toContain('weft init [options] [dir]');
  });

  it('follows the definitions: a new option appears', () => {
    const program = buildProgramForDocs();
    program.commands.find((c) => c.name() === 'init')!.option('--template <name>', 'which scaffold');
    expect(generateCliDoc(program)).toContain('| `--template <name>` | which scaffold |');
  });
});

describe('docs/builtin-handlers.md', () => {
  const doc = generated['docs/builtin-handlers.md']!;

  it('has every built-in handler and each of its arguments', () => {
    for (const handler of createBuiltinHandlers()) {
      expect(doc).toContain(`### \`${handler.name}\``);
      for (const name of Object.keys((handler.args?.properties ?? {}) as object))
        expect(doc).toContain(`| \`${name}\` |`);
    }
  });

  it('follows the schemas: a required argument is marked', () => {
    const text = generateBuiltinHandlersDoc([
      {
        title: 'T',
        intro: 'i',
        handlers: [
          {
            name: 'x.y',
            description: 'does x',
            args: {
              type: 'object',
              properties: { a: { type: 'string', description: 'the a', examples: ['v'] } },
              required: ['a'],
            },
            run: () => null,
          },
        ],
      },
    ]);
    expect(text).toContain('| `a` | string | yes |  | the a |');
    expect(text).toContain('```yaml\nwith:\n  a: v\n```');
  });
});
