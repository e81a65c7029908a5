import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogWriter } from '../../src/engine/log-writer.js';
import { createRun } from '../../src/engine/create-run.js';
import { createMemoryStore } from '../../src/store/memory/memory-store.js';
import type { LogRecord } from '../../src/store/run-store.js';
import { ok, plan } from '../support/plan-builder.js';
import { spawnWeft, tempProject, weft } from '../cli/helpers.js';
import { chattyHandlerSource, compareLogs, describeSurvival, readLogged } from './log-lines.js';
import { count, isFullTier, seededRng } from './tier.js';

/**
 * Item 10: log lines survive a kill -9 of the weft process. A real `weft run` (the built CLI)
 * runs a shell task printing a numbered line every ~50 ms; after ~2 s weft is killed with
 * SIGKILL. Every line printed more than a second before the kill must be in the store, and the
 * attempt the kill cut short must say so (state `lost`, error TASK_LOST), not stay blank.
 */

const SCRIPT = [
  // The shell writes its own pid (= its process group) first, for the cleanup below.
  'echo $$ > pid',
  // Resumed: the side file exists, the task ends at once.
  'if [ -f side ]; then echo resumed; exit 0; fi',
  'i=0',
  'while [ $i -lt 400 ]; do',
  // The side file first: it is the record of what was printed, and when (ms since the epoch).
  '  echo "$i $(date +%s%3N)" >> side',
  '  echo "line $i"',
  '  i=$((i+1))',
  '  sleep 0.05',
  'done',
].join('\n');

const PIPELINE = `name: chatty
tasks:
  talk:
    handler: shell
    with:
      command: |
${SCRIPT.split('\n')
  .map((line) => `        ${line}`)
  .join('\n')}
`;

const projects: { cleanup: () => void }[] = [];
afterAll(() => {
  for (const p of projects) p.cleanup();
});

function killGroup(dir: string): void {
  const file = join(dir, 'pid');
  if (!existsSync(file)) return;
  try {
    process.kill(-Number(readFileSync(file, 'utf8').trim()), 'SIGKILL');
  } catch {
    // already gone
  }
}

async function until<T>(what: string, probe: () => T | undefined | null | false, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface RunJson {
  id: string;
  state: string;
  tasks: {
    task: string;
    state: string;
    attempt_history: { state: string; error: { code: string; message: string } | null }[];
  }[];
}

describe('log lines survive kill -9 of weft run', () => {
  it('every line printed over a second before the kill is stored; the cut attempt is lost, with a reason', async () => {
    const project = tempProject({ 'pipelines/chatty.yaml': PIPELINE });
    projects.push(project);
    const { dir } = project;
    const child = spawnWeft(['run', 'chatty'], { cwd: dir });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on('close', (_code, signal) => resolve(signal)),
    );
    const runId = await until('the run id', () => /run (r_\w+) of /.exec(out)?.[1]);
    // Ten lines, then 1.5 s more: however slowly a loaded machine runs the loop, a good number
    // were printed over a second before the kill.
    await until('ten lines', () => readLogged(join(dir, 'side')).length >= 10);
    await new Promise((r) => setTimeout(r, 1500));
    const killedAt = Date.now();
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    // Nothing reads the task's output any more; stop it so that it cannot write on.
    killGroup(dir);

    const printed = readFileSync(join(dir, 'side'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => line.split(' ').map(Number) as [number, number]);
    expect(printed.length).toBeGreaterThanOrEqual(10);

    // The next command sees the run interrupted.
    const runs = weft(['runs', runId, '--format', 'json'], { cwd: dir });
    expect(runs.code, runs.stderr).toBe(0);
    expect(runs.stderr).toContain(`run ${runId} of chatty was interrupted`);
    const interrupted = JSON.parse(runs.stdout) as RunJson;
    expect(interrupted.state).toBe('interrupted');
    const cut = interrupted.tasks[0]!.attempt_history[0]!;
    expect(cut.state).toBe('lost');
    expect(cut.error?.code).toBe('TASK_LOST');
    expect(cut.error?.message).toMatch(/process .*(died|stopped)/);

    const logs = weft(['logs', runId, '--format', 'json'], { cwd: dir });
    expect(logs.code, logs.stderr).toBe(0);
    const stored = new Set(
      logs.stdout
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as LogRecord)
        .map((l) => /^line (\d+)$/.exec(l.message)?.[1])
        .filter((n): n is string => n !== undefined)
        .map(Number),
    );
    const due = printed.filter(([, at]) => at <= killedAt - 1000).map(([n]) => n);
    const missing = due.filter((n) => !stored.has(n));
    const lastStored = Math.max(...stored);
    const lastPrinted = printed[printed.length - 1]!;
    const lag = lastPrinted[1] - (printed.find(([n]) => n === lastStored)?.[1] ?? 0);
    console.log(
      `[reliability] logs: ${printed.length} lines printed before the kill, ${stored.size} stored; the newest stored line was printed ${lag} ms before the last one`,
    );
    expect(due.length).toBeGreaterThan(5);
    // The writer flushes every ~100 ms: far less than a second is ever at risk.
    expect(lag).toBeLessThan(1000);
    expect(missing).toEqual([]);

    // After resume the lost attempt keeps its reason and the task runs again.
    const resumed = weft(['resume', runId], { cwd: dir });
    expect(resumed.code, resumed.stdout + resumed.stderr).toBe(0);
    const after = JSON.parse(weft(['runs', runId, '--format', 'json'], { cwd: dir }).stdout) as RunJson;
    expect(after.state).toBe('succeeded');
    expect(after.tasks[0]!.attempt_history.map((a) => [a.state, a.error?.code ?? null])).toEqual([
      ['lost', 'TASK_LOST'],
      ['succeeded', null],
    ]);
  }, 40_000);
});

