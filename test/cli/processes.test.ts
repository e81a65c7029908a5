import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawnWeft, tempProject, weft, WEFT_BIN } from './helpers.js';

/** Runs weft, expects exit 0 (showing stderr if not) and parses its JSON stdout. */
function jsonOf<T>(args: string[], cwd: string): T {
  const result = weft(args, { cwd });
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as T;
}

// What happens to a `weft run` process from the outside: timeouts, Ctrl-C, kill -9, a cancel from
// another process, two runs at once. Every test waits on what the process prints or stores, not
// on fixed sleeps.

const project = tempProject({
  'pipelines/timeout.yaml': [
    'name: timeout',
    'tasks:',
    '  slow:',
    '    handler: shell',
    '    timeout: 500ms',
    '    with: { command: "echo $$; exec sleep 30" }',
    '',
  ].join('\n'),
  'pipelines/stubborn-timeout.yaml': [
    'name: stubborn-timeout',
    'tasks:',
    '  slow:',
    '    handler: shell',
    '    timeout: 500ms',
    // Ignores SIGTERM (and so does its child): only the SIGKILL after kill_grace stops them.
    `    with: { command: "trap '' TERM; echo $$; sleep 30; echo survived", kill_grace: 300ms }`,
    '',
  ].join('\n'),
  'pipelines/long.yaml': [
    'name: long',
    'tasks:',
    '  a:',
    '    handler: shell',
    '    with: { command: "echo x >> count-a" }',
    '  b:',
    '    handler: shell',
    '    depends_on: a',
    '    with: { command: "echo $$; test -f marker || sleep 30; echo x >> count-b" }',
    '  c: { handler: noop, depends_on: b }',
    '',
  ].join('\n'),
  'pipelines/stubborn.yaml': [
    'name: stubborn',
    'tasks:',
    '  s:',
    '    handler: shell',
    `    with: { command: "trap '' TERM; echo $$; sleep 30", kill_grace: 20s }`,
    '',
  ].join('\n'),
  'pipelines/busy.yaml': [
    'name: busy',
    'concurrency: 2',
    'tasks:',
    // A barrier: neither run gets past `a` until both have reached it, so the two really overlap.
    '  a:',
    '    handler: shell',
    // A hang guard: the other process may take seconds to start on a busy machine.
    '    timeout: 30s',
    '    with:',
    '      command: |',
    '        echo x >> arrived',
    '        while [ "$(wc -l < arrived)" -lt 2 ]; do sleep 0.02; done',
    '        for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i; done',
    '  b: { handler: shell, with: { command: "for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i; done" } }',
    '  c: { handler: sleep, depends_on: [a, b], with: { duration: 200ms } }',
    '  d: { handler: noop, depends_on: c }',
    '',
  ].join('\n'),
});
afterAll(() => project.cleanup());

