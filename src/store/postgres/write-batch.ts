import { createHash } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type pg from 'pg';
import { failpoint } from '../../core/failpoint.js';

/**
 * Group commit for the PostgreSQL store.
 *
 * Writes are queued; every write queued before the next turn of the event loop (and every write
 * queued while the previous batch was committing) is sent in ONE transaction on one client, and
 * each promise settles with its own result only after COMMIT. Inside the transaction, writes of the
 * same kind and shape become one multi-row data-modifying CTE (`… FROM unnest($1::text[], …)`), and
 * the groups of one step share one `WITH … SELECT` statement; a batch that is one such statement is
 * sent alone, as its own transaction. A batch of 500 small writes thus costs one to a few round
 * trips and one WAL flush instead of 500 of each.
 *
 * Turning a sequence of writes into a few statements must not change what they do, so a batch is
 * cut into steps (see planSteps): two writes to the same row never share a step, log lines keep
 * their order, and creating a run is a step of its own. Writes within a step touch different rows,
 * so the order they run in cannot be seen; steps run in order.
 *
 * IMPORTANT: a promise resolves only after the transaction holding its write has committed, and
 * batches run one at a time, in order, so writes are never reordered. When a transaction fails,
 * none of its writes is acknowledged: a deadlock or serialization failure is retried; a failure
 * caused by one bad value (SQLSTATE classes 22 and 23) re-runs the batch one write per transaction,
 * so only the write at fault is rejected; anything else (connection lost) rejects the whole batch.
 */

export type Outcome = { ok: true; value: unknown } | { ok: false; error: Error };

/** Runs the writes of one group in the current transaction; one outcome per payload, in order. */
export type GroupExecutor = (client: pg.PoolClient, payloads: readonly unknown[]) => Promise<Outcome[]>;

/**
 * The writes of one group, as common table expressions that can share ONE statement with the
 * other groups of their step: writes of one step touch different rows, so running them as
 * data-modifying CTEs of one statement (which all see the same snapshot) changes nothing, and
 * saves a round trip per group. Each part reports back rows (g, ord, a, b) that `finish` reads.
 */
export interface StatementPart {
  ctes: string[];
  /** A SELECT of `(g, ord, a, b)` rows: g the group's number, the rest its own. */
  select: string;
  values: unknown[];
  finish: (rows: readonly PartRow[]) => Outcome[];
}

export interface PartRow {
  g: number;
  ord: number;
  a: boolean | null;
  b: boolean | null;
}

/**
 * Builds a group's part: its parameters numbered after `base`, its CTE names prefixed with `p`,
 * its result rows tagged with `g`.
 */
export type PartBuilder = (payloads: readonly unknown[], base: number, p: string, g: number) => StatementPart;

/** Runs parts as one statement (WITH … SELECT … UNION ALL …) and returns each part's outcomes. */
export async function runParts(
  client: pg.PoolClient,
  builders: readonly { build: PartBuilder; payloads: readonly unknown[] }[],
): Promise<Outcome[][]> {
  const parts: StatementPart[] = [];
  const values: unknown[] = [];
  builders.forEach(({ build, payloads }, g) => {
    const part = build(payloads, values.length, `g${g}_`, g);
    parts.push(part);
    values.push(...part.values);
  });
  const sql = `WITH ${parts.flatMap((part) => part.ctes).join(',\n')}\n${parts
    .map((part) => part.select)
    .join('\nUNION ALL\n')}`;
  const result = await client.query<PartRow>(prepared(sql, values));
  const byGroup = parts.map((): PartRow[] => []);
  for (const row of result.rows) byGroup[row.g]!.push(row);
  return parts.map((part, g) => part.finish(byGroup[g]!));
}

const statementNames = new Map<string, string>();

/**
 * A named (prepared) query: each connection parses and plans a statement once, then only binds
 * values. The name is derived from the text, so the same text always has the same name.
 */
export function prepared(text: string, values: readonly unknown[]): pg.QueryConfig {
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `weft_${createHash('sha1').update(text).digest('hex').slice(0, 24)}`;
    statementNames.set(text, name);
  }
  return { name, text, values: values as unknown[] };
}

