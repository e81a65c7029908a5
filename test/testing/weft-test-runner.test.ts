import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createDefaultRegistry } from '../../src/project/default-handlers.js';
import { loadTestFile, parseTestFile } from '../../src/testing/load-test-file.js';
import { runTestFile } from '../../src/testing/run-test-file.js';
import { tempDir } from './support.js';

const PIPELINE = `name: demo
params:
  who: { type: string, default: world }
tasks:
  start: { handler: noop }
  write:
    handler: shell
    depends_on: start
    retries: 2
    retry_delay: 10m
    with: { command: touch side-effect.txt }
  after:
    handler: noop
    depends_on: write
`;

let cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups) cleanup();
  cleanups = [];
});

function project(testYaml: string) {
  const temp = tempDir({ 'pipelines/demo.yaml': PIPELINE, 'pipelines/demo.test.yaml': testYaml });
  cleanups.push(temp.cleanup);
  return temp.dir;
}

async function run(dir: string) {
  return runTestFile('pipelines/demo.test.yaml', { registry: createDefaultRegistry(), cwd: dir });
}

describe('runTestFile', () => {
  it('passes cases, stubs unmocked handlers (nothing runs) and retries without waiting', async () => {
    const dir = project(`pipeline: demo.yaml
cases:
  - name: stubbed
    expect:
      run: succeeded
      tasks:
        write: { state: succeeded, output: null, attempts: 1 }
  - name: retried at once, despite retry_delay 10m
    mocks:
      write: { fail: disk full, times: 2, output: { ok: true } }
    expect:
      tasks:
        write: { state: succeeded, attempts: 3, output: { ok: true } }
`);
    const started = Date.now();
    const result = await run(dir);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(result.diagnostics).toEqual([]);
    expect(result.cases.map((c) => [c.name, c.passed, c.failures])).toEqual([
      ['stubbed', true, []],
      ['retried at once, despite retry_delay 10m', true, []],
    ]);
    expect(result.passed).toBe(true);
    expect(result.pipelineFile).toBe(join('pipelines', 'demo.yaml'));
    // The shell handler was stubbed: its command never ran.
    expect(existsSync(resolve(dir, 'side-effect.txt'))).toBe(false);
  });

  it('reports each difference of a failing case, at its line', async () => {
    const dir = project(`pipeline: demo.yaml
cases:
  - name: ok
    expect: { run: succeeded }
  - name: wrong
    mocks:
      write: { fail: disk full, retryable: false }
    expect:
      run: succeeded
      tasks:
        write: { state: succeeded, error: quota }
        after: { state: succeeded }
`);
    const result = await run(dir);
    expect(result.passed).toBe(false);
    const wrong = result.cases[1]!;
    expect(wrong.passed).toBe(false);
    expect(wrong.position).toEqual({ line: 5, column: 5 });
    expect(wrong.failures).toEqual([
      expect.stringMatching(/^run: expected "succeeded", got "failed"/),
      'tasks.write.state: expected "succeeded", got "failed" (disk full)',
      'tasks.write.error: expected a message containing "quota", got "disk full"',
      expect.stringMatching(/^tasks\.after\.state: expected "succeeded", got "skipped"/),
    ]);
  });

  it('uses handler-name mocks and params', async () => {
    const dir = project(`pipeline: demo.yaml
cases:
  - name: by handler
    params: { who: ada }
    mocks:
      noop: { output: 7 }
    expect:
      tasks:
        start: { output: 7 }
        after: { output: 7 }
`);
    const result = await run(dir);
    expect(result.cases[0]?.failures).toEqual([]);
  });

  it('refuses unknown tasks, mock targets and params before running, with positions and hints', async () => {
    const dir = project(`pipeline: demo.yaml
cases:
  - name: typos
    params: { whom: ada }
    mocks:
      wirte: { output: 1 }
    expect:
      tasks:
        aftr: { state: succeeded }
`);
    const result = await run(dir);
    expect(result.cases).toEqual([]);
    expect(result.passed).toBe(false);
    expect(result.diagnostics.map((d) => [d.code, d.line, d.column, d.hint])).toEqual([
      ['SCHEMA_INVALID', 4, 5, undefined],
      ['SCHEMA_INVALID', 6, 7, 'did you mean "write"?'],
      ['SCHEMA_INVALID', 9, 9, 'did you mean "after"?'],
    ]);
    expect(result.diagnostics[0]?.message).toMatch(/unknown param "whom"; did you mean "who"/);
  });

  it('points at the pipeline key when the pipeline is missing', async () => {
    const dir = project(`pipeline: nope.yaml\ncases:\n  - { name: x, expect: {} }\n`);
    const result = await run(dir);
    expect(result.diagnostics.map((d) => [d.code, d.line, d.column])).toEqual([['FILE_UNREADABLE', 1, 11]]);
    expect(result.diagnostics[0]?.message).toMatch(/cannot read pipeline/);
  });
});

describe('loadTestFile (bytes)', () => {
  it('refuses invalid UTF-8 at its first bad byte instead of reading U+FFFD', async () => {
    const { dir, cleanup } = tempDir({});
    const file = join(dir, 'bad.test.yaml');
    writeFileSync(
      file,
      Buffer.concat([Buffer.from('pipeline: p.yaml\ncases:\n  - name: caf'), Buffer.from([0xe9, 0x0a])]),
    );
    const loaded = await loadTestFile(file);
    expect(loaded.spec).toBeNull();
    cleanup();
    expect(loaded.diagnostics.map((d) => [d.code, d.line, d.column])).toEqual([['YAML_ENCODING', 3, 14]]);
  });
});

describe('parseTestFile (schema)', () => {
  it('reports unknown keys at the key, with did-you-mean', () => {
    const loaded = parseTestFile(
      't.test.yaml',
      'pipeline: p.yaml\ncases:\n  - name: a\n    expect: {}\n    mock: {}\n',
    );
    expect(loaded.spec).toBeNull();
    expect(loaded.diagnostics.map((d) => [d.code, d.line, d.column, d.hint])).toEqual([
      ['SCHEMA_UNKNOWN_KEY', 5, 5, 'did you mean `mocks`?'],
    ]);
  });

  it('reports missing keys, bad enums and types with positions', () => {
    const loaded = parseTestFile(
      't.test.yaml',
      'pipeline: p.yaml\ncases:\n  - name: a\n    expect:\n      run: done\n      tasks:\n        x: { attempts: two }\n  - name: b\n',
    );
    expect(loaded.diagnostics.map((d) => [d.code, d.line, d.column])).toEqual([
      ['SCHEMA_ENUM', 5, 12],
      ['SCHEMA_TYPE', 7, 24],
      ['SCHEMA_MISSING_KEY', 8, 5],
    ]);
  });

  it('reports YAML problems with the pipeline loader rules', () => {
    const loaded = parseTestFile('t.test.yaml', 'pipeline: a\npipeline: b\ncases: []\n');
    expect(loaded.diagnostics.map((d) => [d.code, d.line])).toEqual([['YAML_DUPLICATE_KEY', 2]]);
  });
});