interface Tracked {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

const started: Tracked[] = [];
/** Process groups of shell tasks a test made into orphans on purpose; killed after it. */
const orphanGroups: number[] = [];

afterEach(() => {
  for (const tracked of started.splice(0)) {
    if (tracked.child.exitCode === null && tracked.child.signalCode === null) tracked.child.kill('SIGKILL');
  }
  for (const pgid of orphanGroups.splice(0)) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

function start(args: string[], cwd: string): Tracked {
  const child = spawnWeft(args, { cwd });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  const tracked = { child, stdout: () => out, stderr: () => err, exited };
  started.push(tracked);
  return tracked;
}

async function until<T>(
  what: string,
  probe: () => T | undefined | null | false,
  // Spawned node processes take seconds to start on a busy machine.
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A live (not zombie) process with this pid. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return existsSync(`/proc/${pid}`);
  }
}

/** Live processes in a process group (Linux /proc). */
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') members.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return members;
}

interface RunJson {
  id: string;
  state: string;
  tasks: {
    task: string;
    state: string;
    attempts: number;
    attempt_history: {
      attempt: number;
      state: string;
      started_at: string | null;
      finished_at: string | null;
    }[];
  }[];
}

function attemptMs(run: RunJson, task: string, attempt: number): number {
  const record = run.tasks.find((t) => t.task === task)?.attempt_history.find((a) => a.attempt === attempt);
  return Date.parse(record!.finished_at!) - Date.parse(record!.started_at!);
}

function showRun(cwd: string, runId: string): RunJson {
  const result = weft(['runs', runId, '--format', 'json'], { cwd });
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as RunJson;
}

const runIdIn = (text: string) => /run (r_\w+) of /.exec(text)?.[1];
/**
 * The pid a shell task printed first (`echo $$`), from the plain progress lines. Its newline must
 * have come too: output read while the process runs may end in the middle of the number.
 */
const pidPrintedBy = (text: string, task: string) => {
  const match = new RegExp(` ${task} \\| (\\d+)\\n`).exec(text);
  return match ? Number(match[1]) : undefined;
};

describe('timeout', () => {
  it('fails a task as timed out soon after its timeout and leaves no process behind', async () => {
    const run = start(['run', 'timeout'], project.dir);
    const { code } = await run.exited;
    expect(code).toBe(1);
    expect(run.stdout()).toMatch(
      / slow failed after 1 attempt: task "slow" timed out after 500ms \(pipelines\/timeout.yaml:\d+:\d+\)$/m,
    );
    const pid = pidPrintedBy(run.stdout(), 'slow');
    expect(pid).toBeGreaterThan(1);
    expect(isAlive(pid!)).toBe(false);
    expect(groupMembers(pid!)).toEqual([]);
    const stored = showRun(project.dir, runIdIn(run.stdout())!);
    expect(stored.state).toBe('failed');
    expect(stored.tasks[0]).toMatchObject({ task: 'slow', state: 'failed', attempts: 1 });
    // Timed by weft itself, so a slow machine starting node does not count.
    expect(attemptMs(stored, 'slow', 1)).toBeGreaterThanOrEqual(450);
    expect(attemptMs(stored, 'slow', 1)).toBeLessThan(2000);
  });

  it('kills a command that ignores SIGTERM once kill_grace has passed, children included', async () => {
    const run = start(['run', 'stubborn-timeout'], project.dir);
    const { code } = await run.exited;
    expect(code).toBe(1);
    expect(run.stdout()).toContain('timed out after 500ms');
    // The attempt fails at its timeout; the process then waits out kill_grace for the SIGKILL.
    const stored = showRun(project.dir, runIdIn(run.stdout())!);
    expect(attemptMs(stored, 'slow', 1)).toBeLessThan(2000);
    const pgid = pidPrintedBy(run.stdout(), 'slow')!;
    orphanGroups.push(pgid); // only matters if the assertion below fails
    expect(groupMembers(pgid)).toEqual([]);
    expect(run.stdout()).not.toContain('survived');
  });
});

describe('Ctrl-C', () => {
  it('cancels the run: exit 1 within seconds, the run cancelled in the store, no task left running', async () => {
    const dir = project.dir;
    const run = start(['run', 'long'], dir);
    const pid = await until('b to start', () => pidPrintedBy(run.stdout(), 'b'));
    const runId = runIdIn(run.stdout())!;
    const before = showRun(dir, runId);
    expect(before.state).toBe('running');
    expect(before.tasks.find((t) => t.task === 'b')?.state).toBe('running');

    const sentAt = Date.now();
    run.child.kill('SIGINT');
    const { code, at } = await run.exited;
    expect(code).toBe(1);
    expect(at - sentAt).toBeLessThan(5000);
    expect(run.stderr()).toContain(`SIGINT: cancelling run ${runId}`);
    expect(run.stdout()).toMatch(/long ■ cancelled in /);
    expect(groupMembers(pid)).toEqual([]);

    const after = showRun(dir, runId);
    expect(after.state).toBe('cancelled');
    expect(after.tasks.map((t) => [t.task, t.state])).toEqual([
      ['a', 'succeeded'],
      ['b', 'cancelled'],
      ['c', 'cancelled'],
    ]);
    expect(after.tasks.flatMap((t) => t.attempt_history).filter((a) => a.state === 'running')).toEqual([]);
  });

  it('a second Ctrl-C exits at once with 130; the run is then found interrupted', async () => {
    const dir = project.dir;
    const run = start(['run', 'stubborn'], dir);
    const pgid = await until('s to start', () => pidPrintedBy(run.stdout(), 's'));
    orphanGroups.push(pgid); // exiting at once leaves the command running: that is the point
    const runId = runIdIn(run.stdout())!;
    run.child.kill('SIGINT');
    await until('the first Ctrl-C to be seen', () => run.stderr().includes('press Ctrl-C again'));
    const sentAt = Date.now();
    run.child.kill('SIGINT');
    const { code, at } = await run.exited;
    expect(code).toBe(130);
    // The task would take kill_grace (20s) to stop; "at once" is far less than that.
    expect(at - sentAt).toBeLessThan(3000);
    const list = weft(['runs', '--format', 'json'], { cwd: dir });
    expect(list.stderr).toContain(`run ${runId} of stubborn was interrupted`);
    expect((JSON.parse(list.stdout) as RunJson[]).find((r) => r.id === runId)?.state).toBe('interrupted');
  });
});

/** util-linux `script` gives the CLI a real terminal, so the live task list is what runs. */
const HAS_SCRIPT = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;

describe('Ctrl-C on a terminal (the live task list)', () => {
  it.skipIf(!HAS_SCRIPT)('cancels the run just the same: the list must not exit on its own', async () => {
    const box = tempProject({
      'pipelines/long.yaml': readFileSync(join(project.dir, 'pipelines/long.yaml'), 'utf8'),
    });
    try {
      const dir = box.dir;
      const child = spawn(
        'script',
        ['-qfec', `stty cols 120 rows 40; exec '${process.execPath}' '${WEFT_BIN}' run long`, '/dev/null'],
        { cwd: dir, env: { ...process.env, NO_COLOR: '1' }, stdio: ['pipe', 'pipe', 'pipe'] },
      );
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      started.push({
        child,
        stdout: () => out,
        stderr: () => '',
        exited: exited.then((code) => ({ code, signal: null, at: 0 })),
      });
      const runId = await until('b to run', () => {
        const runs = JSON.parse(weft(['runs', '--format', 'json'], { cwd: dir }).stdout || '[]') as RunJson[];
        const id = runs[0]?.id;
        return id && showRun(dir, id).tasks.find((t) => t.task === 'b')?.state === 'running' ? id : undefined;
      });
      // What a user's Ctrl-C is: the terminal sends SIGINT to its foreground process group.
      child.stdin.write('\x03');
      expect(await exited).toBe(1);
      expect(out).toContain(`SIGINT: cancelling run ${runId}`);
      const stored = showRun(dir, runId);
      expect(stored.state).toBe('cancelled');
      expect(stored.tasks.map((t) => [t.task, t.state])).toEqual([
        ['a', 'succeeded'],
        ['b', 'cancelled'],
        ['c', 'cancelled'],
      ]);
    } finally {
      box.cleanup();
    }
  });
});

describe('weft cancel from another process', () => {
  it('stops the running weft run, which exits 1 with the run cancelled', async () => {
    const dir = project.dir;
    const run = start(['run', 'long'], dir);
    await until('b to start', () => pidPrintedBy(run.stdout(), 'b'));
    const runId = runIdIn(run.stdout())!;
    const cancel = weft(['cancel', runId], { cwd: dir });
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toBe(`run ${runId} cancelled\n`);
    const { code } = await run.exited;
    expect(code).toBe(1);
    expect(run.stdout()).toMatch(/long ■ cancelled in /);
    const stored = showRun(dir, runId);
    expect(stored.state).toBe('cancelled');
    expect(stored.tasks.filter((t) => t.state === 'running' || t.state === 'pending')).toEqual([]);
    // Cancelling a finished run changes nothing.
    const again = weft(['cancel', runId], { cwd: dir });
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(`run ${runId} already cancelled\n`);
  });
});

describe('kill -9 of weft run, then weft resume', () => {
  it('reports the run interrupted and resume finishes it without running finished tasks again', async () => {
    const box = tempProject({
      'pipelines/long.yaml': readFileSync(join(project.dir, 'pipelines/long.yaml'), 'utf8'),
    });
    try {
      const dir = box.dir;
      const run = start(['run', 'long'], dir);
      const pid = await until('b to start', () => pidPrintedBy(run.stdout(), 'b'));
      orphanGroups.push(pid);
      const runId = runIdIn(run.stdout())!;
      run.child.kill('SIGKILL');
      expect((await run.exited).signal).toBe('SIGKILL');
      // The shell task runs in its own process group (so timeouts can stop all of it); nothing is
      // left to stop it when weft itself is killed with -9, so today it outlives weft. Stop it here
      // so that it cannot write count-b later.
      if (isAlive(pid)) process.kill(-pid, 'SIGKILL');
      await until('the orphaned task to die', () => !isAlive(pid));

      const list = weft(['runs'], { cwd: dir });
      expect(list.code).toBe(0);
      expect(list.stderr).toContain(
        `run ${runId} of long was interrupted (its process died); finish it with: weft resume ${runId}`,
      );
      expect(list.stdout).toMatch(new RegExp(`^${runId}\\s+long\\s+⚡ interrupted`, 'm'));

      writeFileSync(join(dir, 'marker'), '');
      const resumed = weft(['resume', runId], { cwd: dir });
      expect(resumed.code, resumed.stdout + resumed.stderr).toBe(0);
      expect(resumed.stdout).toContain(`resuming run ${runId} of long`);
      expect(readFileSync(join(dir, 'count-a'), 'utf8')).toBe('x\n');
      expect(readFileSync(join(dir, 'count-b'), 'utf8')).toBe('x\n');
      const stored = showRun(dir, runId);
      expect(stored.state).toBe('succeeded');
      expect(stored.tasks.map((t) => [t.task, t.state, t.attempts])).toEqual([
        ['a', 'succeeded', 1],
        ['b', 'succeeded', 2],
        ['c', 'succeeded', 1],
      ]);
      expect(stored.tasks[1]!.attempt_history.map((a) => a.state)).toEqual(['lost', 'succeeded']);
    } finally {
      box.cleanup();
    }
  });
});

describe('two weft run processes on one store', () => {
  it('both succeed and both runs are stored intact', async () => {
    const box = tempProject({
      'pipelines/busy.yaml': readFileSync(join(project.dir, 'pipelines/busy.yaml'), 'utf8'),
    });
    try {
      const dir = box.dir;
      const first = start(['run', 'busy'], dir);
      const second = start(['run', 'busy'], dir);
      const [one, two] = await Promise.all([first.exited, second.exited]);
      expect([one.code, two.code], first.stderr() + second.stderr()).toEqual([0, 0]);
      const ids = [runIdIn(first.stdout())!, runIdIn(second.stdout())!];
      expect(new Set(ids).size).toBe(2);

      const list = jsonOf<RunJson[]>(['runs', '--format', 'json'], dir);
      expect(list.map((r) => r.id).sort()).toEqual([...ids].sort());
      for (const id of ids) {
        const stored = showRun(dir, id);
        expect(stored.state).toBe('succeeded');
        expect(stored.tasks.map((t) => [t.task, t.state, t.attempts])).toEqual([
          ['a', 'succeeded', 1],
          ['b', 'succeeded', 1],
          ['c', 'succeeded', 1],
          ['d', 'succeeded', 1],
        ]);
        const logs = weft(['logs', id, 'a'], { cwd: dir }).stdout.trimEnd().split('\n');
        expect(logs.map((l) => l.split(' a#1 ')[1])).toEqual(
          Array.from({ length: 10 }, (_, i) => `line ${i + 1}`),
        );
      }
      const db = new Database(join(dir, '.weft', 'weft.db'), { readonly: true });
      try {
        expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      } finally {
        db.close();
      }
    } finally {
      box.cleanup();
    }
  });
});
