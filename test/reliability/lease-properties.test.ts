import fc from 'fast-check';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createRun } from '../../src/engine/create-run.js';
import type { RunStore } from '../../src/store/run-store.js';
import type { ClaimedTask, TaskCompletion, TaskQueue } from '../../src/worker/queue-port.js';
import { ok, plan } from '../support/plan-builder.js';
import { useTestDatabase } from '../worker/pg-support.js';
import { count, isFullTier, seededRng } from './tier.js';

/**
 * Leases on the real PostgreSQL queue, property-based: fast-check generates sequences of what 2–3
 * workers do (claim, heartbeat, succeed, fail, start a `when` task or skip it, pause and come
 * back, have their leases expire) interleaved with the reaper, and after EVERY step SQL queries
 * check the invariants:
 *   - never two live owners of one task or attempt (one running attempt at most, owned by the
 *     lease holder; a lease is live only for the worker and lease number on the queue row);
 *   - a late write (complete, startAttempt, heartbeat) whose lease was reaped, or whose task
 *     another claim took, changes nothing; one whose lease merely expired (not yet reaped, no
 *     one else can own the task) is accepted — the rule docs/operations.md states;
 *   - a lost attempt does not use up the task's retries (only failed attempts count);
 *   - every task ends in exactly one terminal state, with exactly one succeeded attempt when it
 *     succeeded.
 *
 * Time: the adapter takes `now` from the database and a lease's length from each claim, so
 * claims here take a long lease and "time passing beyond a worker's lease" is one UPDATE that
 * moves that worker's expiry into the past (exactly what the clock would do, without sleeping).
 */
const db = await useTestDatabase('test/reliability/lease-properties.test.ts');

const LONG_LEASE_MS = 60_000;
const MAX_LOST = 2;
const WORKERS = ['w0', 'w1', 'w2'] as const;
const RETRIES: Record<string, number> = { t1: 1, t2: 0, t3: 1, t4: 2, t5: 0 };
const PLAN = plan({
  name: 'lease-properties',
  tasks: [
    ok('t1', [], { retries: 1, retry: { delayMs: 0 } }),
    ok('t2', [], { retries: 0 }),
    // A `when` task: claimed unstarted, the worker starts its attempt or completes it skipped.
    ok('t3', [], { retries: 1, retry: { delayMs: 0 }, when: '${{ params.go }}' }),
    ok('t4', ['t1', 't2', 't3'], { retries: 2, retry: { delayMs: 0 }, triggerRule: 'all_done' }),
    ok('t5', ['t4'], { triggerRule: 'all_done' }),
  ],
});
const TERMINAL = new Set(['succeeded', 'failed', 'skipped', 'cancelled']);

type Op =
  | { k: 'claim'; w: number; n: number }
  | { k: 'heartbeat'; w: number }
  | { k: 'succeed'; w: number; i: number; chain: boolean }
  | { k: 'fail'; w: number; i: number; retryable: boolean }
  | { k: 'expire'; w: number }
  | { k: 'reap' }
  /** The worker's leases expire and the reaper runs at once (it died, or hung long enough). */
  | { k: 'crash'; w: number }
  /** The worker claims a task and dies with it (a task that kills every worker that takes it). */
  | { k: 'claimCrash'; w: number }
  /** The worker's lease has expired; its result and the reaper reach the database together. */
  | { k: 'race'; w: number; i: number }
  /** Two workers claim at the same moment. */
  | { k: 'claimRace'; n: number }
  /**
   * A worker writes with a lease that expired (first letting its leases expire, when `expire`):
   * accepted while no reaper took it back, refused once one did or another worker claimed the task.
   */
  | { k: 'late'; w: number; i: number; expire: boolean }
  | { k: 'pause'; w: number }
  | { k: 'resume'; w: number };

