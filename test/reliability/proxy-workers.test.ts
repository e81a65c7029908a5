// Issue 8 item 14 for the distributed mode: `weft worker` processes (and, in the opt-in second
// scenario, the `weft serve` scheduler that hands them runs) reach PostgreSQL only through a TCP proxy that
// blips (cuts every connection, accepts again), then cuts everything and refuses new connections
// for a long while (30 s in the full tier), then blips again, while runs of a small
// fan-out/fan-in pipeline keep being asked for over a direct connection. Each task's handler
// appends "<run>/<task>/<attempt>" to a file of its process, so executions are counted apart from
// the queue's own records. After healing:
//   - the workers resume on their own, at once (no new run needed to wake them);
//   - every run succeeds, every task exactly once on record (one `succeeded` attempt), every
//     on_success hook done;
//   - every execution belongs to an attempt on record, no attempt executed twice, and a task ran
//     more than once only through attempts the store records as `lost` (fenced);
//   - no attempt `running`, no lease held, one LISTEN session per worker (re-established);
//   - the processes are still alive (they ride out the outage), stop cleanly on SIGTERM, and their
//     stderr holds only their own JSON log lines: no unhandled rejection, no stack trace.
import { spawn, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createRun } from '../../src/engine/create-run.js';
import { newRunRequestId } from '../../src/schedule/request-id.js';
import type { RunStore } from '../../src/store/run-store.js';
import type { TaskQueue } from '../../src/worker/queue-port.js';
import { plan, task } from '../support/plan-builder.js';
import { useTestDatabase, waitFor } from '../worker/pg-support.js';
import { startTcpProxy, type RefuseMode, type TcpProxy } from './tcp-proxy.js';
import { count, isFullTier, seededRng, type Rng } from './tier.js';

const db = await useTestDatabase('test/reliability/proxy-workers.test.ts');
const ROOT = resolve(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'weft.js');
const built = existsSync(join(ROOT, 'dist', 'cli', 'commands', 'worker.js'));
if (!built)
  console.warn('SKIPPED test/reliability/proxy-workers.test.ts: run `npm run build` first (no dist/)');

const CONCURRENCY = 4;
/** Shorter than the outage in both tiers: leases expire while the database is out of reach. */
const LEASE_MS = 2000;
const OUTAGE_MS = count(3000, 30_000);
const BLIPS_BEFORE = count(2, 4);
const BLIPS_AFTER = count(3, 10);
/** Runs asked for before, during and after the outage. */
const RUNS_BEFORE = count(3, 12);
const RUNS_DURING = count(2, 8);
const RUNS_AFTER = count(3, 12);
const TERMINAL = ['succeeded', 'failed', 'cancelled'];
/**
 * From healing to a first result, with nothing new asked for: reconnecting, the fallback poll
 * (1 s) or the housekeeping (1 s), a handler (< 0.2 s) and slack for a loaded machine.
 */
const RESUME_MS = 4000;

/**
 * The scheduler scenario runs in the full tier (and with WEFT_PROXY_SCHEDULER=1): a run request
 * whose claim's answer was lost with a cut connection stays `claimed` until its claim is stale
 * (30 s, src/schedule/run-requests.ts) and is then taken again, which can outlast the CI tier's
 * waits.
 */
const SCHEDULER = isFullTier || process.env.WEFT_PROXY_SCHEDULER === '1';

const TASKS = { extract: [], clean: ['extract'], enrich: ['extract'], score: ['extract'] } as const;
const PIPELINE = plan({
  name: 'proxy_workers',
  concurrency: 3,
  tasks: [
    ...Object.entries(TASKS).map(([name, deps]) => task(name, { handler: 'effect', deps: [...deps] })),
    task('join', { handler: 'effect', deps: ['clean', 'enrich', 'score'] }),
    task('publish', { handler: 'effect', deps: ['join'] }),
  ],
  // Hooks go through the queue too (claimed, run, finished): at least once.
  onSuccess: ['hook_effect'],
});
/** The same pipeline as YAML, for `weft serve`. */
const PIPELINE_YAML = `name: proxy_serve
concurrency: 3
tasks:
  extract: { handler: effect }
  clean: { handler: effect, depends_on: extract }
  enrich: { handler: effect, depends_on: extract }
  score: { handler: effect, depends_on: extract }
  join: { handler: effect, depends_on: [clean, enrich, score] }
  publish: { handler: effect, depends_on: join }
on_success:
  - handler: hook_effect
`;