export interface BatchWrite {
  /** Writes with the same group (same statement shape) that land in one step run as one statement. */
  group: string;
  /** How its group runs: as a part of its step's one statement, or with statements of its own. */
  run: { part: PartBuilder } | { execute: GroupExecutor };
  payload: unknown;
  /** Rows it changes, e.g. "task_runs\0<run>\0<task>": writes sharing a key run in issue order. */
  keys: readonly string[];
  /** Log lines: kept in issue order among themselves (their seq says so), and take the log lock. */
  sequenced?: boolean;
  /** Runs in a step of its own, after every write before it and before every write after it. */
  barrier?: boolean;
  /**
   * A failpoint hit once this write has run, ok, and before its transaction's COMMIT (failpoint.ts).
   * Its batch always runs as BEGIN … COMMIT, never as a single statement, so the window exists.
   */
  beforeCommit?: string;
}

export interface WriteQueueOptions {
  /** Turns what made a whole batch fail into the error each of its writes sees. */
  mapBatchError: (error: unknown) => Error;
  /**
   * The statement that takes the log lock, run first in a transaction that appends log lines.
   * IMPORTANT: log lines of concurrent transactions must commit in seq order, or a follower asking
   * for "after seq N" could miss a line committed late with a lower seq. Taken before any row lock,
   * it cannot take part in a deadlock.
   */
  logLockSql: string;
}