const worker = fc.integer({ min: 0, max: WORKERS.length - 1 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ k: fc.constant('claim' as const), w: worker, n: fc.integer({ min: 1, max: 3 }) }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('heartbeat' as const), w: worker }) },
  {
    weight: 4,
    arbitrary: fc.record({
      k: fc.constant('succeed' as const),
      w: worker,
      i: fc.nat(5),
      chain: fc.boolean(),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant('fail' as const),
      w: worker,
      i: fc.nat(5),
      // Mostly retryable: the retry budget is what the lost attempts must not use up.
      retryable: fc.integer({ min: 0, max: 3 }).map((n) => n > 0),
    }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('expire' as const), w: worker }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('reap' as const) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('crash' as const), w: worker }) },
  // Biased in: the lost-attempt cap and retries after a loss need one task lost again and again.
  { weight: 2, arbitrary: fc.record({ k: fc.constant('claimCrash' as const), w: worker }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('race' as const), w: worker, i: fc.nat(5) }) },
  {
    weight: 1,
    arbitrary: fc.record({ k: fc.constant('claimRace' as const), n: fc.integer({ min: 1, max: 3 }) }),
  },
  // Biased in: without it, late writes in the sequences themselves (not the drain) are rare.
  {
    weight: 3,
    arbitrary: fc.record({ k: fc.constant('late' as const), w: worker, i: fc.nat(5), expire: fc.boolean() }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('pause' as const), w: worker }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('resume' as const), w: worker }) },
);

interface SimWorker {
  id: string;
  /** Claims as the worker believes it holds them: stale ones stay until it writes with them. */
  held: ClaimedTask[];
  paused: boolean;
}

interface QueueRow {
  state: string;
  lease_id: string | null;
  lease_owner: string | null;
  attempt: number | null;
  expired: boolean | null;
}

/** What the property runs saw, summed: proof that the interesting paths were taken. */
const seen = {
  runs: 0,
  steps: 0,
  /** Writes of the sequences whose lease was no longer the task's: reaped, or claimed again. */
  lateWritesRejected: 0,
  /** Of those, refused because another claim (a new lease) held the task. */
  lateWritesRejectedByNewerLease: 0,
  lateWritesRejectedInDrain: 0,
  /** Writes of the sequences with an expired lease that no reaper took back yet: accepted. */
  expiredLeaseWritesAccepted: 0,
  lateHeartbeatsEmpty: 0,
  lostAttempts: 0,
  lostInDrain: 0,
  /** Tasks (run/task) that failed and were retried, or still could be, after a lost attempt. */
  retriedAfterLoss: new Set<string>(),
  lostTaskFailures: 0,
  /** Tasks that hit the lost-attempt cap (TASK_LOST) during a sequence, before the drain. */
  lostCapInSequences: new Set<string>(),
  succeededRuns: 0,
  claimRaces: 0,
  racesWonByResult: 0,
  racesWonByReaper: 0,
  failedRuns: 0,
};

let pool: pg.Pool | undefined;
/** Counting rejected writes of the drain apart from those of the generated sequences. */
let draining = false;
afterAll(async () => {
  await pool?.end();
});

async function q<R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> {
  pool ??= new pg.Pool({ connectionString: db.url(), max: 2 });
  return (await pool.query<R>(text, values)).rows;
}

async function queueRow(runId: string, task: string): Promise<QueueRow | undefined> {
  return (
    await q<QueueRow>(
      `SELECT state, lease_id::text, lease_owner, attempt, (lease_expires_at < now()) AS expired
       FROM queue_tasks WHERE run_id = $1 AND task = $2`,
      [runId, task],
    )
  )[0];
}

async function taskState(runId: string, task: string): Promise<string | undefined> {
  return (
    await q<{ state: string }>('SELECT state FROM task_runs WHERE run_id = $1 AND task = $2', [runId, task])
  )[0]?.state;
}

/** Is this claim the live lease of its task now (the queue row names it and its worker)? */
function holds(row: QueueRow | undefined, w: SimWorker, claim: ClaimedTask): boolean {
  return (
    row !== undefined &&
    row.state === 'leased' &&
    row.lease_id === String(claim.lease) &&
    row.lease_owner === w.id &&
    row.attempt === claim.attempt
  );
}

