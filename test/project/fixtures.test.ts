import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createDefaultRegistry } from '../../src/project/default-handlers.js';
import { loadPipelineText } from '../../src/project/load-pipeline.js';

/**
 * The table of invalid pipelines: each fixture names, on its first line, the exact diagnostics the
 * whole load chain must report (`# expect: CODE LINE:COL; CODE LINE:COL`). Valid fixtures must
 * compile with no diagnostic at all.
 */
const fixtures = join(import.meta.dirname, '..', 'fixtures');
const registry = createDefaultRegistry();

function expectations(text: string): string[] {
  const first = text.split('\n', 1)[0] ?? '';
  const match = /^#\s*expect:\s*(.+)$/.exec(first);
  if (!match) throw new Error('fixture has no "# expect:" first line');
  return match[1]!
    .split(';')
    .map((s) => s.trim())
    .filter(Boolean)
    .sort();
}

describe('invalid pipeline fixtures', () => {
  const files = readdirSync(join(fixtures, 'invalid')).filter((f) => f.endsWith('.yaml'));
  it('has fixtures', () => expect(files.length).toBeGreaterThan(20));
  it.each(files)('%s', (file) => {
    const text = readFileSync(join(fixtures, 'invalid', file), 'utf8');
    const loaded = loadPipelineText(file, text, { registry });
    const got = loaded.diagnostics.map((d) => `${d.code} ${d.line}:${d.column}`).sort();
    expect(got).toEqual(expectations(text));
    expect(loaded.plan).toBeNull();
    for (const d of loaded.diagnostics) {
      expect(d.file).toBe(file);
      expect(d.message.length).toBeGreaterThan(10);
    }
  });
});

describe('valid pipeline fixtures', () => {
  const files = readdirSync(join(fixtures, 'valid')).filter((f) => f.endsWith('.yaml'));
  it.each(files)('%s', (file) => {
    const loaded = loadPipelineText(file, readFileSync(join(fixtures, 'valid', file), 'utf8'), { registry });
    expect(loaded.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    expect(loaded.plan).not.toBeNull();
  });
});

describe('shipped pipelines', () => {
  const dir = join(import.meta.dirname, '..', '..', 'pipelines');
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml') && !f.endsWith('.test.yaml'));
  it.each(files)('pipelines/%s is valid', (file) => {
    const loaded = loadPipelineText(file, readFileSync(join(dir, file), 'utf8'), { registry });
    expect(loaded.diagnostics).toEqual([]);
  });
});
