import pg from 'pg';
import type { Plan } from '../../compile/plan.js';
import type { JsonValue } from '../../core/json.js';
import {
  assertRunTransition,
  isRunFinished,
  type AttemptState,
  type RunState,
  type TaskState,
} from '../../core/states.js';
import { WeftError, type ErrorInfo } from '../../errors.js';
import { stopOrphanGroup } from '../../engine/interrupted.js';
import {
  advanceTasks,
  completeRun,
  decodeStates,
  encodeStates,
  needsPreviousFailures,
  planIndex,
  startTasks,
  type Change,
  type CoordState,
  type FinishedTask,
  type TaskChange,
  type TaskOutcome,
} from '../../worker/advance.js';
import {
  QUEUE_RUN_OWNER,
  type ClaimedTask,
  type HookClaim,
  type LeaseRenewal,
  type QueueHealth,
  type ReapResult,
  type TaskCompletion,
  type TaskQueue,
  type UpstreamRow,
  type WorkerInfo,
} from '../../worker/queue-port.js';
import type { HookRecord } from '../run-store.js';
import { parseJsonColumn, parsePlan } from '../memory/json-codec.js';
import { migratePostgres } from './migrate.js';
import { createStorePool } from './pool.js';
import * as sql from './queue-sql.js';
import { redactUrl } from './url.js';
import { prepared, sqlState } from './write-batch.js';

/**
 * The PostgreSQL TaskQueue. Every operation is one transaction; the coordination of a run (what
 * its finished tasks make ready, skipped or finished) is decided by the pure functions of
 * src/worker/advance.ts and written in the same transaction as the results it follows from.
 *
 * IMPORTANT: every write after a claim is fenced on the lease (run, task, lease id, owner) and
 * made under the run's queue_runs row lock, so results of one run are applied one transaction at
 * a time, in a consistent view, and a worker that lost its lease writes nothing.
 */

export interface PostgresQueueOptions {
  /** The store's schema, when it has one (see PostgresStoreOptions.schema). */
  schema?: string;
  /** Connections at most. Default 4. */
  poolSize?: number;
  /** Lost attempts of one task before it fails with TASK_LOST. Default 3. */
  maxLostAttempts?: number;
  /** For retry jitter. Default Math.random. */
  random?: () => number;
  /** Apply pending migrations when opening (default true). */
  migrate?: boolean;
  /**
   * Wait for the WAL flush on every queue transaction (default false; taking a run is always
   * flushed). See QUEUE DURABILITY below.
   */
  synchronousCommit?: boolean;
}

/** Workers whose heartbeat is older than this count as gone in queueHealth. */
const LIVE_WORKER_MS = 30_000;
const REAP_BATCH = 500;
/** A run still `queued` this long after it was created was never handed over (see reap). */
const ORPHAN_AFTER_MS = 60_000;
/** Runs coordinated per transaction by the reaper. */
const REAP_RUNS_PER_TX = 50;

interface LockedRunRow {
  run_id: string;
  states: string;
  first_attempt: number;
  cancel_seen: boolean;
  running: number;
  max_running: number | null;
  deadline_ms: number | null;
  timed_out: boolean;
  state: string;
  attempt: number;
  cancel_requested: boolean;
  owner: string | null;
  plan_hash: string;
  pipeline: string;
  created_at: string;
}

interface FenceRow {
  run_id: string;
  task: string;
  lease_id: number;
  lease_owner: string;
  expired: boolean;
  attempt: number;
  base: number;
  lost: number;
  task_state: string;
}

interface ClaimRequest {
  workerId: string;
  queues: readonly string[];
  limit: number;
  leaseMs: number;
}

interface ClaimRow {
  run_id: string;
  task: string;
  queue: string;
  attempt: number;
  lease_id: number;
  delay_ms: number;
  started: boolean;
  run_attempt: number;
}

/** A result to apply: a worker's completion, or a lost lease found by the reaper. */
type Report =
  | { from: 'worker'; owner: string; completion: TaskCompletion }
  | { from: 'reaper'; runId: string; task: string; lease: number; owner: string; attempt: number | null };

function reportKey(runId: string, task: string): string {
  return `${runId}\u0000${task}`;
}

function noNul(text: string): string {
  return text.includes('\u0000') ? text.replaceAll('\u0000', '\uFFFD') : text;
}

function jsonText(value: unknown): string | null {
  return value === null || value === undefined ? null : JSON.stringify(value);
}

function conflict(what: string): WeftError {
  return new WeftError('RUN_STATE', `the queue changed under a transaction (${what}); it was rolled back`, {
    retryable: true,
  });
}

interface QueueOp {
  op: 'delete' | 'new' | 'requeue';
  queue?: string;
  availableAt?: number;
  delayMs?: number;
  hasWhen?: boolean;
  baseInc?: number;
  lostInc?: number;
}

interface RunUpdate {
  runId: string;
  from: RunState;
  to: RunState;
  error?: ErrorInfo | null;
  attempt?: number;
  nextAttemptAt?: number | null;
  finished?: boolean;
  start?: boolean;
}

/** A run's queue_runs row as a transaction leaves it. */
interface QueueRunRow {
  runId: string;
  states: string;
  firstAttempt: number;
  cancelSeen: boolean;
  /** Its leased tasks (see migration 004). */
  running: number;
  maxRunning: number | null;
  /** Epoch ms, or null: no timeout. */
  deadlineAt: number | null;
  timedOut: boolean;
}