/** Everything of a run that a write could change (heartbeat timestamps left out). */
async function snapshot(runId: string): Promise<string> {
  const [tasks, attempts, queue, coord, run] = await Promise.all([
    q(
      'SELECT task, state, attempts, output::text, error::text, reason FROM task_runs WHERE run_id = $1 ORDER BY task',
      [runId],
    ),
    q(
      'SELECT task, attempt, state, worker, error::text FROM attempts WHERE run_id = $1 ORDER BY task, attempt',
      [runId],
    ),
    q(
      `SELECT task, state, lease_id::text, lease_owner, attempt, base, lost, available_at
       FROM queue_tasks WHERE run_id = $1 ORDER BY task`,
      [runId],
    ),
    q('SELECT states FROM queue_runs WHERE run_id = $1', [runId]),
    q('SELECT state, attempt, error::text FROM runs WHERE id = $1', [runId]),
  ]);
  return JSON.stringify({ tasks, attempts, queue, coord, run });
}

interface AttemptRow {
  task: string;
  attempt: number;
  state: string;
  worker: string;
  code: string | null;
  message: string | null;
}

/** The invariants that hold after every step, straight from the tables. */
async function checkInvariants(runId: string, sims: readonly SimWorker[], where: string): Promise<void> {
  const [tasks, attempts, queue] = await Promise.all([
    q<{ task: string; state: string; attempts: number; code: string | null }>(
      `SELECT task, state, attempts, error->>'code' AS code FROM task_runs WHERE run_id = $1`,
      [runId],
    ),
    q<AttemptRow>(
      `SELECT task, attempt, state, worker, error->>'code' AS code, error->>'message' AS message
       FROM attempts WHERE run_id = $1 ORDER BY task, attempt`,
      [runId],
    ),
    q<QueueRow & { task: string }>(
      `SELECT task, state, lease_id::text, lease_owner, attempt, (lease_expires_at < now()) AS expired
       FROM queue_tasks WHERE run_id = $1`,
      [runId],
    ),
  ]);
  const queueByTask = new Map(queue.map((r) => [r.task, r]));
  for (const t of tasks) {
    const mine = attempts.filter((a) => a.task === t.task);
    const ctx = `${where}: task ${t.task} (${t.state}) attempts ${JSON.stringify(mine.map((a) => [a.attempt, a.state, a.worker]))}`;
    // Attempts are numbered 1..n without gaps, n recorded on the task run.
    expect(
      mine.map((a) => a.attempt),
      ctx,
    ).toEqual(mine.map((_, i) => i + 1));
    expect(t.attempts, ctx).toBe(mine.length);
    // Never two live owners: one running attempt at most, and it is the lease holder's.
    const running = mine.filter((a) => a.state === 'running');
    expect(running.length, ctx).toBeLessThanOrEqual(1);
    expect(running.length === 1, ctx).toBe(t.state === 'running');
    const row = queueByTask.get(t.task);
    if (running[0]) {
      expect(row?.state, ctx).toBe('leased');
      expect(row?.lease_owner, ctx).toBe(running[0].worker);
      expect(row?.attempt, ctx).toBe(running[0].attempt);
      // Only the last attempt can still run.
      expect(running[0].attempt, ctx).toBe(mine.length);
    }
    // Exactly one succeeded attempt when the task succeeded (the last), none otherwise.
    const succeeded = mine.filter((a) => a.state === 'succeeded');
    expect(succeeded.length, ctx).toBe(t.state === 'succeeded' ? 1 : 0);
    if (t.state === 'succeeded') expect(mine.at(-1)?.state, ctx).toBe('succeeded');
    // Finished tasks are out of the queue; unfinished started ones are in it.
    if (TERMINAL.has(t.state)) expect(row, ctx).toBeUndefined();
    if (t.state === 'running' || t.state === 'retrying') expect(row, ctx).toBeDefined();
    // The retry budget counts failed attempts only; lost ones have their own cap.
    const failed = mine.filter((a) => a.state === 'failed');
    const lost = mine.filter((a) => a.state === 'lost');
    const retries = RETRIES[t.task]!;
    expect(failed.length, ctx).toBeLessThanOrEqual(retries + 1);
    expect(lost.length, ctx).toBeLessThanOrEqual(MAX_LOST + 1);
    expect(
      lost.every((a) => a.code === 'TASK_LOST'),
      ctx,
    ).toBe(true);
    if (t.state === 'retrying') expect(failed.length, ctx).toBeLessThanOrEqual(retries);
    if (t.state === 'failed') {
      if (t.code === 'TASK_LOST') {
        expect(lost.length, ctx).toBe(MAX_LOST + 1);
      } else {
        const last = failed.at(-1);
        expect(last, ctx).toBeDefined();
        // Failed for good: out of retries (lost attempts not counted), or not retryable.
        if (last!.message !== 'fatal') expect(failed.length, ctx).toBe(retries + 1);
      }
    }
    // A retried task that had lost attempts: lost ones did not count.
    // (Counted in the sequences only: the drain makes one on purpose for every lost task.)
    if (!draining && lost.length > 0 && failed.length > 0 && t.state !== 'failed')
      seen.retriedAfterLoss.add(`${runId}/${t.task}`);
    if (!draining && t.state === 'failed' && t.code === 'TASK_LOST')
      seen.lostCapInSequences.add(`${runId}/${t.task}`);
  }
  // Where the queue counts a run's leased tasks (its concurrency cap), the count is exact:
  // lost, late and raced writes neither leak a slot nor free one twice.
  if (await hasRunningCount()) {
    const counted = await q<{ running: number }>('SELECT running FROM queue_runs WHERE run_id = $1', [runId]);
    if (counted[0])
      expect(counted[0].running, `${where}: queue_runs.running`).toBe(
        queue.filter((r) => r.state === 'leased').length,
      );
  }
  // Among the leases the workers believe they hold, at most one per task is live.
  const live = new Map<string, string[]>();
  for (const w of sims) {
    for (const claim of w.held) {
      const row = queueByTask.get(claim.task);
      if (claim.runId === runId && holds(row, w, claim) && row!.expired === false) {
        live.set(claim.task, [...(live.get(claim.task) ?? []), `${w.id}#${claim.lease}`]);
      }
    }
  }
  for (const [task, owners] of live) expect(owners.length, `${where}: live owners of ${task}`).toBe(1);
}

