import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isNonRetryable } from '../../src/errors.js';
import {
  createShellHandler,
  SHELL_GATE as shellGate,
  shellHandler,
  type ShellArgs,
} from '../../src/handlers/builtin/shell.js';
import { createTestContext, type TestContext } from '../support/handler-context.js';

function run(args: ShellArgs, test: TestContext = createTestContext()) {
  return Promise.resolve(shellHandler.run(args, test.ctx));
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  const outcome = await promise.then(
    () => null,
    (error: unknown) => error,
  );
  expect(outcome).toBeInstanceOf(Error);
  return outcome as Error;
}

/**
 * Gone: no such process, or a zombie. Orphans killed in a container whose PID 1 does not reap
 * stay zombies forever; a zombie runs nothing and holds nothing, so it counts as gone.
 */
function isGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return true;
    throw error;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

// Generous: a busy machine may take seconds to start a command.
async function waitFor(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('shell: running commands', () => {
  it('runs an argv array without a shell: nothing in it is interpreted', async () => {
    const out = await run({ command: ['printf', '%s|', '$HOME', 'a b', '`id`;'] });
    expect(out).toEqual({ exitCode: 0, stdout: '$HOME|a b|`id`;|' });
  });

  it('runs a string with /bin/sh -c', async () => {
    const out = await run({ command: 'x=$((1 + 2)); echo "sum $x" | tr a-z A-Z' });
    expect(out).toEqual({ exitCode: 0, stdout: 'SUM 3' });
  });

  it('passes the context env and the task env, the task env last', async () => {
    const test = createTestContext({ env: { FROM_CTX: 'ctx', BOTH: 'ctx' } });
    const out = await run(
      {
        command: 'printf %s "$FROM_CTX,$BOTH,$FROM_TASK,${PATH:+path}"',
        env: { BOTH: 'task', FROM_TASK: 't' },
      },
      test,
    );
    expect(out).toEqual({ exitCode: 0, stdout: 'ctx,task,t,path' });
  });

  it('runs in cwd', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-shell-'));
    dirs.push(dir);
    expect(await run({ command: ['pwd'], cwd: dir })).toEqual({ exitCode: 0, stdout: realpathSync(dir) });
  });

  it('streams each line to the log as it arrives, stdout and stderr in order', async () => {
    const test = createTestContext();
    const pending = run(
      {
        command:
          'echo one; sleep 0.05; echo two >&2; sleep 0.05; printf "three\\r\\nfour"; sleep 1; echo end',
      },
      test,
    );
    // Logged while the command still runs, not at the end. (A pause before "end" of a second: this
    // process, paused by a busy machine, must not find both lines at once when it looks.)
    await waitFor(() => test.linesOf('stdout').includes('three'));
    // "four" has no newline yet: it is held until its line ends.
    expect(test.linesOf('stdout')).toEqual(['one', 'three']);
    expect(await pending).toEqual({ exitCode: 0, stdout: 'one\nthree\r\nfourend' });
    expect(test.lines.filter((l) => l.stream === 'stdout' || l.stream === 'stderr')).toEqual([
      { stream: 'stdout', line: 'one' },
      { stream: 'stderr', line: 'two' },
      { stream: 'stdout', line: 'three' },
      { stream: 'stdout', line: 'fourend' },
    ]);
  });

  it('caps the captured stdout and says so, while logging every line', async () => {
    const test = createTestContext();
    const out = (await run(
      { command: 'for i in $(seq 1 500); do echo "line $i"; done', stdout_limit: 100 },
      test,
    )) as {
      stdout: string;
    };
    const [kept, note] = out.stdout.split('\n[weft: ');
    expect(kept).toBe(
      Array.from({ length: 20 }, (_, i) => `line ${i + 1}`)
        .join('\n')
        .slice(0, 100),
    );
    const total = Array.from({ length: 500 }, (_, i) => `line ${i + 1}\n`).join('').length;
    expect(note).toBe(`stdout truncated to 100 bytes, ${total - 100} more bytes not kept]`);
    expect(test.linesOf('stdout')).toHaveLength(500);
  });

  it('reports the pid to onSpawn', async () => {
    const pids: number[] = [];
    const handler = createShellHandler({ onSpawn: (pid) => pids.push(pid) });
    const out = (await handler.run({ command: 'echo $$' }, createTestContext().ctx)) as { stdout: string };
    expect(pids).toEqual([Number(out.stdout)]);
  });
});