interface Queued {
  write: BatchWrite;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

interface Deferred {
  promise: Promise<Error | null>;
  resolve: (error: Error | null) => void;
}

function deferred(): Deferred {
  let resolve!: (error: Error | null) => void;
  const promise = new Promise<Error | null>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const MAX_RETRIES = 3;

/** SQLSTATEs after which running the same transaction again is the documented remedy. */
function isTransient(error: unknown): boolean {
  const code = sqlState(error);
  return code === '40001' || code === '40P01';
}

/** Data exceptions (22xxx) and integrity violations (23xxx): one write's values are at fault. */
function isDataError(error: unknown): boolean {
  const code = sqlState(error);
  return code !== undefined && (code.startsWith('22') || code.startsWith('23'));
}

export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * Cuts a batch into steps of groups. A write goes to the earliest step after every earlier write
 * sharing one of its keys (so same-row writes keep their order), not before the step of the
 * previous sequenced write (log lines keep their order) and after the last barrier; a barrier gets
 * a step of its own after everything before it. Within a step, writes of one group are merged.
 */
export function planSteps<T extends { write: BatchWrite }>(items: readonly T[]): T[][][] {
  const steps: Map<string, T[]>[] = [];
  const lastStep = new Map<string, number>();
  let sequencedStep = 0;
  let floor = 0;
  for (const item of items) {
    const { write } = item;
    let step: number;
    if (write.barrier) {
      step = steps.length;
      floor = step + 1;
    } else {
      step = floor;
      for (const key of write.keys) {
        const last = lastStep.get(key);
        if (last !== undefined && last + 1 > step) step = last + 1;
      }
      if (write.sequenced) {
        if (sequencedStep > step) step = sequencedStep;
        sequencedStep = step;
      }
    }
    for (const key of write.keys) lastStep.set(key, step);
    while (steps.length <= step) steps.push(new Map());
    const groups = steps[step]!;
    const groupKey = write.barrier ? `\u0000barrier` : write.group;
    const group = groups.get(groupKey);
    if (group) group.push(item);
    else groups.set(groupKey, [item]);
  }
  return steps.map((groups) => [...groups.values()]).filter((groups) => groups.length > 0);
}

export class PgWriteQueue {
  readonly #pool: pg.Pool;
  readonly #options: WriteQueueOptions;
  #pending: Queued[] = [];
  #running = false;
  /** Settles when the batch that will take the pending writes has finished. */
  #next: Deferred | null = null;
  #inflight: Promise<Error | null> | null = null;
  /** Transactions committed so far (for tests and figures). */
  commits = 0;

  constructor(pool: pg.Pool, options: WriteQueueOptions) {
    this.#pool = pool;
    this.#options = options;
  }

  enqueue(write: BatchWrite): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      this.#pending.push({ write, resolve, reject });
      this.#next ??= deferred();
      if (!this.#running) {
        this.#running = true;
        void this.#loop();
      }
    });
  }

  /**
   * Resolves once every write queued so far has settled, with the error of a batch among them that
   * failed as a whole (its writes were rejected with it), else null.
   */
  async settled(): Promise<Error | null> {
    const waits: Promise<Error | null>[] = [];
    if (this.#inflight) waits.push(this.#inflight);
    if (this.#next) waits.push(this.#next.promise);
    if (waits.length === 0) return null;
    const errors = await Promise.all(waits);
    return errors.find((e) => e !== null) ?? null;
  }

  async #loop(): Promise<void> {
    for (;;) {
      // A turn of the event loop first: writes issued by promise chains resolving together (tasks
      // finishing side by side, or the continuations of the batch just committed) join one batch.
      await nextTurn();
      if (this.#pending.length === 0) {
        this.#running = false;
        return;
      }
      const batch = this.#pending;
      const done = this.#next!;
      this.#pending = [];
      this.#next = null;
      this.#inflight = done.promise;
      let error: Error | null;
      try {
        error = await this.#commit(batch);
      } catch (unexpected) {
        // #commit settles every write itself; this is a bug guard so that no promise hangs.
        error = this.#options.mapBatchError(unexpected);
        for (const item of batch) item.reject(error);
      }
      this.#inflight = null;
      done.resolve(error);
    }
  }

  async #commit(batch: Queued[]): Promise<Error | null> {
    for (let attempt = 0; ; attempt++) {
      try {
        const outcomes = await this.#transaction(batch);
        this.commits += 1;
        batch.forEach((item, i) => {
          const outcome = outcomes[i]!;
          if (outcome.ok) item.resolve(outcome.value);
          else item.reject(outcome.error);
        });
        return null;
      } catch (error) {
        if (isTransient(error) && attempt < MAX_RETRIES) continue;
        if (isDataError(error) && batch.length > 1) {
          // One write's values broke the transaction: find it by committing each write alone.
          let first: Error | null = null;
          for (const item of batch) first ??= await this.#commit([item]);
          return first;
        }
        const mapped = this.#options.mapBatchError(error);
        for (const item of batch) item.reject(mapped);
        // A write refused for its own values is that write's failure, not the batch's.
        return isDataError(error) ? null : mapped;
      }
    }
  }

  async #transaction(batch: readonly Queued[]): Promise<Outcome[]> {
    const index = new Map<Queued, number>();
    batch.forEach((item, i) => index.set(item, i));
    const steps = planSteps(batch);
    const outcomes: Outcome[] = new Array<Outcome>(batch.length);
    const logs = batch.some((item) => item.write.sequenced);
    // One step of parts is one statement: sent alone it is its own transaction (one round trip).
    const single =
      !logs &&
      steps.length === 1 &&
      steps[0]!.every((group) => 'part' in group[0]!.write.run) &&
      !batch.some((item) => item.write.beforeCommit !== undefined);
    const client = await this.#pool.connect();
    let broken = false;
    try {
      if (single) {
        await runStep(client, steps[0]!, index, outcomes);
        return outcomes;
      }
      await client.query(logs ? `BEGIN; ${this.#options.logLockSql}` : 'BEGIN');
      try {
        for (const groups of steps) await runStep(client, groups, index, outcomes);
        batch.forEach((item, i) => {
          if (item.write.beforeCommit !== undefined && outcomes[i]!.ok) failpoint(item.write.beforeCommit);
        });
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
        throw error;
      }
      return outcomes;
    } catch (error) {
      // A connection that failed mid-transaction is not handed out again.
      if (sqlState(error) === undefined) broken = true;
      throw error;
    } finally {
      client.release(broken);
    }
  }
}

/** Runs one step: its parts as one statement, its other groups with statements of their own. */
async function runStep(
  client: pg.PoolClient,
  groups: readonly (readonly Queued[])[],
  index: ReadonlyMap<Queued, number>,
  outcomes: Outcome[],
): Promise<void> {
  const record = (group: readonly Queued[], results: readonly Outcome[]) =>
    group.forEach((item, i) => {
      outcomes[index.get(item)!] = results[i]!;
    });
  const parts: { group: readonly Queued[]; build: PartBuilder; payloads: unknown[] }[] = [];
  for (const group of groups) {
    const { run } = group[0]!.write;
    const payloads = group.map((item) => item.write.payload);
    if ('part' in run) parts.push({ group, build: run.part, payloads });
    else record(group, await run.execute(client, payloads));
  }
  if (parts.length === 0) return;
  const results = await runParts(client, parts);
  parts.forEach((part, i) => record(part.group, results[i]!));
}