let runningCount: Promise<boolean> | undefined;
/** Whether queue_runs counts leased tasks (the per-run concurrency cap of a later migration). */
function hasRunningCount(): Promise<boolean> {
  runningCount ??= q<{ n: number }>(
    `SELECT count(*)::int AS n FROM information_schema.columns
     WHERE table_schema = current_schema() AND table_name = 'queue_runs' AND column_name = 'running'`,
  ).then((rows) => (rows[0]?.n ?? 0) > 0);
  return runningCount;
}

/** The clock passes this worker's leases (it stopped heartbeating long enough). */
async function expireLeases(workerId: string): Promise<void> {
  await q(
    `UPDATE queue_tasks SET lease_expires_at = now() - interval '1 second' WHERE state = 'leased' AND lease_owner = $1`,
    [workerId],
  );
}

function pick(w: SimWorker, i: number, runId: string): ClaimedTask | undefined {
  const mine = w.held.filter((c) => c.runId === runId);
  return mine.length === 0 ? undefined : mine[i % mine.length];
}

function drop(w: SimWorker, claim: ClaimedTask): void {
  w.held = w.held.filter((c) => c !== claim);
}

/**
 * A worker writes with one of its claims: the result is recorded exactly when its lease is the
 * live one, and a write that is not recorded changes nothing at all.
 */