describe('shell: the gate (nothing runs before its process group is recorded)', () => {
  it('holds the command until recordChildProcess resolves, then runs it with /dev/null as stdin', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-gate-'));
    try {
      const marker = join(dir, 'started');
      let open!: () => void;
      const recorded: number[] = [];
      const test = createTestContext();
      test.ctx.recordChildProcess = (pgid) => {
        recorded.push(pgid);
        return new Promise<void>((resolve) => (open = resolve));
      };
      const result = shellHandler.run({ command: `touch ${marker}; cat; echo $$` }, test.ctx);
      await new Promise((r) => setTimeout(r, 300));
      expect(recorded).toHaveLength(1);
      expect(existsSync(marker)).toBe(false);
      open();
      const out = (await result) as { exitCode: number; stdout: string };
      expect(existsSync(marker)).toBe(true);
      // `cat` read /dev/null (no gate line left over), and the shell is the recorded group.
      expect(out).toEqual({ exitCode: 0, stdout: `${recorded[0]}` });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a child whose weft died at the gate exits without running anything', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-gate-'));
    try {
      const marker = join(dir, 'started');
      // The gate's shell with its stdin closed at once, as when weft is SIGKILLed before writing.
      const script = `${shellGate}touch ${marker}`;
      const result = spawnSync('/bin/sh', ['-c', script], { stdio: ['pipe', 'ignore', 'ignore'], input: '' });
      expect(result.status).toBe(125);
      expect(existsSync(marker)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('shell: failures', () => {
  it('rejects a non-zero exit with the code and the last 20 stderr lines, retryably', async () => {
    const error = await failure(
      run({ command: 'for i in $(seq 1 30); do echo "err $i" >&2; done; echo fine; exit 3' }),
    );
    const [first, ...tail] = error.message.split('\n');
    expect(first).toBe('command exited with code 3');
    expect(tail).toEqual(Array.from({ length: 20 }, (_, i) => `err ${i + 11}`));
    expect(isNonRetryable(error)).toBe(false);
  });

  it('says which signal killed the command', async () => {
    const error = await failure(run({ command: 'echo bye >&2; kill -KILL $$' }));
    expect(error.message).toBe('command was killed by signal SIGKILL\nbye');
  });

  it('fails for good when the program does not exist', async () => {
    const error = await failure(run({ command: ['weft-no-such-program-xyz', 'a'] }));
    expect(error.message).toMatch(/^cannot start weft-no-such-program-xyz: /);
    expect(isNonRetryable(error)).toBe(true);
  });

  it('does not start when the signal is already aborted', async () => {
    const pids: number[] = [];
    const test = createTestContext();
    test.abort(new Error('cancelled'));
    const handler = createShellHandler({ onSpawn: (pid) => pids.push(pid) });
    const error = await failure(Promise.resolve(handler.run({ command: 'echo hi' }, test.ctx)));
    expect(error.message).toBe('cancelled');
    expect(pids).toEqual([]);
  });
});

describe('shell: abort stops the whole process group', () => {
  it('stops a cooperative command at once, with the abort reason', async () => {
    const test = createTestContext();
    let pid = 0;
    const handler = createShellHandler({ onSpawn: (p) => (pid = p) });
    const pending = Promise.resolve(handler.run({ command: 'echo up; sleep 30' }, test.ctx));
    await waitFor(() => test.linesOf('stdout').includes('up'));
    const reason = new Error('task timed out after 1s');
    // Timed from the abort: how long the command took to start is not what this is about.
    const abortedAt = Date.now();
    test.abort(reason);
    await expect(pending).rejects.toBe(reason);
    expect(Date.now() - abortedAt).toBeLessThan(2000); // well under the 5s grace: SIGTERM sufficed
    expect(isGone(pid)).toBe(true);
  });

  it('kills a SIGTERM-ignoring command and its child after kill_grace, leaving no orphan', async () => {
    const test = createTestContext();
    let pid = 0;
    const handler = createShellHandler({ onSpawn: (p) => (pid = p) });
    const pending = Promise.resolve(
      handler.run({ command: 'trap "" TERM; sleep 30 & echo $!; wait; wait', kill_grace: '300ms' }, test.ctx),
    );
    await waitFor(() => test.linesOf('stdout').length === 1);
    const grandchild = Number(test.linesOf('stdout')[0]);
    expect(grandchild).toBeGreaterThan(0);
    const abortedAt = Date.now();
    test.abort(new Error('task timed out'));
    await expect(pending).rejects.toThrow('task timed out');
    const waited = Date.now() - abortedAt;
    expect(waited).toBeGreaterThanOrEqual(280);
    expect(waited).toBeLessThan(2000);
    expect(isGone(pid)).toBe(true);
    expect(isGone(grandchild)).toBe(true);
  });

  it('kills a TERM-ignoring grandchild that left the pipes, after the shell itself obeyed', async () => {
    const test = createTestContext();
    const pending = run(
      { command: '(trap "" TERM; sleep 30) </dev/null >/dev/null 2>&1 & echo $!; wait', kill_grace: '200ms' },
      test,
    );
    await waitFor(() => test.linesOf('stdout').length === 1);
    const grandchild = Number(test.linesOf('stdout')[0]);
    test.abort(new Error('cancelled'));
    await expect(pending).rejects.toThrow('cancelled');
    expect(isGone(grandchild)).toBe(true);
  });
});
