import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../testing/support.js';

const REPO = resolve(import.meta.dirname, '..', '..');

const PIPELINE = `name: demo
tasks:
  fetch: { handler: shell, with: { command: exit 3 } }
  load: { handler: noop, depends_on: fetch }
`;

let cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups) cleanup();
  cleanups = [];
});

function project(files: Record<string, string>): string {
  const temp = tempDir(files);
  cleanups.push(temp.cleanup);
  return temp.dir;
}

describe('weft test', () => {
  it('passes the shipped pipelines/hello.test.yaml and says handlers were stubbed', async () => {
    const result = await runCli(['test'], REPO);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('✓ greets who it is asked to, and reports');
    expect(result.stdout).toContain('✓ cleanup still runs when greeting fails for good');
    expect(result.stdout).toContain('replaced by stubs returning null');
    expect(result.stdout).toMatch(/3 cases: 3 passed, 0 failed/);
  });

  it('exits 1 and prints the difference when a case fails', async () => {
    const dir = project({
      'pipelines/demo.yaml': PIPELINE,
      'pipelines/demo.test.yaml': `pipeline: demo.yaml
cases:
  - name: output differs
    mocks: { fetch: { output: { rows: 2 } } }
    expect:
      tasks:
        fetch: { output: { rows: 3 } }
`,
    });
    const result = await runCli(['test'], dir);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('✗ output differs');
    expect(result.stdout).toContain('tasks.fetch.output.rows: expected 3, got 2');
    expect(result.stdout).toMatch(/1 case: 0 passed, 1 failed/);
  });

  it('--format github annotates the failing case on its line', async () => {
    const dir = project({
      'pipelines/demo.yaml': PIPELINE,
      'pipelines/demo.test.yaml': `pipeline: demo.yaml
cases:
  - name: passes
    expect: { run: succeeded }
  - name: wrong state
    expect: { run: failed }
`,
    });
    const result = await runCli(['test', 'pipelines', '--format', 'github'], dir);
    expect(result.code).toBe(1);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toBe(
      '::error file=pipelines/demo.test.yaml,line=5,col=5,title=weft test%3A wrong state::run: expected "failed", got "succeeded"',
    );
    expect(lines.at(-1)).toBe('1 of 2 case(s) passed');
  });

  it('--format json gives every case with its failures', async () => {
    const dir = project({
      'pipelines/demo.yaml': PIPELINE,
      'pipelines/demo.test.yaml':
        'pipeline: demo.yaml\ncases:\n  - { name: a, expect: { run: succeeded } }\n',
    });
    const result = await runCli(['test', '--format', 'json'], dir);
    expect(result.code).toBe(0);
    const json = JSON.parse(result.stdout) as {
      ok: boolean;
      cases: number;
      files: { cases: { name: string; passed: boolean; line: number }[] }[];
    };
    expect(json.ok).toBe(true);
    expect(json.cases).toBe(1);
    expect(json.files[0]?.cases).toEqual([expect.objectContaining({ name: 'a', passed: true, line: 3 })]);
  });

  it('an invalid test file fails with file:line:column', async () => {
    const dir = project({
      'pipelines/demo.yaml': PIPELINE,
      'pipelines/demo.test.yaml': 'pipeline: demo.yaml\ncases:\n  - name: a\n    expected: {}\n',
    });
    const result = await runCli(['test'], dir);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('pipelines/demo.test.yaml:3:5 error');
    expect(result.stdout).toContain('pipelines/demo.test.yaml:4:5 error unknown key `expected`');
  });

  it('exits 2 when there is no test file', async () => {
    const dir = project({ 'pipelines/demo.yaml': PIPELINE });
    const result = await runCli(['test'], dir);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('no test files (*.test.yaml) found');
  });

  it('weft validate does not take test files for pipelines', async () => {
    const dir = project({
      'pipelines/demo.yaml': PIPELINE,
      'pipelines/demo.test.yaml': 'pipeline: demo.yaml\ncases:\n  - { name: a, expect: {} }\n',
    });
    // validate reads the paths it displays (relative to cwd) from the process's cwd.
    const before = process.cwd();
    process.chdir(dir);
    const result = await runCli(['validate'], dir).finally(() => process.chdir(before));
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('1 pipeline file valid');
    expect(result.stdout).not.toContain('demo.test.yaml');
  });
});