async function write(
  queue: TaskQueue,
  runId: string,
  w: SimWorker,
  claim: ClaimedTask,
  completion: TaskCompletion | 'start',
  chain: boolean,
): Promise<void> {
  const row = await queueRow(runId, claim.task);
  const state = await taskState(runId, claim.task);
  const before = await snapshot(runId);
  // THE FENCING RULE (docs/operations.md): a write is applied only with the task's current lease.
  // Refused once the reaper took that lease back or another claim replaced it; NOT refused for
  // expiry alone, since until the reaper runs no other worker can own the task.
  const live = holds(row, w, claim);
  const expiredUnreaped = live && row!.expired === true;
  let expected = live;
  if (completion === 'start') expected &&= state === 'pending' || state === 'retrying';
  else if (completion.kind === 'skipped') expected &&= state === 'pending';
  else expected &&= state === 'running';
  let recorded: boolean;
  let claimed: ClaimedTask[] = [];
  if (completion === 'start') {
    recorded = await queue.startAttempt(w.id, claim);
    if (recorded) claim.started = true;
    else drop(w, claim);
  } else {
    const result = await queue.complete(
      w.id,
      [completion],
      chain ? { queues: ['default'], limit: 2, leaseMs: LONG_LEASE_MS } : undefined,
    );
    recorded = result.recorded[0]!;
    claimed = result.claimed;
    drop(w, claim);
    w.held.push(...claimed);
  }
  const what = `${w.id} ${completion === 'start' ? 'start' : completion.kind} ${claim.task}#${claim.attempt} lease ${claim.lease}`;
  expect(recorded, `${what}: recorded (queue row ${JSON.stringify(row)}, task ${state})`).toBe(expected);
  if (expiredUnreaped && expected) {
    expect(recorded, `${what}: an expired lease no reaper took back is still the task's`).toBe(true);
    if (!draining) seen.expiredLeaseWritesAccepted += 1;
  }
  if (!live) {
    // A late write: refused whatever it is, because the lease is gone or another one replaced it.
    expect(recorded, `${what}: a late write was recorded`).toBe(false);
    if (draining) seen.lateWritesRejectedInDrain += 1;
    else {
      seen.lateWritesRejected += 1;
      if (row?.state === 'leased' && row.lease_id !== String(claim.lease))
        seen.lateWritesRejectedByNewerLease += 1;
    }
  }
  if (!recorded) {
    // Nothing of a rejected write is on record (a chained claim may still take ready tasks).
    if (claimed.length === 0) expect(await snapshot(runId), `${what}: rejected yet changed`).toBe(before);
  }
}