const dir = mkdtempSync(join(tmpdir(), 'weft-proxy-workers-'));
const effects = join(dir, 'effects');
mkdirSync(effects);
mkdirSync(join(dir, 'pipelines'));
writeFileSync(join(dir, 'pipelines', 'proxy-serve.yaml'), PIPELINE_YAML);
const children = new Set<ChildProcess>();

afterAll(() => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

// The effect: one line per execution that ran to its end, in a file of its own process (O_APPEND:
// whole lines). Written after the work and before returning, as a real side effect would be: an
// attempt that is abandoned (its lease lost) may still finish and write it.
writeFileSync(
  join(dir, 'effect-handler.mjs'),
  `import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
const file = join(${JSON.stringify(effects)}, 'exec-' + process.pid + '.log');
export const handlers = [{
  name: 'effect',
  run: async (_args, ctx) => {
    ctx.log.info('working on ' + ctx.task);
    await new Promise((resolve) => setTimeout(resolve, 40 + Math.floor(Math.random() * 160)));
    appendFileSync(file, ctx.run.id + '/' + ctx.task + '/' + ctx.attempt + '\\n');
    return { task: ctx.task, attempt: ctx.attempt };
  },
}, {
  name: 'hook_effect',
  run: async (_args, ctx) => {
    appendFileSync(file, ctx.run.id + '/hook:' + (ctx.hook ? ctx.hook.event : '?') + '/0\\n');
    return null;
  },
}];
`,
);

interface WeftProcess {
  name: string;
  child: ChildProcess;
  /** Worker id, or the scheduler's owner. */
  id: string;
  exited: Promise<number | null>;
  stdout: () => string;
  stderr: () => string;
}

/** Parses a JSON log line; null for anything else. */
function logLine(line: string): { type?: string; event?: string } | null {
  if (!line.startsWith('{')) return null;
  try {
    return JSON.parse(line) as { type?: string; event?: string };
  } catch {
    return null;
  }
}

/** Spawns `weft …args`; resolves once a JSON line of stdout says it started. */
async function startWeft(
  name: string,
  args: string[],
  started: (line: Record<string, unknown>) => string | undefined,
): Promise<WeftProcess> {
  const child = spawn(process.execPath, [BIN, ...args, '--handlers', join(dir, 'effect-handler.mjs')], {
    cwd: dir,
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // 'close', not 'exit': its stderr is checked line by line once it exits, and a line it wrote last
  // must be read whole (half a JSON line would count as stray output).
  const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  const id = await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}: ${stderr}`);
      for (const line of stdout.split('\n')) {
        const parsed = logLine(line);
        const found = parsed && started(parsed as Record<string, unknown>);
        if (found) return Promise.resolve(found);
      }
      return Promise.resolve(undefined);
    },
    20_000,
    `${name} to start`,
  );
  return { name, child, id, exited, stdout: () => stdout, stderr: () => stderr };
}

const workerArgs = (url: string) => [
  'worker',
  '--store',
  url,
  '--concurrency',
  String(CONCURRENCY),
  '--lease',
  `${LEASE_MS}ms`,
  '--grace',
  '2s',
  '--log-format',
  'json',
];
const startWorker = (url: string) =>
  startWeft('weft worker', workerArgs(url), (l) =>
    l.type === 'worker:started' ? String(l.worker) : undefined,
  );
const startServe = (url: string) =>
  startWeft(
    'weft serve',
    ['serve', join(dir, 'pipelines'), '--no-http', '--store', url, '--grace', '2s', '--log-format', 'json'],
    (l) => (l.event === 'scheduler:started' ? String(l.owner) : undefined),
  );

/** Log lines by type (workers) or event (the scheduler), stdout and stderr together. */
function eventsOf(p: WeftProcess): Record<string, number> {
  const byType: Record<string, number> = {};
  for (const line of `${p.stdout()}\n${p.stderr()}`.split('\n')) {
    const parsed = logLine(line);
    if (!parsed) continue;
    const type = parsed.type ?? parsed.event ?? '?';
    byType[type] = (byType[type] ?? 0) + 1;
  }
  return byType;
}

/** Lines of stderr that are neither the process's own JSON log lines nor its SIGTERM notice. */
function strayStderr(p: WeftProcess): string[] {
  return p
    .stderr()
    .split('\n')
    .filter((line) => line !== '' && !/^SIGTERM: stopping/.test(line) && logLine(line) === null);
}

/** Executions per "<run>/<task>" (hooks: "<run>/hook:<event>"), by attempt, from every process. */
function executions(): Map<string, number[]> {
  const byTask = new Map<string, number[]>();
  for (const name of readdirSync(effects)) {
    for (const line of readFileSync(join(effects, name), 'utf8').split('\n')) {
      if (line === '') continue;
      const cut = line.lastIndexOf('/');
      const key = line.slice(0, cut);
      byTask.set(key, [...(byTask.get(key) ?? []), Number(line.slice(cut + 1))]);
    }
  }
  return byTask;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

const terminal = async (runIds: readonly string[]) => {
  const rows = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM runs WHERE id = ANY ($1::text[]) AND state = ANY ($2::text[])`,
    [runIds, TERMINAL],
  );
  return rows[0]?.n === runIds.length;
};

/** What the queue and the processes say, for a wait that timed out. */
async function diagnose(processes: readonly WeftProcess[]): Promise<string> {
  const stuck = await db.query(
    `SELECT r.id, r.state AS run, r.owner, t.task, t.state, t.attempts, q.state AS queued, q.lease_owner,
            q.lease_expires_at < now() AS expired
     FROM runs r JOIN task_runs t ON t.run_id = r.id
     LEFT JOIN queue_tasks q ON q.run_id = t.run_id AND q.task = t.task
     WHERE r.state <> 'succeeded' AND t.state <> 'succeeded' ORDER BY r.id, t.task`,
  );
  const attemptsOpen = await db.query(
    `SELECT run_id, task, attempt, state, worker FROM attempts WHERE state = 'running'`,
  );
  const requests = await db.query(
    `SELECT id, state, claimed_by, run_id, error FROM run_requests WHERE state NOT IN ('done')`,
  );
  const tail = (text: string) => text.split('\n').slice(-15).join('\n');
  return [
    `unfinished: ${JSON.stringify(stuck)}`,
    `running attempts: ${JSON.stringify(attemptsOpen)}`,
    `requests not done: ${JSON.stringify(requests)}`,
    ...processes.map((p) => `${p.name} ${p.id} (exit ${p.child.exitCode}):\n${tail(p.stderr())}`),
  ].join('\n');
}

interface Load {
  /** Asks for one run (over a direct connection: the database is reachable from there). */
  submit: () => Promise<void>;
  /** Whether the first `n` runs asked for have ended. */
  settled: (n: number) => Promise<boolean>;
  asked: () => number;
}

interface ChaosTimes {
  mode: RefuseMode;
  started: number;
  outageAt: number;
  healedAt: number;
  /** How many runs had been asked for when the outage ended. */
  caught: number;
  resumeMs: number;
  backAt: number;
  chaosOver: number;
  finishedAt: number;
}

/**
 * Blips while runs are asked for; the outage (every connection cut, new ones refused); a moment
 * with nothing new for the processes to resume on their own; blips while more runs are asked for
 * and those the outage caught finish; then every run ends.
 */
async function chaos(
  proxy: TcpProxy,
  rng: Rng,
  load: Load,
  processes: readonly WeftProcess[],
): Promise<ChaosTimes> {
  const settle = (what: string, n: () => number, timeoutMs: number) =>
    waitFor(() => load.settled(n()), timeoutMs, what).catch(async (error: unknown) => {
      throw new Error(`${String(error)}\n${await diagnose(processes)}`);
    });
  const blips = async (n: number) => {
    for (let i = 0; i < n; i++) {
      await pause(150 + rng.int(600));
      await proxy.blip();
    }
  };
  const submitting = async (n: number, spacingMs: number) => {
    for (let i = 0; i < n; i++) {
      await load.submit();
      await pause(rng.int(spacingMs));
    }
  };

  const started = Date.now();
  await Promise.all([submitting(RUNS_BEFORE, 300), blips(BLIPS_BEFORE)]);
  const mode: RefuseMode = rng.pick(['reset', 'closed', 'hangup'] as const);
  // The outage begins while attempts run: their results cannot be written, their leases expire.
  await load.submit();
  await pause(rng.int(300));
  await waitFor(
    async () => (await db.query(`SELECT 1 FROM attempts WHERE state = 'running' LIMIT 1`)).length > 0,
    10_000,
    'an attempt in flight',
  );

  // The outage: everything cut, nothing accepted; runs are still asked for (their wakes are lost).
  const outageAt = Date.now();
  await proxy.refuse(OUTAGE_MS, mode);
  proxy.cutAll();
  await submitting(RUNS_DURING, Math.floor(OUTAGE_MS / RUNS_DURING));
  await waitFor(() => Promise.resolve(!proxy.isRefusing), OUTAGE_MS + 5000, 'the outage to end');
  const healedAt = Date.now();
  const caught = load.asked();

  // Nothing new for a moment: the workers must resume on their own (reconnect, claim), not wait
  // for a notification, and soon — not after a back-off grown during the outage.
  const firstResult = await waitFor(
    async () => {
      const rows = await db.query<{ at: number | null }>(
        `SELECT (EXTRACT(EPOCH FROM min(finished_at)) * 1000)::float8 AS at FROM attempts
         WHERE state = 'succeeded' AND finished_at > to_timestamp($1 / 1000.0)`,
        [healedAt],
      );
      return rows[0]?.at ?? undefined;
    },
    30_000,
    'a first result after healing',
  );

  // More blips and runs, while the runs the outage caught come to their end.
  let backAt = 0;
  const recovered = settle('the runs the outage caught to end', () => caught, count(30_000, 90_000));
  await Promise.all([
    submitting(RUNS_AFTER, 300),
    blips(BLIPS_AFTER),
    recovered.then(() => (backAt = Date.now())),
  ]);
  const chaosOver = Date.now();
  await settle('every run to end', () => load.asked(), count(30_000, 60_000));
  return {
    mode,
    started,
    outageAt,
    healedAt,
    caught,
    resumeMs: Math.round(firstResult - healedAt),
    backAt,
    chaosOver,
    finishedAt: Date.now(),
  };
}

interface RunFigures {
  lost: number;
  duplicated: number;
  hookRepeats: number;
}

/** The invariants on the record and the effects of these runs (see the top of the file). */
async function checkRuns(ids: readonly string[]): Promise<RunFigures> {
  const runs = await db.query<{ id: string; state: string; error: unknown }>(
    `SELECT id, state, error FROM runs WHERE id = ANY ($1::text[])`,
    [ids],
  );
  expect(runs.filter((r) => r.state !== 'succeeded')).toEqual([]);
  expect(runs.length).toBe(ids.length);
  const taskRuns = await db.query<{ run_id: string; task: string; state: string }>(
    `SELECT run_id, task, state FROM task_runs WHERE run_id = ANY ($1::text[])`,
    [ids],
  );
  expect(taskRuns.length).toBe(ids.length * PIPELINE.order.length);
  expect(taskRuns.filter((t) => t.state !== 'succeeded')).toEqual([]);
  const attempts = await db.query<{ run_id: string; task: string; attempt: number; state: string }>(
    `SELECT run_id, task, attempt, state FROM attempts WHERE run_id = ANY ($1::text[])`,
    [ids],
  );
  expect(attempts.filter((a) => a.state === 'running')).toEqual([]);
  const byTask = new Map<string, Map<number, string>>();
  for (const a of attempts) {
    const key = `${a.run_id}/${a.task}`;
    const mine = byTask.get(key) ?? new Map<number, string>();
    mine.set(a.attempt, a.state);
    byTask.set(key, mine);
  }

  // Executions against the record.
  const ran = executions();
  const problems: string[] = [];
  let duplicated = 0;
  for (const { run_id, task: name } of taskRuns) {
    const key = `${run_id}/${name}`;
    const recorded = byTask.get(key) ?? new Map<number, string>();
    const succeeded = [...recorded].filter(([, state]) => state === 'succeeded').map(([n]) => n);
    const executed = ran.get(key) ?? [];
    if (succeeded.length !== 1) problems.push(`${key}: ${succeeded.length} succeeded attempts`);
    else if (!executed.includes(succeeded[0]!))
      problems.push(`${key}: attempt ${succeeded[0]} succeeded on record but never executed`);
    if (new Set(executed).size !== executed.length)
      problems.push(`${key}: an attempt executed twice (${executed.join(', ')})`);
    for (const n of executed) {
      const state = recorded.get(n);
      if (state === undefined) problems.push(`${key}: attempt ${n} executed but not on record`);
      else if (state !== 'succeeded' && state !== 'lost')
        problems.push(`${key}: attempt ${n} executed and recorded ${state}`);
    }
    if (executed.length > 1) duplicated += 1;
  }
  expect(problems).toEqual([]);

  // Every run's on_success hook ran (at least once) and is done; none waits in the queue. A hook
  // whose runner lost its connection waits for its claim to expire (6 leases) to be run again.
  const hooksLeft = () =>
    db.query<{ run_id: string; key: string; state: string; lease_owner: string | null }>(
      `SELECT h.run_id, h.key, h.state, q.lease_owner FROM hooks h
       FULL JOIN queue_hooks q ON q.run_id = h.run_id AND q.key = h.key
       WHERE (h.run_id = ANY ($1::text[]) AND h.state <> 'done') OR q.run_id IS NOT NULL`,
      [ids],
    );
  await waitFor(
    async () => (await hooksLeft()).length === 0,
    LEASE_MS * 6 + 10_000,
    'every hook to be done',
  ).catch(async (error: unknown) => {
    throw new Error(`${String(error)}: ${JSON.stringify(await hooksLeft())}`);
  });
  const hooksRan = executions();
  const hookRuns = ids.map((id) => hooksRan.get(`${id}/hook:run_success`)?.length ?? 0);
  expect(hookRuns.filter((n) => n === 0)).toEqual([]);

  // The queue is clean: no lease held, no task waiting.
  expect(await db.query(`SELECT run_id, task, state, lease_owner FROM queue_tasks`)).toEqual([]);
  return {
    lost: attempts.filter((a) => a.state === 'lost').length,
    duplicated,
    hookRepeats: hookRuns.reduce((sum, n) => sum + n - 1, 0),
  };
}

/**
 * The processes rode it out: alive, listening again (one session each), the workers
 * heartbeating; then they stop cleanly and said nothing but their own log lines.
 */
async function checkProcesses(processes: readonly WeftProcess[], workers: readonly WeftProcess[]) {
  for (const p of processes) expect(p.child.exitCode, `${p.name}: ${p.stderr()}`).toBeNull();
  const listeners = () =>
    db.query<{ port: number; since: string }>(
      `SELECT client_port AS port, backend_start::text AS since FROM pg_stat_activity
       WHERE datname = current_database() AND query = 'LISTEN weft_queue'`,
    );
  await waitFor(
    async () => (await listeners()).length === workers.length,
    5000,
    'one LISTEN session per worker',
  ).catch(async (error: unknown) => {
    throw new Error(`${String(error)}: ${JSON.stringify(await listeners())}\n${await diagnose(processes)}`);
  });
  const live = await db.query<{ id: string }>(
    `SELECT id FROM queue_workers WHERE heartbeat_at > now() - interval '10 seconds'`,
  );
  expect(live.map((w) => w.id).sort()).toEqual(workers.map((w) => w.id).sort());

  for (const p of processes) p.child.kill('SIGTERM');
  const codes = await Promise.all(processes.map((p) => p.exited));
  for (const p of processes) children.delete(p.child);
  expect(codes).toEqual(processes.map(() => 0));
  for (const p of processes) {
    expect(strayStderr(p), p.name).toEqual([]);
    expect(p.stderr()).not.toMatch(/Unhandled|uncaughtException|\n\s+at .+:\d+:\d+\)?\n/);
  }
}

