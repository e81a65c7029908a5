import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compilePipeline } from '../../src/compile/compile.js';
import { createBuiltinRegistry } from '../../src/handlers/builtins.js';
import { parsePipelineText } from '../../src/pipeline/load.js';
import { validatePipelineSchema } from '../../src/pipeline/validate-schema.js';

const fixtures = new URL('../fixtures/', import.meta.url);

function files(dir: string, pattern: RegExp): string[] {
  return readdirSync(new URL(dir, fixtures))
    .filter((name) => pattern.test(name))
    .sort();
}

/** The whole static chain, as `weft validate` runs it: load, schema, compile. */
function check(dir: string, name: string, withRegistry: boolean) {
  const text = readFileSync(new URL(`${dir}/${name}`, fixtures), 'utf8');
  const loaded = parsePipelineText(name, text);
  const validated = validatePipelineSchema(loaded.source);
  expect([...loaded.diagnostics, ...validated.diagnostics]).toEqual([]);
  const compiled = compilePipeline(
    loaded.source,
    validated.spec!,
    withRegistry ? { registry: createBuiltinRegistry() } : {},
  );
  return { text, compiled };
}

function expectations(text: string): string[] {
  const match = /^# expect: (.+)$/.exec(text.split('\n', 1)[0] ?? '');
  if (!match) throw new Error('first line must be "# expect: CODE LINE:COL"');
  return match[1]!.split(';').map((part) => part.trim());
}

describe('invalid fixtures (graph-*, expr-*, cron-*, handler-*, param-*)', () => {
  const names = files('invalid', /^(graph|expr|cron|handler|param)-.*\.yaml$/);
  it('cover every compile rule', () => expect(names.length).toBeGreaterThanOrEqual(14));

  it.each(names)('%s reports exactly what its first line expects', (name) => {
    const { text, compiled } = check('invalid', name, true);
    expect(compiled.diagnostics.map((d) => `${d.code} ${d.line}:${d.column}`)).toEqual(expectations(text));
    expect(compiled.plan).toBeNull();
    for (const d of compiled.diagnostics) {
      expect(d.file).toBe(name);
      expect(d.severity).toBe('error');
      expect(d.message.length).toBeGreaterThan(10);
    }
  });
});

describe('valid fixtures', () => {
  // Without a registry: these files name handlers a project would register itself (notify.slack).
  it.each(files('valid', /\.yaml$/))('%s compiles to a plan without diagnostics', (name) => {
    const { compiled } = check('valid', name, false);
    expect(compiled.diagnostics).toEqual([]);
    expect(compiled.plan?.order.length).toBeGreaterThan(0);
  });
});