async function step(queue: TaskQueue, runId: string, sims: SimWorker[], op: Op): Promise<void> {
  if (op.k === 'reap') {
    const reaped = await queue.reap();
    seen.lostAttempts += reaped.lost;
    const expired = await q<{ n: number }>(
      `SELECT count(*)::int AS n FROM queue_tasks WHERE state = 'leased' AND lease_expires_at < now()`,
    );
    expect(expired[0]?.n, 'expired leases left after a reap').toBe(0);
    return;
  }
  if (op.k === 'claimRace') {
    const [a, b] = sims as [SimWorker, SimWorker];
    if (a.paused || b.paused) return;
    const [ca, cb] = await Promise.all([
      queue.claim(a.id, ['default'], op.n, LONG_LEASE_MS),
      queue.claim(b.id, ['default'], op.n, LONG_LEASE_MS),
    ]);
    a.held.push(...ca);
    b.held.push(...cb);
    const taken = [...ca, ...cb].map((c) => `${c.runId}/${c.task}`);
    expect(new Set(taken).size, `both claimed one task: ${taken.join(', ')}`).toBe(taken.length);
    if (ca.length > 0 && cb.length > 0) seen.claimRaces += 1;
    return;
  }
  const w = sims[op.w]!;
  switch (op.k) {
    case 'race': {
      if (w.paused) return;
      const claim = pick(w, op.i, runId);
      if (!claim?.started) return;
      await expireLeases(w.id);
      const [result, reaped] = await Promise.all([queue.complete(w.id, [succeeded(claim)]), queue.reap()]);
      drop(w, claim);
      seen.lostAttempts += reaped.lost;
      const attempt = (
        await q<{ state: string; worker: string }>(
          'SELECT state, worker FROM attempts WHERE run_id = $1 AND task = $2 AND attempt = $3',
          [runId, claim.task, claim.attempt],
        )
      )[0];
      // Exactly one of them wins: the result is recorded, or the attempt is lost; never both.
      if (result.recorded[0]) {
        expect(attempt?.state, `race on ${claim.task}#${claim.attempt}`).toBe('succeeded');
        seen.racesWonByResult += 1;
      } else {
        expect(attempt?.state, `race on ${claim.task}#${claim.attempt}`).toBe('lost');
        seen.racesWonByReaper += 1;
      }
      return;
    }
    case 'late': {
      if (w.paused) return;
      if (op.expire) await expireLeases(w.id);
      // The claims it holds whose lease expired: still the task's, reaped, or claimed by another.
      const stale: ClaimedTask[] = [];
      for (const c of w.held.filter((c) => c.runId === runId)) {
        const row = await queueRow(runId, c.task);
        if (!holds(row, w, c) || row!.expired === true) stale.push(c);
      }
      const claim = stale[op.i % Math.max(stale.length, 1)];
      if (!claim) return;
      await write(queue, runId, w, claim, claim.started ? succeeded(claim) : 'start', false);
      return;
    }
    case 'claimCrash':
      if (w.paused) return;
      await step(queue, runId, sims, { k: 'claim', w: op.w, n: 1 });
      await checkInvariants(runId, sims, `claimCrash ${w.id}: claimed`);
      await step(queue, runId, sims, { k: 'crash', w: op.w });
      return;
    case 'crash':
      await expireLeases(w.id);
      await step(queue, runId, sims, { k: 'reap' });
      return;
    case 'pause':
      w.paused = true;
      return;
    case 'expire':
      await expireLeases(w.id);
      return;
    case 'resume':
      if (!w.paused) return;
      w.paused = false;
      // Back from a pause: it finishes what it believes it holds, as if nothing happened.
      for (const claim of w.held.filter((c) => c.runId === runId)) {
        await write(queue, runId, w, claim, claim.started ? succeeded(claim) : 'start', false);
        await checkInvariants(runId, sims, `resume ${w.id}`);
      }
      return;
    case 'claim': {
      // A paused worker does nothing until it resumes (nor does it heartbeat).
      if (w.paused) return;
      const before = await q<{ task: string }>(
        `SELECT task FROM queue_tasks WHERE run_id = $1 AND state = 'ready' AND available_at <= now()`,
        [runId],
      );
      const claims = await queue.claim(w.id, ['default'], op.n, LONG_LEASE_MS);
      expect(claims.length).toBe(Math.min(op.n, before.length));
      for (const c of claims) expect(before.map((r) => r.task)).toContain(c.task);
      w.held.push(...claims);
      return;
    }
    case 'heartbeat': {
      if (w.paused) return;
      const mine = await q<{ task: string; lease_id: string }>(
        `SELECT task, lease_id::text FROM queue_tasks WHERE state = 'leased' AND lease_owner = $1`,
        [w.id],
      );
      const before = await snapshot(runId);
      const renewal = await queue.renewLeases(w.id, LONG_LEASE_MS);
      // It renews exactly the leases the queue says it holds: a reaped one is not revived.
      expect(renewal.held.map((h) => `${h.task}#${h.lease}`).sort()).toEqual(
        mine.map((m) => `${m.task}#${m.lease_id}`).sort(),
      );
      const stale = w.held.filter((c) => !renewal.held.some((h) => h.task === c.task && h.lease === c.lease));
      if (stale.length > 0) {
        seen.lateHeartbeatsEmpty += 1;
        // A heartbeat for lost leases changes nothing but the expiry of the ones it holds.
        if (renewal.held.length === 0) expect(await snapshot(runId)).toBe(before);
      }
      return;
    }
    case 'succeed': {
      if (w.paused) return;
      const claim = pick(w, op.i, runId);
      if (!claim) return;
      await write(queue, runId, w, claim, claim.started ? succeeded(claim) : 'start', op.chain);
      return;
    }
    case 'fail': {
      if (w.paused) return;
      const claim = pick(w, op.i, runId);
      if (!claim) return;
      const completion: TaskCompletion = claim.started
        ? failed(claim, op.retryable)
        : // Its `when` said no.
          {
            runId,
            task: claim.task,
            lease: claim.lease,
            attempt: claim.attempt,
            kind: 'skipped',
            reason: 'no',
          };
      await write(queue, runId, w, claim, completion, false);
      return;
    }
  }
}