/** The run's `concurrency` as a limit on its leased tasks (null: none). */
function maxRunningOf(plan: Plan): number | null {
  const n = plan.concurrency;
  return Number.isFinite(n) && n >= 1 ? Math.floor(n) : null;
}

const planQueues = new WeakMap<Plan, string[]>();

/** The queues a plan's tasks go to (cached: plans are immutable). */
function queuesOf(plan: Plan): string[] {
  let names = planQueues.get(plan);
  if (!names) {
    names = [...new Set(Object.values(plan.tasks).map((t) => t.queue))];
    planQueues.set(plan, names);
  }
  return names;
}

/** When a run attempt that starts (its first tasks available) at `startsAt` times out. */
function deadlineOf(plan: Plan, startsAt: number): number | null {
  return plan.timeoutMs === null ? null : startsAt + plan.timeoutMs;
}

/** The run's error once past its timeout, worded as the interpreter words it (run-pass.ts). */
function runTimeoutError(plan: Plan): ErrorInfo {
  return { code: 'RUN_TIMEOUT', message: `the run timed out after ${plan.timeoutMs ?? 0}ms` };
}

/** The host and pid of a worker, from its registration or else from an id shaped "host:pid/…". */
function workerProcess(id: string, host: string | null, pid: number | null): string | null {
  if (host !== null && pid !== null) return `${host}:${pid}`;
  const match = /^(.+):(\d+)(?:\/.*)?$/.exec(id);
  return match ? `${match[1]!}:${match[2]!}` : null;
}

/** Everything one transaction writes, gathered across runs and written with bulk statements. */
class WriteSet {
  readonly attemptEnds: {
    runId: string;
    task: string;
    attempt: number;
    state: AttemptState;
    error: ErrorInfo | null;
  }[] = [];
  readonly taskChanges = new Map<string, { runId: string; change: TaskChange }>();
  readonly queueOps = new Map<string, { runId: string; task: string; op: QueueOp }>();
  readonly hooks: HookRecord[] = [];
  readonly queueRuns: QueueRunRow[] = [];
  readonly closedRuns: string[] = [];
  readonly runUpdates: RunUpdate[] = [];
  readonly wake = new Set<string>();
  wakeHooks = false;

  addTaskChange(runId: string, change: TaskChange): void {
    const key = reportKey(runId, change.task);
    const previous = this.taskChanges.get(key);
    if (!previous) {
      this.taskChanges.set(key, { runId, change });
      return;
    }
    // Two changes of one task in one transaction (it failed, then a run retry reset it): one
    // write from the first state to the last, fields of the later change winning.
    const merged: TaskChange = change.reset
      ? { ...change, from: previous.change.from }
      : { ...previous.change, ...change, from: previous.change.from };
    this.taskChanges.set(key, { runId, change: merged });
  }

  addQueueOp(runId: string, task: string, op: QueueOp): void {
    const key = reportKey(runId, task);
    const previous = this.queueOps.get(key)?.op;
    // A task dequeued and enqueued anew in one transaction: the insert replaces the row (upsert).
    if (previous && previous.op === 'requeue' && op.op === 'delete') return;
    this.queueOps.set(key, { runId, task, op });
  }
}

/*
 * QUEUE DURABILITY: claims, results and housekeeping commit without waiting for the WAL flush
 * (synchronous_commit off), which on an ordinary disk costs milliseconds per commit and would cap a
 * chain of tasks at a few hundred per second. This is safe for the queue's invariants: PostgreSQL
 * may lose the last such commits only when the server itself crashes, and it loses each whole and
 * in order, so the database is as it was a moment earlier — exactly the state after a worker died
 * before reporting, which leases already recover from (the task runs again: at least once).
 * Taking a run (startRun) does wait for the flush: nothing else would ever come back for a run
 * left `queued`. Store writes (logs, runs created) keep the RunStore's durability.
 */
export async function createPostgresTaskQueue(
  url: string,
  options: PostgresQueueOptions = {},
): Promise<TaskQueue> {
  const location = redactUrl(url);
  const pool = createStorePool(url, {
    ...(options.schema !== undefined ? { schema: options.schema } : {}),
    poolSize: options.poolSize ?? 4,
  });
  if (!options.synchronousCommit) {
    // Issued on each new connection before any other query of it.
    pool.on('connect', (client) => {
      client.query('SET synchronous_commit = off').catch(() => undefined);
    });
  }
  try {
    if (options.migrate ?? true) {
      await migratePostgres(pool, {
        location,
        ...(options.schema !== undefined ? { schema: options.schema } : {}),
      });
    }
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error instanceof WeftError ? error : queueError(location, 'cannot open', error);
  }
  return new PostgresTaskQueue(pool, url, location, options);
}

function queueError(location: string, doing: string, cause: unknown): WeftError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new WeftError('STORE_FAILED', `${doing} the PostgreSQL queue ${location}: ${detail}`, { cause });
}

/** Serialization failures and deadlocks are worth one more try; nothing was committed. */
function isTransient(error: unknown): boolean {
  const code = sqlState(error);
  return code === '40001' || code === '40P01';
}

class PostgresTaskQueue implements TaskQueue {
  readonly location: string;
  readonly #pool: pg.Pool;
  readonly #url: string;
  readonly #options: PostgresQueueOptions;
  readonly #plans = new Map<string, Plan>();
  readonly #listeners = new Set<pg.Client>();
  #closed = false;

