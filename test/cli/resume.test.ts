import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempProject, weft } from './helpers.js';

/** Runs weft, expects exit 0 (showing stderr if not) and parses its JSON stdout. */
function jsonOf<T>(args: string[], cwd: string): T {
  const result = weft(args, { cwd });
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as T;
}

// `weft resume` of a run that FAILED: the failed task and what follows run again; what
// succeeded keeps its result and does not run again.

const PIPELINE = [
  'name: chain',
  'tasks:',
  '  a:',
  '    handler: shell',
  '    with: { command: "echo x >> count-a; echo from-a" }',
  '  b:',
  '    handler: shell',
  '    depends_on: a',
  '    with: { command: "echo x >> count-b; test -f marker" }',
  '  c:',
  '    handler: shell',
  '    depends_on: b',
  // Reads a's output, which must survive the resume.
  '    with: { command: "echo x >> count-c; echo a said ${{ tasks.a.output.stdout }}" }',
  '',
].join('\n');

let box: ReturnType<typeof tempProject>;
beforeEach(() => {
  box = tempProject({ 'pipelines/chain.yaml': PIPELINE });
});
afterEach(() => box.cleanup());

const count = (name: string) => {
  try {
    return readFileSync(join(box.dir, `count-${name}`), 'utf8')
      .split('\n')
      .filter(Boolean).length;
  } catch {
    return 0;
  }
};

interface RunJson {
  state: string;
  attempt: number;
  tasks: { task: string; state: string; attempts: number; output: { stdout?: string } | null }[];
}

function failedRun(): string {
  const result = weft(['run', 'chain'], { cwd: box.dir });
  expect(result.code).toBe(1);
  expect([count('a'), count('b'), count('c')]).toEqual([1, 1, 0]);
  return /run id: (r_\w+)/.exec(result.stdout)![1]!;
}

function check(runId: string) {
  expect([count('a'), count('b'), count('c')]).toEqual([1, 2, 1]);
  const run = jsonOf<RunJson>(['runs', runId, '--format', 'json'], box.dir);
  expect(run.state).toBe('succeeded');
  expect(run.tasks.map((t) => [t.task, t.state, t.attempts])).toEqual([
    ['a', 'succeeded', 1],
    ['b', 'succeeded', 2],
    ['c', 'succeeded', 1],
  ]);
  expect(run.tasks[2]!.output?.stdout).toBe('a said from-a');
}

describe('weft resume of a failed run', () => {
  it('runs the failed task and its dependents again, not what succeeded', () => {
    const runId = failedRun();
    writeFileSync(join(box.dir, 'marker'), '');
    const resumed = weft(['resume', runId], { cwd: box.dir });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toContain(`resuming run ${runId} of chain`);
    expect(resumed.stdout).toMatch(/ b started \(attempt 2\)$/m);
    expect(resumed.stdout).not.toMatch(/ a started/);
    expect(resumed.stdout).toMatch(/chain ✔ succeeded in /);
    check(runId);
  });

  it('--task b runs b and everything downstream of it', () => {
    const runId = failedRun();
    writeFileSync(join(box.dir, 'marker'), '');
    const resumed = weft(['resume', runId, '--task', 'b', '-q'], { cwd: box.dir });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toBe('');
    check(runId);
  });

  it('a resume that fails again exits 1, and a succeeded run cannot be resumed', () => {
    const runId = failedRun();
    const again = weft(['resume', runId, '-q'], { cwd: box.dir });
    expect(again.code).toBe(1);
    expect([count('a'), count('b'), count('c')]).toEqual([1, 2, 0]);
    writeFileSync(join(box.dir, 'marker'), '');
    expect(weft(['resume', runId, '-q'], { cwd: box.dir }).code).toBe(0);
    const done = weft(['resume', runId], { cwd: box.dir });
    expect(done.code).toBe(1);
    expect(done.stderr).toMatch(/^error: .*succeeded/m);
    expect(done.stderr).not.toMatch(/\bat .+\.js:\d+/);
  });

  it('--task with a task the pipeline does not have is an error naming it', () => {
    const runId = failedRun();
    const result = weft(['resume', runId, '--task', 'nope'], { cwd: box.dir });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('nope');
    expect(result.stderr).not.toMatch(/\bat .+\.js:\d+/);
    expect(count('b')).toBe(1);
  });
});
