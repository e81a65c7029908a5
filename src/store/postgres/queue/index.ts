import type pg from 'pg';
import { WeftError } from '../../../errors.js';
import type {
  ClaimedTask,
  HookClaim,
  LeaseRenewal,
  QueueHealth,
  ReapResult,
  TaskCompletion,
  TaskQueue,
  UpstreamRow,
  WorkerInfo,
} from '../../../worker/queue-port.js';
import { migratePostgres } from '../migrate.js';
import { createStorePool } from '../pool.js';
import { redactUrl } from '../url.js';
import { claim, nextDueIn, startAttempt } from './claim.js';
import { complete } from './complete.js';
import { QueueConnection, queueError, type PostgresQueueOptions } from './connection.js';
import { claimHooks, finishHook, renewHook } from './hooks.js';
import { releaseLeases, renewLeases } from './leases.js';
import { listen } from './notify.js';
import { reap } from './reap.js';
import { startRun } from './start-run.js';
import { taskOutputs } from './task-outputs.js';
import { queueHealth, registerWorker, unregisterWorker } from './workers.js';

export type { PostgresQueueOptions } from './connection.js';

/**
 * The PostgreSQL TaskQueue, one module per operation. Every operation is one transaction; the
 * coordination of a run (what its finished tasks make ready, skipped or finished) is decided by the
 * pure functions of src/worker/advance.ts and written in the same transaction as the results it
 * follows from (coordinate.ts).
 *
 * IMPORTANT: every write after a claim is fenced on the lease (run, task, lease id, owner) and
 * made under the run's queue_runs row lock, so results of one run are applied one transaction at
 * a time, in a consistent view, and a worker that lost its lease writes nothing.
 *
 * The SQL sits beside each operation, one statement per database operation; bulk writes take
 * parallel arrays through unnest(), so a batch of any size is one statement.
 *
 * Lock order, the same everywhere so that no two transactions wait on each other in a cycle:
 * queue_runs (one row per run, taken first by every transaction that coordinates a run) →
 * queue_tasks → task_runs → attempts → runs. A claim takes queue_tasks rows with SKIP LOCKED and
 * never waits for queue_runs; housekeeping that touches many runs rows skips locked ones.
 */

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

/** The port's methods, each handed to the module of its operation. */
class PostgresTaskQueue implements TaskQueue {
  readonly location: string;
  readonly #conn: QueueConnection;

  constructor(pool: pg.Pool, url: string, location: string, options: PostgresQueueOptions) {
    this.location = location;
    this.#conn = new QueueConnection(pool, url, location, options);
  }

  startRun(runId: string): Promise<boolean> {
    return startRun(this.#conn, runId);
  }

  claim(workerId: string, queues: readonly string[], limit: number, leaseMs: number): Promise<ClaimedTask[]> {
    return claim(this.#conn, workerId, queues, limit, leaseMs);
  }

  startAttempt(workerId: string, claimed: ClaimedTask): Promise<boolean> {
    return startAttempt(this.#conn, workerId, claimed);
  }

  renewLeases(workerId: string, leaseMs: number, leases?: readonly number[]): Promise<LeaseRenewal> {
    return renewLeases(this.#conn, workerId, leaseMs, leases);
  }

  releaseLeases(workerId: string): Promise<void> {
    return releaseLeases(this.#conn, workerId);
  }

  nextDueIn(queues: readonly string[]): Promise<number | null> {
    return nextDueIn(this.#conn, queues);
  }

  complete(
    workerId: string,
    completions: readonly TaskCompletion[],
    next?: { queues: readonly string[]; limit: number; leaseMs: number },
  ): Promise<{ recorded: boolean[]; claimed: ClaimedTask[] }> {
    return complete(this.#conn, workerId, completions, next);
  }

  reap(): Promise<ReapResult> {
    return reap(this.#conn);
  }

  claimHooks(workerId: string, limit: number, leaseMs: number): Promise<HookClaim[]> {
    return claimHooks(this.#conn, workerId, limit, leaseMs);
  }

  renewHook(workerId: string, hook: HookClaim, leaseMs: number): Promise<boolean> {
    return renewHook(this.#conn, workerId, hook, leaseMs);
  }

  finishHook(workerId: string, hook: HookClaim): Promise<void> {
    return finishHook(this.#conn, workerId, hook);
  }

  taskOutputs(runId: string, tasks: readonly string[]): Promise<UpstreamRow[]> {
    return taskOutputs(this.#conn, runId, tasks);
  }

  queueHealth(): Promise<QueueHealth[]> {
    return queueHealth(this.#conn);
  }

  registerWorker(info: WorkerInfo): Promise<void> {
    return registerWorker(this.#conn, info);
  }

  unregisterWorker(workerId: string): Promise<void> {
    return unregisterWorker(this.#conn, workerId);
  }

  listen(onWake: (queue: string | null) => void): Promise<() => Promise<void>> {
    return listen(this.#conn, onWake);
  }

  close(): Promise<void> {
    return this.#conn.close();
  }
}
