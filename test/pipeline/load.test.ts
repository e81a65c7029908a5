import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MAX_PIPELINE_BYTES, parsePipelineText, readPipelineFile } from '../../src/pipeline/load.js';
import { fastestOf } from '../support/fastest.js';

const codes = (text: string) =>
  parsePipelineText('p.yaml', text).diagnostics.map((d) => `${d.code} ${d.line}:${d.column}`);

function billionLaughs(): string {
  const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  const names = 'abcdefghij';
  for (let i = 1; i < names.length; i++) {
    const name = names[i]!;
    const previous = names[i - 1]!;
    lines.push(`${name}: &${name} [${Array.from({ length: 9 }, () => `*${previous}`).join(',')}]`);
  }
  return lines.join('\n') + '\n';
}

describe('parsePipelineText', () => {
  it('builds the value, the hash and positions', () => {
    const text = 'name: demo\ntasks:\n  a:\n    retries: 3\n';
    const { source, diagnostics } = parsePipelineText('demo.yaml', text);
    expect(diagnostics).toEqual([]);
    expect(source.value).toEqual({ name: 'demo', tasks: { a: { retries: 3 } } });
    expect(source.file).toBe('demo.yaml');
    expect(source.hash).toBe(createHash('sha256').update(text).digest('hex'));
    expect(source.positionOf(['tasks', 'a', 'retries'])).toEqual({ line: 4, column: 14 });
    expect(source.positionOf(['tasks', 'a', 'retries'], { key: true })).toEqual({ line: 4, column: 5 });
  });

  it('falls back to the nearest ancestor for a missing path, and to 1:1 for nothing', () => {
    const { source } = parsePipelineText('p.yaml', 'name: demo\ntasks:\n  a:\n    retries: 3\n');
    expect(source.positionOf(['tasks', 'a', 'timeout'])).toEqual({ line: 4, column: 5 });
    expect(source.positionOf(['nope', 'deeper'])).toEqual({ line: 1, column: 1 });
    const empty = parsePipelineText('e.yaml', '').source;
    expect(empty.positionOf(['tasks'])).toEqual({ line: 1, column: 1 });
  });

  it('points at the key of a pair with no value', () => {
    const { source } = parsePipelineText('p.yaml', 'name: demo\ntasks:\n  a:\n  b: {}\n');
    expect(source.positionOf(['tasks', 'a'])).toEqual({ line: 3, column: 3 });
  });

  it('walks list indices and aliases in positionOf', () => {
    const { source } = parsePipelineText('p.yaml', 'x: &h\n  - one\n  - two\ny: *h\n');
    expect(source.positionOf(['x', 1])).toEqual({ line: 3, column: 5 });
    expect(source.positionOf(['y', 0])).toEqual({ line: 2, column: 5 });
  });

  it('diagnosticAt builds a positioned diagnostic, error by default', () => {
    const { source } = parsePipelineText('p.yaml', 'name: demo\ntasks:\n  a: {}\n');
    expect(
      source.diagnosticAt(['tasks', 'a'], { code: 'DEPENDENCY_SELF', message: 'm' }, { key: true }),
    ).toEqual({
      code: 'DEPENDENCY_SELF',
      severity: 'error',
      message: 'm',
      file: 'p.yaml',
      line: 3,
      column: 3,
      path: ['tasks', 'a'],
    });
    const warning = source.diagnosticAt(['name'], {
      code: 'SCHEMA_INVALID',
      message: 'w',
      severity: 'warning',
      hint: 'h',
    });
    expect(warning).toMatchObject({ severity: 'warning', hint: 'h', line: 1, column: 7 });
  });

  it('keeps __proto__ and constructor as plain keys and never touches Object.prototype', () => {
    const { source, diagnostics } = parsePipelineText(
      'p.yaml',
      '__proto__: {polluted: 1}\nconstructor: {polluted: 2}\n',
    );
    expect(diagnostics).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const value = source.value as Record<string, unknown>;
    expect(Object.getPrototypeOf(value)).toBeNull();
    expect(Object.keys(value)).toEqual(['__proto__', 'constructor']);
    expect(value.__proto__).toEqual({ polluted: 1 });
    expect(Object.getPrototypeOf(value.__proto__)).toBeNull();
  });

  it('keeps core scalars and refuses other tags', () => {
    expect(parsePipelineText('p.yaml', 'a: !!str 12\nb: 1.5\nc: ~\nd: true\n').source.value).toEqual({
      a: '12',
      b: 1.5,
      c: null,
      d: true,
    });
    expect(codes('a: !foo 1\n')).toEqual(['YAML_TAG 1:4']);
    expect(codes('a: !!binary aGVsbG8=\n')).toEqual(['YAML_TAG 1:4']);
    expect(codes('a: !!set {x}\n')).toEqual(['YAML_TAG 1:4']);
    expect(parsePipelineText('p.yaml', 'a: !foo 1\n').source.value).toBeUndefined();
  });

  it('reports an empty file, or one with only comments', () => {
    expect(codes('')).toEqual(['YAML_EMPTY 1:1']);
    expect(codes('# just a comment\n\n')).toEqual(['YAML_EMPTY 1:1']);
    expect(codes('---\n')).toEqual(['YAML_EMPTY 1:1']);
  });

  it('reports a duplicate key at the second key, also when yaml sees two types (1 and "1")', () => {
    expect(codes('a: 1\nb: 2\na: 3\n')).toEqual(['YAML_DUPLICATE_KEY 3:1']);
    expect(codes('1: x\n"1": y\n')).toEqual(['YAML_DUPLICATE_KEY 2:1']);
  });

  it('reports every duplicate key, not only the first', () => {
    expect(codes('a: 1\na: 2\nb:\n  c: 1\n  c: 2\n')).toEqual([
      'YAML_DUPLICATE_KEY 2:1',
      'YAML_DUPLICATE_KEY 5:3',
    ]);
  });

  it('gives a duplicate key the path of the key, through sequences and aliases too', () => {
    const paths = (text: string) =>
      parsePipelineText('p.yaml', text)
        .diagnostics.filter((d) => d.code === 'YAML_DUPLICATE_KEY')
        .map((d) => [d.path, `${d.line}:${d.column}`]);
    expect(paths('name: p\ntasks:\n  a: {}\n  b: {}\n  a: {}\n')).toEqual([[['tasks', 'a'], '5:3']]);
    expect(paths('a: 1\na: 2\n')).toEqual([[['a'], '2:1']]);
    expect(paths('tasks:\n  x:\n    on_failure:\n      - with: { m: 1, m: 2 }\n')).toEqual([
      [['tasks', 'x', 'on_failure', 0, 'with', 'm'], '4:23'],
    ]);
    // A duplicate inside an anchored block is reported once, at the anchor's own place.
    expect(paths('base: &b { k: 1, k: 2 }\nuse: *b\n')).toEqual([[['base', 'k'], '1:18']]);
  });

  it('reports what yaml only warns about as an error, and keeps no value', () => {
    const { source, diagnostics } = parsePipelineText('p.yaml', '%FOO bar\n---\na: 1\n');
    expect(diagnostics.map((d) => `${d.code} ${d.severity} ${d.line}:${d.column}`)).toEqual([
      'YAML_SYNTAX error 1:1',
    ]);
    expect(diagnostics[0]!.message).toBe('unknown directive %FOO');
    expect(source.value).toBeUndefined();
  });

  it('reports syntax errors and a second document', () => {
    expect(codes('a: [1, 2\nb: 3\n')[0]).toMatch(/^YAML_SYNTAX /);
    expect(codes('a: 1\n---\nb: 2\n')).toEqual(['YAML_SYNTAX 2:1']);
    expect(codes('? [a]\n: 1\n')).toEqual(['YAML_SYNTAX 1:3']);
    expect(codes('a: *missing\n')).toEqual(['YAML_SYNTAX 1:4']);
  });

  it('rejects a billion-laughs alias bomb fast', () => {
    const text = billionLaughs();
    const { value, ms } = fastestOf(3, () => parsePipelineText('bomb.yaml', text));
    expect(value.diagnostics.map((d) => d.code)).toEqual(['YAML_ALIAS_LIMIT']);
    expect(value.source.value).toBeUndefined();
    expect(ms).toBeLessThan(500);
  });

  it('rejects an alias that contains itself', () => {
    expect(codes('a: &x [1, *x]\n')).toEqual(['YAML_ALIAS_LIMIT 1:11']);
  });

  it('allows a few aliases, expanded into separate values', () => {
    const { source, diagnostics } = parsePipelineText('p.yaml', 'x: &x {k: [1, 2]}\ny: *x\nz: *x\n');
    expect(diagnostics).toEqual([]);
    const value = source.value as Record<string, unknown>;
    expect(value.y).toEqual({ k: [1, 2] });
    expect(value.y).not.toBe(value.z);
  });

  it('rejects 10,000-deep flow nesting without overflowing the stack', () => {
    const { value: result, ms } = fastestOf(3, () => codes('['.repeat(10_000) + ']'.repeat(10_000)));
    expect(result).toEqual(['YAML_TOO_DEEP 1:201']);
    expect(ms).toBeLessThan(2000);
    expect(codes('{a: '.repeat(10_000) + '1' + '}'.repeat(10_000))).toEqual(['YAML_TOO_DEEP 1:801']);
  });

  it('rejects deep block nesting', () => {
    let text = '';
    for (let i = 0; i < 1000; i++) text += `${' '.repeat(i)}a:\n`;
    expect(codes(text)).toEqual(['YAML_TOO_DEEP 201:201']);
    expect(codes('- '.repeat(10_000) + 'x\n')).toEqual(['YAML_TOO_DEEP 1:401']);
  });

  it('rejects 10,000-deep block nesting (`a:\\n  a:\\n …`) without a crash', () => {
    // Two spaces a level make this ~100 MB: it is refused as too large before anything else.
    let text = '';
    for (let i = 0; i < 10_000; i++) text += `${'  '.repeat(i)}a:\n`;
    expect(codes(text)).toEqual(['FILE_TOO_LARGE 1:1']);
  });

  it('accepts nesting up to the limit', () => {
    const text = `a: ${'['.repeat(150)}${']'.repeat(150)}\n`;
    expect(codes(text)).toEqual([]);
  });

  it('refuses text over 1 MiB', () => {
    expect(codes(`a: "${'x'.repeat(MAX_PIPELINE_BYTES)}"\n`)).toEqual(['FILE_TOO_LARGE 1:1']);
  });
});