function failed(claim: ClaimedTask, retryable: boolean): TaskCompletion {
  return {
    runId: claim.runId,
    task: claim.task,
    lease: claim.lease,
    attempt: claim.attempt,
    kind: 'failed',
    state: 'failed',
    error: { code: 'HANDLER_FAILED', message: retryable ? 'boom' : 'fatal' },
    retryable,
  };
}

function succeeded(claim: ClaimedTask): TaskCompletion {
  return {
    runId: claim.runId,
    task: claim.task,
    lease: claim.lease,
    attempt: claim.attempt,
    kind: 'succeeded',
    output: { by: claim.lease },
  };
}

/**
 * After the sequence: every worker stops (its leases expire and are reaped), an honest worker
 * finishes the run, and the paused ones come back with their stale claims, which change nothing.
 */
async function drain(queue: TaskQueue, runId: string, sims: SimWorker[]): Promise<string> {
  draining = true;
  await q(
    `UPDATE queue_tasks SET lease_expires_at = now() - interval '1 second' WHERE state = 'leased' AND run_id = $1`,
    [runId],
  );
  seen.lostInDrain += (await queue.reap()).lost;
  await checkInvariants(runId, sims, 'drain: reaped');
  const honest: SimWorker = { id: 'finisher', held: [], paused: false };
  const failedOnce = new Set<string>();
  for (let round = 0; round < 60; round++) {
    const run = (await q<{ state: string }>('SELECT state FROM runs WHERE id = $1', [runId]))[0];
    if (run && TERMINAL.has(run.state)) break;
    const claims = await queue.claim(honest.id, ['default'], 10, LONG_LEASE_MS);
    honest.held.push(...claims);
    for (const claim of claims) {
      if (!claim.started) await write(queue, runId, honest, claim, 'start', false);
      const lost = await q<{ n: number }>(
        `SELECT count(*)::int AS n FROM attempts WHERE run_id = $1 AND task = $2 AND state = 'lost'`,
        [runId, claim.task],
      );
      // A task that was lost fails once (retryably) before it succeeds: the invariants then
      // check that the lost attempts left its retries to it.
      const failOnce = (lost[0]?.n ?? 0) > 0 && !failedOnce.has(claim.task);
      failedOnce.add(claim.task);
      await write(queue, runId, honest, claim, failOnce ? failed(claim, true) : succeeded(claim), false);
      await checkInvariants(runId, [...sims, honest], `drain: ${claim.task}`);
    }
  }
  const finished = await snapshot(runId);
  for (const w of sims) {
    for (const claim of w.held.filter((c) => c.runId === runId)) {
      await write(queue, runId, w, claim, claim.started ? succeeded(claim) : 'start', false);
    }
    const renewal = await queue.renewLeases(w.id, LONG_LEASE_MS);
    expect(renewal.held.filter((h) => h.runId === runId)).toEqual([]);
  }
  expect(await snapshot(runId), 'late writes after the run finished changed it').toBe(finished);
  await checkInvariants(runId, sims, 'drain: done');
  draining = false;
  return (await q<{ state: string }>('SELECT state FROM runs WHERE id = $1', [runId]))[0]!.state;
}

