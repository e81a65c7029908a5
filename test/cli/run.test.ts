import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempProject, weft, type CliResult } from './helpers.js';

/** Runs weft, expects exit 0 (showing stderr if not) and parses its JSON stdout. */
function jsonOf<T>(args: string[], cwd: string): T {
  const result = weft(args, { cwd });
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as T;
}

// End-to-end: `weft run`, then `weft runs` and `weft logs` reading what it recorded, each a real
// process on a real SQLite store in a temp folder.

const project = tempProject({
  'pipelines/small.yaml': [
    'name: small',
    'tasks:',
    '  say:',
    '    handler: shell',
    '    with: { command: "echo hello from say; echo second line" }',
    '  mid: { handler: noop, depends_on: say }',
    '  flaky:',
    '    handler: fail',
    '    depends_on: mid',
    '    with: { times: 2 }',
    '    retries: 2',
    '    retry_delay: 100ms',
    '',
  ].join('\n'),
  'pipelines/broken.yaml': [
    'name: broken',
    'tasks:',
    '  a: { handler: noop }',
    '  b:',
    '    handler: shell',
    '    depends_on: a',
    '    with: { command: "echo disk full >&2; exit 3" }',
    '  c: { handler: noop, depends_on: b }',
    '',
  ].join('\n'),
});
afterAll(() => project.cleanup());

const cwd = project.dir;
const ISO = String.raw`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`;

interface AttemptJson {
  attempt: number;
  state: string;
  delay_ms: number;
  started_at: string | null;
  finished_at: string | null;
  error: { code: string; message: string } | null;
}
interface TaskJson {
  task: string;
  state: string;
  attempts: number;
  output: unknown;
  reason: string | null;
  error: { message: string } | null;
  attempt_history: AttemptJson[];
}
interface RunJson {
  id: string;
  pipeline: string;
  state: string;
  started_at: string | null;
  finished_at: string | null;
  tasks: TaskJson[];
}

function runIdOf(stdout: string): string {
  const match = /run id: (r_\w+)/.exec(stdout);
  expect(match, `no run id in:\n${stdout}`).not.toBeNull();
  return match![1]!;
}

/** Row of a summary table: "  TASK  STATE  ATTEMPTS  …" split on runs of spaces. */
function summaryRow(stdout: string, task: string): string[] {
  const line = stdout.split('\n').find((l) => l.trimStart().startsWith(`${task} `));
  expect(line, `no row for ${task} in:\n${stdout}`).toBeDefined();
  return line!.trim().split(/\s{2,}/);
}