describe('readPipelineFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-load-'));

  it('reads and parses a file', async () => {
    const file = join(dir, 'ok.yaml');
    writeFileSync(file, 'name: ok\ntasks:\n  a: {}\n');
    const { source, diagnostics } = await readPipelineFile(file);
    expect(diagnostics).toEqual([]);
    expect(source.file).toBe(file);
    expect(source.value).toEqual({ name: 'ok', tasks: { a: {} } });
  });

  it('reports a missing file or a directory as FILE_UNREADABLE at 1:1', async () => {
    const missing = await readPipelineFile(join(dir, 'missing.yaml'));
    expect(missing.diagnostics.map((d) => `${d.code} ${d.line}:${d.column}`)).toEqual([
      'FILE_UNREADABLE 1:1',
    ]);
    expect(missing.source.value).toBeUndefined();
    mkdirSync(join(dir, 'folder.yaml'));
    const folder = await readPipelineFile(join(dir, 'folder.yaml'));
    expect(folder.diagnostics.map((d) => d.code)).toEqual(['FILE_UNREADABLE']);
  });

  it('reports a file over 1 MiB as FILE_TOO_LARGE', async () => {
    const file = join(dir, 'big.yaml');
    writeFileSync(file, `# ${'x'.repeat(MAX_PIPELINE_BYTES)}\n`);
    const { diagnostics } = await readPipelineFile(file);
    expect(diagnostics.map((d) => `${d.code} ${d.line}:${d.column}`)).toEqual(['FILE_TOO_LARGE 1:1']);
  });
});