describe("log lines survive kill -9 of weft run: a JavaScript handler's ctx.log", () => {
  // The handler comes from the project's weft.config.mjs, as a user registers one; it runs inside
  // the weft process, so the kill stops it too and nothing outlives the test.
  const kills = count(1, 5);
  it(
    `${kills} kill(s): every ctx.log line over a second before the kill is stored, in order; the attempt is lost with its process`,
    async () => {
      const rng = seededRng('logs-survive-kill (ctx.log)');
      for (let round = 0; round < kills; round++) {
        const project = tempProject({
          'pipelines/chatty.yaml': 'name: chatty\ntasks:\n  talk:\n    handler: chatty\n',
          'weft.config.mjs': "import { handlers } from './chatty.mjs';\nexport default { handlers };\n",
        });
        projects.push(project);
        const { dir } = project;
        const side = join(dir, 'side');
        writeFileSync(join(dir, 'chatty.mjs'), chattyHandlerSource({ name: 'chatty', side, lines: 400 }));
        const child = spawnWeft(['run', 'chatty'], { cwd: dir });
        let out = '';
        child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
        const exited = new Promise<NodeJS.Signals | null>((resolve) =>
          child.on('close', (_code, signal) => resolve(signal)),
        );
        const runId = await until('the run id', () => /run (r_\w+) of /.exec(out)?.[1]);
        await until(`ten lines (${out})`, () => readLogged(side).length >= 10);
        // 1–2 s more: however slowly a loaded machine runs the handler, a good number of lines are
        // logged over a second before the kill.
        await new Promise((r) => setTimeout(r, 1000 + rng.int(1000)));
        const killedAt = Date.now();
        child.kill('SIGKILL');
        expect(await exited).toBe('SIGKILL');
        const logged = readLogged(side);

        // The next command sees the run interrupted and the attempt lost with its process.
        const runs = weft(['runs', runId, '--format', 'json'], { cwd: dir });
        expect(runs.code, runs.stderr).toBe(0);
        const interrupted = JSON.parse(runs.stdout) as RunJson;
        expect(interrupted.state).toBe('interrupted');
        const cut = interrupted.tasks[0]!.attempt_history[0]!;
        expect(cut.state).toBe('lost');
        expect(cut.error?.code).toBe('TASK_LOST');
        // The engine's words (lostAttemptError in src/engine/interrupted.ts), naming the dead process.
        expect(cut.error?.message).toMatch(
          /^the process running this attempt \(\S+\) died before the attempt ended; it was lost with its process$/,
        );

        const logs = weft(['logs', runId, '--format', 'json'], { cwd: dir });
        expect(logs.code, logs.stderr).toBe(0);
        const stored = logs.stdout
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as LogRecord);
        // Store order is seq order: the lines must come back as they were logged.
        expect(stored.map((l) => l.seq)).toEqual([...stored.map((l) => l.seq)].sort((a, b) => a - b));
        const survival = compareLogs(
          logged,
          stored.filter((l) => l.attempt === 1).map((l) => l.message),
          killedAt,
        );
        console.log(describeSurvival(`logs-survive-kill (ctx.log) kill ${round + 1}/${kills}`, survival));
        expect(survival.due).toBeGreaterThan(5);
        expect(survival.missing).toEqual([]);
        expect(survival.disorder).toEqual([]);
        // The writer flushes every ~100 ms: far less than a second is ever at risk.
        expect(survival.lastDurableMs).toBeLessThan(1000);

        // Resumed, the task runs again (and ends at once); the lost attempt keeps its reason.
        const resumed = weft(['resume', runId], { cwd: dir });
        expect(resumed.code, resumed.stdout + resumed.stderr).toBe(0);
        const after = JSON.parse(weft(['runs', runId, '--format', 'json'], { cwd: dir }).stdout) as RunJson;
        expect(after.state).toBe('succeeded');
        expect(after.tasks[0]!.attempt_history.map((a) => [a.state, a.error?.message ?? null])).toEqual([
          ['lost', cut.error?.message],
          ['succeeded', null],
        ]);
        project.cleanup();
      }
    },
    isFullTier ? 300_000 : 60_000,
  );
});

describe('the log writer flushes while a task runs', () => {
  it('lines reach the store within ~250 ms without any explicit flush', async () => {
    const store = createMemoryStore();
    const run = await createRun(store, {
      plan: plan({ tasks: [ok('a')] }),
      params: {},
      trigger: 'manual',
      now: Date.now(),
    });
    const writer = createLogWriter(store, { onError: () => undefined });
    const line = (message: string) => ({
      runId: run.id,
      task: 'a',
      attempt: 1,
      ts: new Date().toISOString(),
      level: 'info' as const,
      message,
    });
    // A line alone is stored on the writer's timer, well within 250 ms, with no flush() call.
    writer.write(line('soon'));
    await new Promise((r) => setTimeout(r, 250));
    expect((await store.getLogs(run.id)).map((l) => l.message)).toEqual(['soon']);
    // A steady trickle (one line per 60 ms) is never held back until the end.
    for (let i = 0; i < 5; i++) {
      writer.write(line(`m${i}`));
      await new Promise((r) => setTimeout(r, 60));
      const stored = (await store.getLogs(run.id)).length;
      // Everything but the newest (at most ~one interval old) is stored.
      expect(stored).toBeGreaterThanOrEqual(i + 1);
    }
  });
});