  constructor(pool: pg.Pool, url: string, location: string, options: PostgresQueueOptions) {
    this.#pool = pool;
    this.#url = url;
    this.location = location;
    this.#options = options;
  }

  // ---- plumbing ---------------------------------------------------------------------------------

  async #query<R extends pg.QueryResultRow>(text: string, values: readonly unknown[] = []): Promise<R[]> {
    if (this.#closed) throw new WeftError('STORE_FAILED', `the queue ${this.location} is closed`);
    try {
      return (await this.#pool.query<R>(prepared(text, values))).rows;
    } catch (error) {
      throw error instanceof WeftError ? error : queueError(this.location, 'cannot use', error);
    }
  }

  /** One transaction; retried (a few times) on a deadlock or serialization failure. */
  async #transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    if (this.#closed) throw new WeftError('STORE_FAILED', `the queue ${this.location} is closed`);
    for (let attempt = 1; ; attempt++) {
      const client = await this.#pool.connect().catch((error: unknown) => {
        throw queueError(this.location, 'cannot reach', error);
      });
      let broken = false;
      try {
        await client.query('BEGIN');
        const result = await work(client);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
        if (attempt < 4 && isTransient(error)) continue;
        throw error instanceof WeftError ? error : queueError(this.location, 'cannot commit to', error);
      } finally {
        client.release(broken);
      }
    }
  }

  async #plan(client: pg.PoolClient, hash: string): Promise<Plan> {
    let plan = this.#plans.get(hash);
    if (!plan) {
      const rows = await client.query<{ plan: string }>('SELECT plan FROM plans WHERE hash = $1', [hash]);
      const text = rows.rows[0]?.plan;
      if (text === undefined)
        throw new WeftError('STORE_FAILED', `${this.location}: plan ${hash} is missing`);
      plan = parsePlan(text);
      if (this.#plans.size > 32) this.#plans.delete(this.#plans.keys().next().value!);
      this.#plans.set(hash, plan);
    }
    return plan;
  }

  // ---- runs -------------------------------------------------------------------------------------

  startRun(runId: string): Promise<boolean> {
    return this.#transaction(async (client) => {
      await client.query('SET LOCAL synchronous_commit = on');
      const row = (
        await client.query<{
          state: string;
          attempt: number;
          plan_hash: string;
          pipeline: string;
          created_at: string;
          now: string;
        }>(prepared(sql.LOCK_RUN_FOR_START_SQL, [runId]))
      ).rows[0];
      if (!row || row.state !== 'queued') return false;
      assertRunTransition(runId, 'queued', 'running');
      const plan = await this.#plan(client, row.plan_hash);
      const now = Date.parse(row.now);
      const byTask = new Map(
        (
          await client.query<{ task: string; state: string }>(prepared(sql.TASK_STATES_SQL, [runId]))
        ).rows.map((r) => [r.task, r.state as TaskState]),
      );
      const taskStates = plan.order.map((name) => {
        const state = byTask.get(name);
        if (state === undefined)
          throw new WeftError('INTERNAL', `run ${runId} has no task run for "${name}"`);
        return state;
      });
      // Whatever an earlier execution of this run left in the queue is void now.
      await client.query(prepared(sql.DELETE_RUN_QUEUE_SQL, [[runId]]));
      await client.query(prepared(sql.DELETE_QUEUE_RUNS_SQL, [[runId]]));
      const started = startTasks({ plan, taskStates, now });
      const writes = new WriteSet();
      writes.runUpdates.push({ runId, from: 'queued', to: 'running', start: true });
      this.#collect(writes, runId, plan, started.changes);
      const run = {
        id: runId,
        attempt: row.attempt,
        firstAttempt: row.attempt,
        cancelRequested: false,
        state: 'running' as RunState,
      };
      let states = started.states;
      let closed = false;
      let deadlineAt = deadlineOf(plan, now);
      if (started.complete) {
        const result = await this.#finishRun(
          client,
          writes,
          plan,
          { ...run, pipeline: row.pipeline, createdAt: row.created_at },
          states,
          now,
          new Map(),
        );
        states = result.states;
        closed = result.closed;
        if (result.retryAt !== null) deadlineAt = deadlineOf(plan, result.retryAt);
      }
      if (!closed) {
        writes.queueRuns.push({
          runId,
          states: encodeStates(states),
          firstAttempt: row.attempt,
          cancelSeen: false,
          running: 0,
          maxRunning: maxRunningOf(plan),
          deadlineAt,
          timedOut: false,
        });
      }
      await client.query(prepared(sql.QUEUE_PENDING_HOOKS_SQL, [runId]));
      writes.wakeHooks = true;
      await this.#flush(client, writes, now);
      await this.#notify(client, writes);
      return true;
    });
  }

  // ---- claims -----------------------------------------------------------------------------------

  async claim(
    workerId: string,
    queues: readonly string[],
    limit: number,
    leaseMs: number,
  ): Promise<ClaimedTask[]> {
    if (this.#closed) throw new WeftError('STORE_FAILED', `the queue ${this.location} is closed`);
    try {
      return await this.#claimIn(this.#pool, { workerId, queues, limit, leaseMs });
    } catch (error) {
      throw error instanceof WeftError ? error : queueError(this.location, 'cannot claim from', error);
    }
  }

  async startAttempt(workerId: string, claim: ClaimedTask): Promise<boolean> {
    const rows = await this.#query<{ started: number }>(sql.START_ATTEMPT_SQL, [
      claim.runId,
      claim.task,
      claim.lease,
      workerId,
    ]);
    return (rows[0]?.started ?? 0) > 0;
  }

  async renewLeases(workerId: string, leaseMs: number): Promise<LeaseRenewal> {
    const rows = await this.#query<{
      run_id: string;
      task: string;
      lease_id: number;
      cancel_requested: boolean;
      timed_out: boolean;
    }>(sql.RENEW_SQL, [workerId, Math.max(1, Math.floor(leaseMs))]);
    return {
      held: rows.map((r) => ({ runId: r.run_id, task: r.task, lease: r.lease_id })),
      cancelRequested: [...new Set(rows.filter((r) => r.cancel_requested).map((r) => r.run_id))],
      timedOut: [...new Set(rows.filter((r) => r.timed_out && !r.cancel_requested).map((r) => r.run_id))],
    };
  }

  async releaseLeases(workerId: string): Promise<void> {
    await this.#query(sql.RELEASE_LEASES_SQL, [workerId]);
    await this.reap();
  }

  async nextDueIn(queues: readonly string[]): Promise<number | null> {
    const rows = await this.#query<{ due_in: number | null }>(sql.NEXT_DUE_SQL, [queues]);
    return rows[0]?.due_in ?? null;
  }

  // ---- results ----------------------------------------------------------------------------------

  async complete(
    workerId: string,
    completions: readonly TaskCompletion[],
    next?: { queues: readonly string[]; limit: number; leaseMs: number },
  ): Promise<{ recorded: boolean[]; claimed: ClaimedTask[] }> {
    const reports: Report[] = completions.map((completion) => ({
      from: 'worker',
      owner: workerId,
      completion,
    }));
    const { accepted, claimed } = await this.#transaction((client) =>
      this.#coordinate(client, reports, [], next ? { workerId, ...next } : undefined),
    );
    return { recorded: completions.map((c) => accepted.has(reportKey(c.runId, c.task))), claimed };
  }

  /**
   * The one transaction shape that moves runs forward: lock the runs' coordination rows, fence
   * the reports on their leases, advance (advance.ts), finish runs that are done, write it all.
   * `sweep`: runs to advance with no report (a cancel request nobody's result carried yet).
   * Returns the keys of the reports it applied.
   */
  async #coordinate(
    client: pg.PoolClient,
    reports: readonly Report[],
    sweep: readonly string[],
    claimFor?: ClaimRequest,
  ): Promise<{ accepted: Set<string>; claimed: ClaimedTask[] }> {
    const runIds = [
      ...new Set([...reports.map((r) => (r.from === 'worker' ? r.completion.runId : r.runId)), ...sweep]),
    ].sort();
    const row0 = (
      await client.query<{ locked: string; fenced: string; now: string }>(
        prepared(sql.LOCK_AND_FENCE_SQL, [
          runIds,
          reports.map((r) => (r.from === 'worker' ? r.completion.runId : r.runId)),
          reports.map((r) => (r.from === 'worker' ? r.completion.task : r.task)),
          reports.map((r) => (r.from === 'worker' ? r.completion.lease : r.lease)),
        ]),
      )
    ).rows[0]!;
    const locked = JSON.parse(row0.locked) as LockedRunRow[];
    const fenced = JSON.parse(row0.fenced) as FenceRow[];
    const accepted = new Set<string>();
    if (locked.length === 0)
      return { accepted, claimed: claimFor ? await this.#claimIn(client, claimFor) : [] };
    const fenceByKey = new Map(fenced.map((f) => [reportKey(f.run_id, f.task), f]));
    const now = Date.parse(row0.now);
    const writes = new WriteSet();

    for (const row of locked) {
      const runId = row.run_id;
      const runState = row.state as RunState;
      if (row.owner !== QUEUE_RUN_OWNER || isRunFinished(runState) || runState === 'queued') {
        // Someone else executes the run now (a local resume), or it ended: the queue lets go of it.
        writes.closedRuns.push(runId);
        continue;
      }
      const plan = await this.#plan(client, row.plan_hash);
      let state = runState;
      if (state === 'retrying' || state === 'interrupted') {
        assertRunTransition(runId, state, 'running');
        writes.runUpdates.push({ runId, from: state, to: 'running', error: null, nextAttemptAt: null });
        state = 'running';
      }
      const finished: FinishedTask[] = [];
      const index = planIndex(plan);
      // The completion transaction respects the timeout too, whether or not the reaper saw it yet.
      const timedOut = row.timed_out || (row.deadline_ms !== null && row.deadline_ms <= now);
      const stopping = row.cancel_requested || timedOut;
      let ended = 0;
      for (const report of reports) {
        const key =
          report.from === 'worker'
            ? reportKey(report.completion.runId, report.completion.task)
            : reportKey(report.runId, report.task);
        if ((report.from === 'worker' ? report.completion.runId : report.runId) !== runId) continue;
        const fence = fenceByKey.get(key);
        if (!fence || !index.position.has(fence.task)) continue;
        const item = this.#toFinished(report, fence, writes);
        if (!item) continue;
        finished.push(item);
        accepted.add(key);
        // Every applied report ends its lease: the task leaves the queue or goes back to ready.
        ended += 1;
      }
      let withdrawn: Map<string, TaskState> | undefined;
      if (stopping) {
        const rows = (
          await client.query<{ task: string; state: string }>(prepared(sql.WITHDRAW_READY_SQL, [runId]))
        ).rows;
        withdrawn = new Map(rows.map((r) => [r.task, r.state as TaskState]));
      }
      const run = {
        id: runId,
        attempt: row.attempt,
        firstAttempt: row.first_attempt,
        cancelRequested: row.cancel_requested,
        ...(timedOut ? { timeout: runTimeoutError(plan) } : {}),
      };
      const running = Math.max(0, row.running - ended);
      if (
        !stopping &&
        row.max_running !== null &&
        row.running >= row.max_running &&
        running < row.max_running
      ) {
        // The run was at its limit and has room again: workers that skipped its tasks may take them.
        for (const name of queuesOf(plan)) writes.wake.add(name);
      }
      const advanced = advanceTasks({
        plan,
        states: decodeStates(row.states),
        run,
        finished,
        ...(withdrawn ? { withdrawn } : {}),
        now,
        ...(this.#options.random ? { random: this.#options.random } : {}),
        ...(this.#options.maxLostAttempts !== undefined
          ? { maxLostAttempts: this.#options.maxLostAttempts }
          : {}),
      });
      this.#collect(writes, runId, plan, advanced.changes);
      writes.hooks.push(...advanced.hooks);
      let states = advanced.states;
      let closed = false;
      let deadlineAt = row.deadline_ms;
      let timedOutNow = timedOut;
      if (advanced.complete) {
        const result = await this.#finishRun(
          client,
          writes,
          plan,
          { ...run, state, pipeline: row.pipeline, createdAt: row.created_at },
          states,
          now,
          this.#batchErrors(writes, runId),
        );
        states = result.states;
        closed = result.closed;
        if (result.retryAt !== null) {
          // A run retry is a new run attempt: its timeout counts from when its tasks may start.
          deadlineAt = deadlineOf(plan, result.retryAt);
          timedOutNow = false;
        }
      }
      if (!closed) {
        writes.queueRuns.push({
          runId,
          states: encodeStates(states),
          firstAttempt: row.first_attempt,
          cancelSeen: row.cancel_seen || row.cancel_requested,
          running,
          maxRunning: row.max_running,
          deadlineAt,
          timedOut: timedOutNow,
        });
      }
    }
    await this.#flush(client, writes, now);
    const claimed = claimFor ? await this.#claimIn(client, claimFor) : [];
    // Nobody else needs waking for a queue this worker just drained.
    if (claimFor && claimed.length < claimFor.limit) for (const q of claimFor.queues) writes.wake.delete(q);
    await this.#notify(client, writes);
    return { accepted, claimed };
  }

  async #claimIn(client: pg.PoolClient | pg.Pool, request: ClaimRequest): Promise<ClaimedTask[]> {
    if (request.limit < 1 || request.queues.length === 0) return [];
    const rows = (
      await client.query<ClaimRow>(
        prepared(sql.CLAIM_SQL, [
          request.queues,
          Math.floor(request.limit),
          request.workerId,
          Math.max(1, Math.floor(request.leaseMs)),
          QUEUE_RUN_OWNER,
        ]),
      )
    ).rows;
    return rows.map((r) => ({
      runId: r.run_id,
      task: r.task,
      queue: r.queue,
      attempt: r.attempt,
      lease: r.lease_id,
      started: r.started,
      delayMs: r.delay_ms,
      runAttempt: r.run_attempt,
    }));
  }

  async #notify(client: pg.PoolClient, writes: WriteSet): Promise<void> {
    const payloads = [...writes.wake].map((name) => `q:${name}`);
    if (writes.wakeHooks) payloads.push('h');
    if (payloads.length > 0) await client.query(prepared(sql.NOTIFY_SQL, [payloads]));
  }

  /** A fenced report as advance.ts sees it, and the end of its attempt. Null: not applicable. */
  #toFinished(report: Report, fence: FenceRow, writes: WriteSet): FinishedTask | null {
    const from = fence.task_state as TaskState;
    const runId = fence.run_id;
    if (report.from === 'reaper') {
      // Renewed since it was seen expired: its worker is alive after all.
      if (!fence.expired || fence.lease_owner !== report.owner) return null;
      const started = from === 'running' && fence.attempt !== null;
      const error: ErrorInfo = {
        code: 'TASK_LOST',
        message: `worker ${fence.lease_owner} stopped renewing its lease on attempt ${fence.attempt} (it died or hung)`,
      };
      if (started)
        writes.attemptEnds.push({ runId, task: fence.task, attempt: fence.attempt, state: 'lost', error });
      const outcome: TaskOutcome = {
        kind: 'lost',
        error,
        attempt: fence.attempt,
        // An attempt never started (its `when` was being evaluated) does not count as lost.
        lost: fence.lost + (started ? 1 : 0),
      };
      return { task: fence.task, from, outcome };
    }
    const c = report.completion;
    if (fence.lease_owner !== report.owner || fence.attempt !== c.attempt) return null;
    if (c.kind === 'skipped') {
      if (from !== 'pending') return null;
      return { task: c.task, from, outcome: { kind: 'skipped', reason: noNul(c.reason) } };
    }
    if (from !== 'running') return null;
    switch (c.kind) {
      case 'succeeded':
        writes.attemptEnds.push({ runId, task: c.task, attempt: c.attempt, state: 'succeeded', error: null });
        return { task: c.task, from, outcome: { kind: 'succeeded', output: c.output } };
      case 'cancelled':
        writes.attemptEnds.push({
          runId,
          task: c.task,
          attempt: c.attempt,
          state: 'cancelled',
          error: c.error,
        });
        return { task: c.task, from, outcome: { kind: 'cancelled', reason: noNul(c.error.message) } };
      case 'failed':
        writes.attemptEnds.push({ runId, task: c.task, attempt: c.attempt, state: c.state, error: c.error });
        return {
          task: c.task,
          from,
          outcome: {
            kind: 'failed',
            error: c.error,
            retryable: c.retryable,
            attempt: c.attempt,
            nth: c.attempt - fence.base,
          },
        };
    }
  }

  /** Errors of tasks that failed in this transaction (not written yet), by task. */
  #batchErrors(writes: WriteSet, runId: string): Map<string, ErrorInfo | null> {
    const out = new Map<string, ErrorInfo | null>();
    for (const { runId: id, change } of writes.taskChanges.values()) {
      if (id === runId && change.to === 'failed') out.set(change.task, change.error ?? null);
    }
    return out;
  }

  /** All tasks finished: the run ends (hooks recorded) or retries (tasks reset, roots delayed). */
  async #finishRun(
    client: pg.PoolClient,
    writes: WriteSet,
    plan: Plan,
    run: {
      id: string;
      attempt: number;
      firstAttempt: number;
      cancelRequested: boolean;
      timeout?: ErrorInfo;
      state: RunState;
      pipeline: string;
      createdAt: string;
    },
    states: CoordState[],
    now: number,
    batchErrors: Map<string, ErrorInfo | null>,
  ): Promise<{ states: CoordState[]; closed: boolean; retryAt: number | null }> {
    const errors = new Map<string, ErrorInfo | null>();
    if (states.includes('failed')) {
      const rows = (
        await client.query<{ task: string; error: string | null }>(prepared(sql.FAILED_ERRORS_SQL, [run.id]))
      ).rows;
      for (const r of rows) errors.set(r.task, parseJsonColumn<ErrorInfo>(r.error));
      for (const [task, error] of batchErrors) errors.set(task, error);
    }
    let previousFailures = 0;
    if (needsPreviousFailures(plan)) {
      const rows = (
        await client.query<{ state: string }>(
          prepared(sql.PREVIOUS_RUNS_SQL, [run.pipeline, run.createdAt, run.id]),
        )
      ).rows;
      for (const r of rows) {
        if (r.state !== 'failed') break;
        previousFailures += 1;
      }
    }
    const completion = completeRun({
      plan,
      states,
      run,
      errors,
      previousFailures,
      now,
      ...(this.#options.random ? { random: this.#options.random } : {}),
    });
    const change = completion.run;
    writes.runUpdates.push({
      runId: run.id,
      from: change.from,
      to: change.to,
      error: change.error,
      attempt: change.attempt,
      nextAttemptAt: change.nextAttemptAt,
      finished: change.finished,
    });
    if (completion.kind === 'retrying') {
      this.#collect(writes, run.id, plan, completion.changes);
      return { states: completion.states, closed: false, retryAt: change.nextAttemptAt ?? now };
    }
    writes.hooks.push(...completion.hooks);
    writes.closedRuns.push(run.id);
    return { states, closed: true, retryAt: null };
  }

  #collect(writes: WriteSet, runId: string, plan: Plan, changes: readonly Change[]): void {
    for (const change of changes) {
      switch (change.type) {
        case 'task':
          writes.addTaskChange(runId, change);
          break;
        case 'dequeue':
          writes.addQueueOp(runId, change.task, { op: 'delete' });
          break;
        case 'enqueue': {
          if (change.mode === 'new') {
            const when = plan.tasks[change.task]!.when;
            writes.addQueueOp(runId, change.task, {
              op: 'new',
              queue: change.queue,
              availableAt: change.availableAt,
              delayMs: change.delayMs,
              hasWhen: when !== null && when !== true,
            });
          } else {
            const lostOne =
              change.mode === 'lost' &&
              writes.attemptEnds.some(
                (a) => a.runId === runId && a.task === change.task && a.state === 'lost',
              );
            writes.addQueueOp(runId, change.task, {
              op: 'requeue',
              availableAt: change.availableAt,
              delayMs: change.delayMs,
              baseInc: lostOne ? 1 : 0,
              lostInc: lostOne ? 1 : 0,
            });
          }
          writes.wake.add(change.queue);
          break;
        }
      }
    }
  }

  async #flush(client: pg.PoolClient, writes: WriteSet, now: number): Promise<void> {
    const nowIso = new Date(now).toISOString();
    const iso = (ms: number | null | undefined) =>
      ms === null || ms === undefined ? null : new Date(ms).toISOString();
    const a = writes.attemptEnds;
    const list = [...writes.taskChanges.values()];
    const c = list.map((x) => x.change);
    const has = (k: keyof TaskChange) => c.map((x) => Object.hasOwn(x, k) && x[k] !== undefined);
    const deletes: { runId: string; task: string }[] = [];
    const requeues: { runId: string; task: string; op: QueueOp }[] = [];
    const inserts: { runId: string; task: string; op: QueueOp }[] = [];
    for (const entry of writes.queueOps.values()) {
      if (entry.op.op === 'delete') deletes.push(entry);
      else if (entry.op.op === 'requeue') requeues.push(entry);
      else inserts.push(entry);
    }
    const h = writes.hooks;
    if (h.length > 0) writes.wakeHooks = true;
    const q = writes.queueRuns;
    const result = await client.query<{ changed: number }>(
      prepared(sql.APPLY_SQL, [
        nowIso,
        a.map((x) => x.runId),
        a.map((x) => x.task),
        a.map((x) => x.attempt),
        a.map((x) => x.state),
        a.map((x) => jsonText(x.error)),
        list.map((x) => x.runId),
        c.map((x) => x.task),
        c.map((x) => x.from),
        c.map((x) => x.to),
        has('output'),
        c.map((x) => (x.output === undefined ? null : jsonText(x.output))),
        has('error'),
        c.map((x) => jsonText(x.error ?? null)),
        has('reason'),
        c.map((x) => (x.reason === undefined || x.reason === null ? null : noNul(x.reason))),
        c.map((x) => x.finished === true),
        has('nextAttemptAt'),
        c.map((x) => iso(x.nextAttemptAt)),
        c.map((x) => x.reset === true),
        deletes.map((d) => d.runId),
        deletes.map((d) => d.task),
        requeues.map((d) => d.runId),
        requeues.map((d) => d.task),
        requeues.map((d) => iso(d.op.availableAt)),
        requeues.map((d) => d.op.delayMs ?? 0),
        requeues.map((d) => d.op.baseInc ?? 0),
        requeues.map((d) => d.op.lostInc ?? 0),
        inserts.map((d) => d.runId),
        inserts.map((d) => d.task),
        inserts.map((d) => d.op.queue),
        inserts.map((d) => iso(d.op.availableAt)),
        inserts.map((d) => d.op.hasWhen === true),
        inserts.map((d) => d.op.delayMs ?? 0),
        h.map((x) => x.runId),
        h.map((x) => x.key),
        h.map((x) => x.event),
        h.map((x) => x.task),
        h.map((x) => x.handler),
        h.map((x) => x.state),
        h.map((x) => jsonText(x.error)),
        h.map((x) => x.createdAt),
        q.map((x) => x.runId),
        q.map((x) => x.states),
        q.map((x) => x.firstAttempt),
        q.map((x) => x.cancelSeen),
        writes.closedRuns,
        q.map((x) => x.running),
        q.map((x) => x.maxRunning),
        q.map((x) => iso(x.deadlineAt)),
        q.map((x) => x.timedOut),
      ]),
    );
    const changed = result.rows[0]?.changed ?? 0;
    if (changed !== list.length)
      throw conflict(`${list.length - changed} task run(s) not in the state expected`);
    // One write per run: its state changes within this transaction are folded into the last one.
    const byRun = new Map<string, RunUpdate>();
    for (const update of writes.runUpdates) {
      const previous = byRun.get(update.runId);
      byRun.set(
        update.runId,
        previous
          ? {
              ...previous,
              ...update,
              from: previous.from,
              start: previous.start === true || update.start === true,
            }
          : update,
      );
    }
    for (const u of byRun.values()) {
      const sets = ['state = $2', 'heartbeat_at = $4::timestamptz'];
      const values: unknown[] = [u.runId, u.to, u.from, nowIso];
      const add = (column: string, value: unknown, cast = '') => {
        values.push(value);
        sets.push(`${column} = $${values.length}${cast}`);
      };
      if (u.start) {
        add('owner', QUEUE_RUN_OWNER);
        sets.push(
          'started_at = COALESCE(started_at, $4::timestamptz)',
          'finished_at = NULL',
          'next_attempt_at = NULL',
          'error = NULL',
        );
      }
      if (u.error !== undefined) add('error', jsonText(u.error), '::json');
      if (u.attempt !== undefined) add('attempt', u.attempt);
      if (u.nextAttemptAt !== undefined) add('next_attempt_at', iso(u.nextAttemptAt), '::timestamptz');
      if (u.finished) sets.push('finished_at = $4::timestamptz');
      const result = await client.query(
        prepared(`UPDATE runs SET ${sets.join(', ')} WHERE id = $1 AND state = $3`, values),
      );
      if (result.rowCount !== 1) throw conflict(`run ${u.runId} is no longer ${u.from}`);
    }
  }

  // ---- housekeeping -----------------------------------------------------------------------------

  async reap(): Promise<ReapResult> {
    const result: ReapResult = { lost: 0, cancelled: 0, resumed: 0, timedOut: 0 };
    const expired = await this.#query<{
      run_id: string;
      task: string;
      lease_id: number;
      lease_owner: string;
      attempt: number | null;
      pid: number | null;
      worker_host: string | null;
      worker_pid: number | null;
    }>(sql.EXPIRED_LEASES_SQL, [REAP_BATCH]);
    const expiredByKey = new Map(expired.map((e) => [reportKey(e.run_id, e.task), e]));
    const byRun = new Map<string, Report[]>();
    for (const e of expired) {
      const list = byRun.get(e.run_id) ?? [];
      list.push({
        from: 'reaper',
        runId: e.run_id,
        task: e.task,
        lease: e.lease_id,
        owner: e.lease_owner,
        attempt: e.attempt,
      });
      byRun.set(e.run_id, list);
    }
    const runs = [...byRun.keys()];
    for (let i = 0; i < runs.length; i += REAP_RUNS_PER_TX) {
      const reports = runs.slice(i, i + REAP_RUNS_PER_TX).flatMap((id) => byRun.get(id)!);
      const applied = await this.#transaction((client) => this.#coordinate(client, reports, []));
      result.lost += applied.accepted.size;
      // The attempts are lost on record; what they started (a shell command's process group) may
      // still run if their worker's process died on this host: stopped, as local recovery does.
      for (const key of applied.accepted) {
        const e = expiredByKey.get(key);
        if (!e || e.pid === null) continue;
        stopOrphanGroup({ pid: e.pid, worker: workerProcess(e.lease_owner, e.worker_host, e.worker_pid) });
      }
    }
    const timedOut = (await this.#query<{ run_id: string }>(sql.TIMED_OUT_SQL, [REAP_RUNS_PER_TX])).map(
      (r) => r.run_id,
    );
    if (timedOut.length > 0) {
      // Their tasks that do not run are cancelled, and the run ends once those that run stop
      // (their workers see the timeout on their next heartbeat).
      await this.#transaction((client) => this.#coordinate(client, [], timedOut));
      result.timedOut = timedOut.length;
    }
    const cancelling = (
      await this.#query<{ run_id: string }>(sql.CANCEL_PENDING_SQL, [REAP_RUNS_PER_TX])
    ).map((r) => r.run_id);
    if (cancelling.length > 0) {
      await this.#transaction((client) => this.#coordinate(client, [], cancelling));
      result.cancelled = cancelling.length;
    }
    result.resumed = (await this.#query(sql.RESUME_RUNS_SQL, [QUEUE_RUN_OWNER])).length;
    // A scheduler that died between creating a run and handing it over left it queued for good.
    for (const { id } of await this.#query<{ id: string }>(sql.ORPHAN_QUEUED_SQL, [ORPHAN_AFTER_MS, 20])) {
      if (await this.startRun(id)) result.resumed += 1;
    }
    await this.#query(sql.HEARTBEAT_RUNS_SQL, [QUEUE_RUN_OWNER]);
    await this.#query(sql.FORGET_WORKERS_SQL);
    return result;
  }

  // ---- hooks ------------------------------------------------------------------------------------

  async claimHooks(workerId: string, limit: number, leaseMs: number): Promise<HookClaim[]> {
    const rows = await this.#query<{ run_id: string; key: string }>(sql.CLAIM_HOOKS_SQL, [
      workerId,
      Math.max(1, Math.floor(limit)),
      Math.max(1, Math.floor(leaseMs)),
    ]);
    return rows.map((r) => ({ runId: r.run_id, key: r.key }));
  }

  async finishHook(workerId: string, claim: HookClaim): Promise<void> {
    await this.#query(sql.FINISH_HOOK_SQL, [claim.runId, claim.key, workerId]);
  }

  // ---- reads ------------------------------------------------------------------------------------

  async taskOutputs(runId: string, tasks: readonly string[]): Promise<UpstreamRow[]> {
    if (tasks.length === 0) return [];
    const rows = await this.#query<{ task: string; state: string; output: string | null }>(
      sql.TASK_OUTPUTS_SQL,
      [runId, tasks],
    );
    return rows.map((r) => ({
      task: r.task,
      state: r.state as TaskState,
      output: parseJsonColumn<JsonValue>(r.output),
    }));
  }

  async queueHealth(): Promise<QueueHealth[]> {
    const rows = await this.#query<QueueHealth>(sql.QUEUE_HEALTH_SQL, [LIVE_WORKER_MS]);
    return rows.map((r) => ({
      queue: r.queue,
      ready: Number(r.ready),
      delayed: Number(r.delayed),
      running: Number(r.running),
      workers: Number(r.workers),
    }));
  }

  // ---- workers ----------------------------------------------------------------------------------

  async registerWorker(info: WorkerInfo): Promise<void> {
    await this.#query(sql.REGISTER_WORKER_SQL, [
      info.id,
      [...info.queues],
      info.concurrency,
      info.host,
      info.pid,
    ]);
  }

  async unregisterWorker(workerId: string): Promise<void> {
    await this.#query(sql.UNREGISTER_WORKER_SQL, [workerId]);
  }

  async listen(onWake: (queue: string | null) => void): Promise<() => Promise<void>> {
    let stopped = false;
    let client: pg.Client | undefined;
    let retry: NodeJS.Timeout | undefined;
    const connect = async (): Promise<void> => {
      const next = new pg.Client({ connectionString: this.#url });
      next.on('notification', (message) => {
        if (message.channel !== sql.QUEUE_CHANNEL) return;
        const payload = message.payload ?? '';
        if (payload === 'h') onWake(null);
        else if (payload.startsWith('q:')) onWake(payload.slice(2));
      });
      // A lost connection: listen again shortly; the worker's fallback poll covers the gap.
      const lost = () => {
        this.#listeners.delete(next);
        next.removeAllListeners('error');
        next.on('error', () => undefined);
        void next.end().catch(() => undefined);
        if (stopped || this.#closed) return;
        retry = setTimeout(() => void connect().catch(lost), 1000);
        retry.unref();
      };
      next.on('error', lost);
      await next.connect();
      await next.query(`LISTEN ${sql.QUEUE_CHANNEL}`);
      client = next;
      this.#listeners.add(next);
    };
    try {
      await connect();
    } catch (error) {
      throw queueError(this.location, 'cannot listen on', error);
    }
    return async () => {
      stopped = true;
      clearTimeout(retry);
      if (client) {
        this.#listeners.delete(client);
        await client.end().catch(() => undefined);
      }
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#listeners].map((c) => c.end()));
    this.#listeners.clear();
    await this.#pool.end();
  }
}
