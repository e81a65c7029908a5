import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parsePipelineText } from '../../src/pipeline/load.js';
import { validatePipelineSchema } from '../../src/pipeline/validate-schema.js';

const fixtures = new URL('../fixtures/', import.meta.url);

function files(dir: string, pattern: RegExp): string[] {
  return readdirSync(new URL(dir, fixtures))
    .filter((name) => pattern.test(name))
    .sort();
}

function check(dir: string, name: string) {
  const text = readFileSync(new URL(`${dir}/${name}`, fixtures), 'utf8');
  const loaded = parsePipelineText(name, text);
  const validated = validatePipelineSchema(loaded.source);
  return { text, loaded, validated, diagnostics: [...loaded.diagnostics, ...validated.diagnostics] };
}

/** `# expect: CODE LINE:COL; CODE LINE:COL` on the first line. */
function expectations(text: string): string[] {
  const first = text.split('\n', 1)[0] ?? '';
  const match = /^# expect: (.+)$/.exec(first);
  if (!match) throw new Error(`first line must be "# expect: CODE LINE:COL", got ${JSON.stringify(first)}`);
  return match[1]!.split(';').map((part) => part.trim());
}

describe('valid fixtures', () => {
  const names = files('valid', /\.yaml$/);
  it('exist', () => expect(names.length).toBeGreaterThanOrEqual(3));

  it.each(names)('%s loads and passes the schema with no diagnostics', (name) => {
    const { diagnostics, validated } = check('valid', name);
    expect(diagnostics).toEqual([]);
    expect(validated.spec).not.toBeNull();
    expect(typeof validated.spec?.name).toBe('string');
  });
});

describe('invalid fixtures (yaml-*, schema-*)', () => {
  const names = files('invalid', /^(yaml|schema)-.*\.yaml$/);
  it('are at least 15', () => expect(names.length).toBeGreaterThanOrEqual(15));

  it.each(names)('%s reports exactly what its first line expects', (name) => {
    const { text, diagnostics, validated } = check('invalid', name);
    const actual = diagnostics.map((d) => `${d.code} ${d.line}:${d.column}`);
    expect(actual).toEqual(expectations(text));
    expect(validated.spec).toBeNull();
    for (const d of diagnostics) {
      expect(d.file).toBe(name);
      expect(d.message.length).toBeGreaterThan(10);
    }
  });
});