describe('weft run (a pipeline that succeeds)', () => {
  let result: CliResult;
  let runId: string;
  beforeAll(() => {
    result = weft(['run', 'small'], { cwd });
    runId = /run id: (r_\w+)/.exec(result.stdout)?.[1] ?? 'missing';
  });

  it('exits 0 and prints a summary with each task’s state and attempts, and the run id', () => {
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(runIdOf(result.stdout)).toMatch(/^r_\w+$/);
    expect(summaryRow(result.stdout, 'say').slice(0, 3)).toEqual(['say', '✔ succeeded', '1']);
    expect(summaryRow(result.stdout, 'mid').slice(0, 3)).toEqual(['mid', '✔ succeeded', '1']);
    expect(summaryRow(result.stdout, 'flaky').slice(0, 3)).toEqual(['flaky', '✔ succeeded', '3']);
    expect(result.stdout).toMatch(/small ✔ succeeded in \S+ — 3 succeeded/);
    expect(result.stdout).toContain(`weft logs ${runId} [TASK]`);
  });

  it('prints plain timestamped lines (no colour, no live list) when stdout is not a terminal, retries included', () => {
    expect(result.stdout).not.toContain('\u001b[');
    expect(result.stdout).toMatch(new RegExp(`^${ISO} run ${runId} of small started: 3 tasks$`, 'm'));
    expect(result.stdout).toMatch(new RegExp(`^${ISO} say \\| hello from say$`, 'm'));
    // The attempt that failed is the one named, then the next one starts after the delay.
    expect(result.stdout).toMatch(
      new RegExp(
        `^${ISO} flaky failed \\(attempt 1\\): failing on purpose \\(attempt 1\\); retrying in 100ms$`,
        'm',
      ),
    );
    expect(result.stdout).toMatch(
      new RegExp(
        `^${ISO} flaky failed \\(attempt 2\\): failing on purpose \\(attempt 2\\); retrying in 100ms$`,
        'm',
      ),
    );
    expect(result.stdout).toMatch(new RegExp(`^${ISO} flaky started \\(attempt 3\\)$`, 'm'));
    expect(result.stdout).toMatch(new RegExp(`^${ISO} flaky succeeded in `, 'm'));
  });

  it('is listed by weft runs', () => {
    const list = weft(['runs'], { cwd });
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`^${runId}\\s+small\\s+✔ succeeded\\s+manual\\s+${ISO}`, 'm'));
    const json = jsonOf<RunJson[]>(['runs', '--format', 'json'], cwd);
    expect(json.map((r) => [r.id, r.state])).toContainEqual([runId, 'succeeded']);
  });

  it('weft runs ID --format json has the run, its tasks and every attempt with its delay', () => {
    const show = weft(['runs', runId, '--format', 'json'], { cwd });
    expect(show.code).toBe(0);
    const run = JSON.parse(show.stdout) as RunJson;
    expect(run).toMatchObject({ id: runId, pipeline: 'small', state: 'succeeded' });
    expect(run.started_at).toMatch(new RegExp(`^${ISO}$`));
    expect(run.finished_at).toMatch(new RegExp(`^${ISO}$`));
    expect(run.tasks.map((t) => [t.task, t.state, t.attempts])).toEqual([
      ['say', 'succeeded', 1],
      ['mid', 'succeeded', 1],
      ['flaky', 'succeeded', 3],
    ]);
    const flaky = run.tasks.find((t) => t.task === 'flaky')!;
    expect(flaky.output).toEqual({ attempt: 3 });
    expect(flaky.attempt_history.map((a) => [a.attempt, a.state, a.delay_ms])).toEqual([
      [1, 'failed', 0],
      [2, 'failed', 100],
      [3, 'succeeded', 100],
    ]);
    expect(flaky.attempt_history[0]!.error).toMatchObject({ message: 'failing on purpose (attempt 1)' });
    // The delay really passed between one attempt's end and the next one's start.
    const [first, second] = flaky.attempt_history;
    expect(Date.parse(second!.started_at!) - Date.parse(first!.finished_at!)).toBeGreaterThanOrEqual(90);
    const say = run.tasks.find((t) => t.task === 'say')!;
    expect(say.output).toEqual({ exitCode: 0, stdout: 'hello from say\nsecond line' });
  });

  it('weft runs ID (text) lists the retried attempts with their delays', () => {
    const show = weft(['runs', runId], { cwd });
    expect(show.code).toBe(0);
    expect(show.stdout).toContain(`small run ${runId}: ✔ succeeded`);
    expect(show.stdout).toMatch(/^ {2}flaky #1 ✖ failed failing on purpose \(attempt 1\)$/m);
    expect(show.stdout).toMatch(/^ {2}flaky #2 ✖ failed after 100ms failing on purpose \(attempt 2\)$/m);
    expect(show.stdout).toMatch(/^ {2}flaky #3 ✔ succeeded after 100ms$/m);
  });

  it('weft logs ID TASK shows the shell task’s stdout lines, in order', () => {
    const logs = weft(['logs', runId, 'say'], { cwd });
    expect(logs.code).toBe(0);
    const lines = logs.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(new RegExp(`^${ISO} say#1 hello from say$`));
    expect(lines[1]).toMatch(new RegExp(`^${ISO} say#1 second line$`));
    const json = weft(['logs', runId, 'say', '--format', 'json'], { cwd });
    const records = json.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { task: string; message: string });
    expect(records.map((r) => [r.task, r.message])).toEqual([
      ['say', 'hello from say'],
      ['say', 'second line'],
    ]);
  });
});

describe('weft run (a pipeline that fails)', () => {
  let result: CliResult;
  beforeAll(() => {
    result = weft(['run', 'broken'], { cwd });
  });

  it('exits 1 and the summary says which task failed and why', () => {
    expect(result.code).toBe(1);
    expect(summaryRow(result.stdout, 'a').slice(0, 3)).toEqual(['a', '✔ succeeded', '1']);
    expect(summaryRow(result.stdout, 'b')).toEqual([
      'b',
      '✖ failed',
      '1',
      expect.any(String),
      'command exited with code 3',
    ]);
    expect(summaryRow(result.stdout, 'c')).toEqual(['c', '↓ skipped', '0', '-', 'upstream task "b" failed']);
    expect(result.stdout).toMatch(/broken ✖ failed in \S+ — 1 succeeded, 1 failed, 1 skipped/);
    // The failed task is named with where it is in the YAML.
    expect(result.stdout).toMatch(/✖ b \(pipelines\/broken\.yaml:\d+:3\): command exited with code 3/);
    const runId = runIdOf(result.stdout);
    expect(result.stdout).toContain(`weft resume ${runId}`);
    expect(result.stderr).not.toMatch(/\bat .+\.js:\d+/);
  });

  it('records the error with the command’s stderr, and the stderr lines as logs', () => {
    const runId = runIdOf(result.stdout);
    const run = jsonOf<RunJson>(['runs', runId, '--format', 'json'], cwd);
    expect(run.state).toBe('failed');
    const b = run.tasks.find((t) => t.task === 'b')!;
    expect(b.error?.message).toBe('command exited with code 3\ndisk full');
    const logs = weft(['logs', runId, 'b'], { cwd });
    expect(logs.stdout).toMatch(new RegExp(`^${ISO} b#1 disk full$`, 'm'));
  });

  it('--format json prints the finished run as JSON and nothing else on stdout', () => {
    const json = weft(['run', 'broken', '--format', 'json'], { cwd });
    expect(json.code).toBe(1);
    const run = JSON.parse(json.stdout) as RunJson;
    expect(run.state).toBe('failed');
    expect(run.tasks.map((t) => t.state)).toEqual(['succeeded', 'failed', 'skipped']);
  });

  it('-q prints nothing and keeps the exit code', () => {
    const quiet = weft(['run', 'broken', '-q'], { cwd });
    expect(quiet.code).toBe(1);
    expect(quiet.stdout).toBe('');
  });
});