function describeChaos(times: ChaosTimes, figures: RunFigures, runs: number, proxy: TcpProxy): string {
  const s = (ms: number) => (ms / 1000).toFixed(1);
  return (
    `${runs} runs x ${PIPELINE.order.length} tasks, lease ${LEASE_MS} ms; outage ${OUTAGE_MS} ms (${times.mode}), ` +
    `${BLIPS_BEFORE}+${BLIPS_AFTER} blips; ${figures.lost} attempt(s) lost, ${figures.duplicated} task(s) ` +
    `executed more than once, ${figures.hookRepeats} hook repeat(s); first result ${times.resumeMs} ms after ` +
    `healing, the ${times.caught} runs the outage caught done ${s(times.backAt - times.healedAt)} s after it, ` +
    `all done ${s(times.finishedAt - times.chaosOver)} s after the last blip; ` +
    `${s(times.finishedAt - times.started)} s in all (outage at +${s(times.outageAt - times.started)} s); ` +
    `proxy ${JSON.stringify(proxy.stats)}`
  );
}

async function startProxy(): Promise<TcpProxy> {
  const target = new URL(db.url());
  return startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
}

describe.skipIf(!db.available || !built)('weft worker processes behind a proxy that cuts and refuses', () => {
  it(
    `3 workers ride out blips and a ${OUTAGE_MS / 1000} s outage: every run succeeds, duplicates only as lost attempts`,
    async () => {
      const rng = seededRng('proxy-workers (workers)');
      const store: RunStore = await db.openStore();
      const queue: TaskQueue = await db.openQueue();
      const proxy = await startProxy();
      try {
        const workers = await Promise.all([1, 2, 3].map(() => startWorker(proxy.url(db.url()))));
        const ids: string[] = [];
        const load: Load = {
          submit: async () => {
            const run = await createRun(store, {
              plan: PIPELINE,
              params: {},
              trigger: 'manual',
              now: Date.now(),
            });
            expect(await queue.startRun(run.id)).toBe(true);
            ids.push(run.id);
          },
          settled: (n) => terminal(ids.slice(0, n)),
          asked: () => ids.length,
        };
        const times = await chaos(proxy, rng, load, workers);

        // A run after everything settled: taken at once (its notification reaches a listener).
        const lastAt = Date.now();
        await load.submit();
        await waitFor(() => terminal([ids.at(-1)!]), 15_000, 'a run after the chaos');
        const lastMs = Date.now() - lastAt;

        const checking = Date.now();
        const figures = await checkRuns(ids);
        await checkProcesses(workers, workers);
        console.log(
          `[reliability] proxy workers: ${describeChaos(times, figures, ids.length, proxy)}; a run afterwards ` +
            `${lastMs} ms; checks and shutdown ${Date.now() - checking} ms; ` +
            `worker events ${JSON.stringify(workers.map(eventsOf))}`,
        );
        expect(times.resumeMs).toBeLessThan(RESUME_MS);
      } finally {
        await proxy.close();
      }
    },
    isFullTier ? 300_000 : 90_000,
  );

  it.skipIf(!SCHEDULER)(
    `the scheduler (weft serve) and 2 workers behind the proxy: every run asked for is created, handed over and succeeds`,
    async () => {
      const rng = seededRng('proxy-workers (scheduler)');
      const store: RunStore = await db.openStore();
      const proxy = await startProxy();
      try {
        const url = proxy.url(db.url());
        const [serve, ...workers] = await Promise.all([startServe(url), startWorker(url), startWorker(url)]);
        const processes = [serve, ...workers];
        const requests: string[] = [];
        const requested = async (n: number) =>
          db.query<{ id: string; state: string; run_id: string | null; error: string | null }>(
            `SELECT id, state, run_id, error::text FROM run_requests WHERE id = ANY ($1::text[])`,
            [requests.slice(0, n)],
          );
        const load: Load = {
          // As `weft trigger` does, from a host that reaches the database.
          submit: async () => {
            const id = newRunRequestId(Date.now());
            await store.requestRun({
              id,
              pipeline: 'proxy_serve',
              params: {},
              requestedAt: new Date().toISOString(),
            });
            requests.push(id);
          },
          settled: async (n) => {
            const rows = await requested(n);
            if (rows.some((r) => r.state === 'pending' || r.state === 'claimed')) return false;
            return terminal(rows.flatMap((r) => (r.run_id === null ? [] : [r.run_id])));
          },
          asked: () => requests.length,
        };
        const times = await chaos(proxy, rng, load, processes);

        // Every request ended done, with its run: a store error while the scheduler took a
        // request leaves it claimed and it is taken again (the same run id, so never two runs);
        // what must not happen is a failed request, a run nobody knows of, or one stuck.
        const rows = await requested(requests.length);
        const done = rows.filter((r) => r.state === 'done');
        const failed = rows.filter((r) => r.state === 'failed');
        expect(failed).toEqual([]);
        expect(done.length).toBe(requests.length);
        expect(done.filter((r) => r.run_id === null)).toEqual([]);
        const ids = done.map((r) => r.run_id!);
        const all = await db.query<{ id: string; state: string }>(
          `SELECT id, state FROM runs WHERE pipeline = 'proxy_serve'`,
        );
        expect(all.filter((r) => !ids.includes(r.id))).toEqual([]);
        const figures = await checkRuns(ids);
        await checkProcesses(processes, workers);
        console.log(
          `[reliability] proxy scheduler + workers: ${requests.length} runs asked for, all done; ` +
            `${describeChaos(times, figures, ids.length, proxy)}; ` +
            `events ${JSON.stringify(processes.map(eventsOf))}`,
        );
        expect(times.resumeMs).toBeLessThan(RESUME_MS);
      } finally {
        await proxy.close();
      }
    },
    isFullTier ? 300_000 : 90_000,
  );
});