describe.skipIf(!db.available)('leases on the PostgreSQL queue (property-based)', () => {
  it(
    'claims, heartbeats, results, expiries, reaps and pauses of 2–3 workers keep the lease invariants',
    async () => {
      const store: RunStore = await db.openStore();
      const queue = await db.openQueue({ maxLostAttempts: MAX_LOST, random: () => 0.5 });
      const rng = seededRng('lease properties');
      const numRuns = count(30, 500);
      const maxLength = isFullTier ? 60 : 30;
      const started = Date.now();
      let sequence = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 2, max: 3 }),
          fc.array(opArb, { minLength: 12, maxLength, size: 'max' }),
          async (nWorkers, ops) => {
            sequence += 1;
            draining = false;
            // Each sequence starts from an empty queue (a shrinking replay may follow a failed one).
            await q('DELETE FROM queue_tasks');
            await q('DELETE FROM queue_runs');
            const run = await createRun(store, {
              plan: PLAN,
              params: {},
              trigger: 'manual',
              now: Date.now(),
            });
            expect(await queue.startRun(run.id)).toBe(true);
            const sims: SimWorker[] = WORKERS.slice(0, nWorkers).map((id) => ({
              id: `${id}/${sequence}`,
              held: [],
              paused: false,
            }));
            for (const [n, op] of ops.entries()) {
              if ('w' in op && op.w >= nWorkers) continue;
              await step(queue, run.id, sims, op);
              seen.steps += 1;
              await checkInvariants(run.id, sims, `step ${n} ${JSON.stringify(op)}`);
            }
            const final = await drain(queue, run.id, sims);
            const states = await q<{ task: string; state: string; code: string | null }>(
              `SELECT task, state, error->>'code' AS code FROM task_runs WHERE run_id = $1`,
              [run.id],
            );
            // Every task ends in exactly one terminal state; the run's follows from them.
            expect(states.length).toBe(PLAN.order.length);
            expect(states.filter((s) => !TERMINAL.has(s.state))).toEqual([]);
            expect(final).toBe(states.some((s) => s.state === 'failed') ? 'failed' : 'succeeded');
            const left = await q<{ n: number }>(
              `SELECT (SELECT count(*) FROM queue_tasks WHERE run_id = $1) + (SELECT count(*) FROM queue_runs WHERE run_id = $1) AS n`,
              [run.id],
            );
            expect(Number(left[0]?.n)).toBe(0);
            seen.lostTaskFailures += states.filter((s) => s.code === 'TASK_LOST').length;
            if (final === 'succeeded') seen.succeededRuns += 1;
            else seen.failedRuns += 1;
            seen.runs += 1;
          },
        ),
        { seed: rng.seed | 0, numRuns },
      );
      console.log(
        `[reliability] lease properties: ${seen.runs} runs, ${seen.steps} steps in ${Date.now() - started} ms; ` +
          `${seen.lateWritesRejected} late writes rejected (${seen.lateWritesRejectedByNewerLease} by a newer lease; +${seen.lateWritesRejectedInDrain} after draining), ` +
          `${seen.expiredLeaseWritesAccepted} writes with an expired, unreaped lease accepted, ${seen.lateHeartbeatsEmpty} heartbeats with lost leases, ` +
          `${seen.lostAttempts} attempts lost (+${seen.lostInDrain} when draining), ${seen.retriedAfterLoss.size} tasks retried after a loss, ` +
          `${seen.lostTaskFailures} tasks failed TASK_LOST (${seen.lostCapInSequences.size} in the sequences), races result/reaper ${seen.racesWonByResult}/${seen.racesWonByReaper}, ` +
          `${seen.claimRaces} simultaneous claims both served, runs ${seen.succeededRuns} succeeded / ${seen.failedRuns} failed`,
      );
      // The generated sequences themselves (not the drain, which makes them by construction)
      // reached the paths the invariants are about.
      expect(seen.lateWritesRejected, 'late writes refused in the sequences').toBeGreaterThan(0);
      expect(seen.expiredLeaseWritesAccepted, 'expired, unreaped leases written with').toBeGreaterThan(0);
      expect(seen.lostAttempts, 'attempts lost in the sequences').toBeGreaterThan(0);
      if (isFullTier) {
        expect(seen.lateWritesRejectedByNewerLease, 'late writes refused by a newer lease').toBeGreaterThan(
          0,
        );
        expect(seen.racesWonByReaper, 'result/reaper races the reaper won').toBeGreaterThan(0);
        expect(seen.racesWonByResult, 'result/reaper races the result won').toBeGreaterThan(0);
        expect(seen.claimRaces, 'simultaneous claims both served').toBeGreaterThan(0);
        expect(seen.retriedAfterLoss.size, 'tasks retried after a loss').toBeGreaterThan(0);
        expect(seen.lostCapInSequences.size, 'tasks failed TASK_LOST in the sequences').toBeGreaterThan(0);
      }
    },
    // Generous: the machine running the suite may be busy with other tests.
    count(180_000, 1_800_000),
  );
});
