import type { Plan } from '../compile/plan.js';
import type { LogWriter } from '../engine/log-writer.js';
import type { ClaimedTask, TaskCompletion, TaskQueue } from './queue-port.js';
import type { UpstreamCache } from './upstream-cache.js';
import type { WorkerEvent } from './worker-events.js';

/** Results recorded per transaction at most. */
const COMPLETE_BATCH = 500;

export interface CompletionBatcherContext {
  workerId: string;
  queue: TaskQueue;
  queues: readonly string[];
  leaseMs: number;
  concurrency: number;
  logs: LogWriter;
  upstream: UpstreamCache;
  emit: (event: WorkerEvent) => void;
  error: (error: unknown, what: string) => void;
  isStopping: () => boolean;
  /** Tasks held now (the slots the results free are claimed again with them). */
  running: () => number;
  /** Starts a task claimed with a batch of results. */
  start: (claim: ClaimedTask) => void;
}

/**
 * Records task results in batches — one transaction for all results that are ready together —
 * and claims, in that transaction, the tasks that fill the slots they free.
 */
export class CompletionBatcher {
  readonly #c: CompletionBatcherContext;
  #pending: {
    completion: TaskCompletion;
    claim: ClaimedTask;
    plan: Plan | undefined;
    resolve: (ok: boolean) => void;
    reject: (e: unknown) => void;
  }[] = [];
  #draining: Promise<void> | undefined;
  /** The last claims found more ready tasks than there were free slots. */
  #plenty = false;

  constructor(context: CompletionBatcherContext) {
    this.#c = context;
  }

  /** Settles once the results handed in so far are recorded (or failed to be). */
  idle(): Promise<void> | undefined {
    return this.#draining;
  }

  /** Records a result (batched with others); resolves to whether it was recorded. */
  async report(claim: ClaimedTask, completion: TaskCompletion, plan?: Plan): Promise<boolean> {
    // An attempt's lines are stored before anyone can see it end.
    await this.#c.logs.flush();
    const recorded = await new Promise<boolean>((resolve, reject) => {
      this.#pending.push({ completion, claim, plan, resolve, reject });
      // Results that arrive while a batch commits wait for the next one: group commit.
      this.#draining ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.#drain());
    });
    this.#c.emit({
      type: 'task:finished',
      worker: this.#c.workerId,
      runId: claim.runId,
      task: claim.task,
      attempt: claim.attempt,
      kind: completion.kind,
      recorded,
    });
    if (!recorded) {
      this.#c.emit({
        type: 'lease:lost',
        worker: this.#c.workerId,
        runId: claim.runId,
        task: claim.task,
        attempt: claim.attempt,
      });
    }
    return recorded;
  }

  async #drain(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending.splice(0, COMPLETE_BATCH);
        try {
          // The slots these results free, filled in the same transaction: what they made ready
          // is taken here at once, without a notification's round trip (or anyone else woken).
          let limit = this.#c.isStopping()
            ? 0
            : Math.max(0, this.#c.concurrency - this.#c.running() + batch.length);
          // While the queue has plenty ready, claim in a transaction of its own first: the
          // result transaction holds its run's lock, and should hold it no longer than needed.
          const early =
            limit > 0 && this.#plenty
              ? await this.#c.queue
                  .claim(this.#c.workerId, this.#c.queues, limit, this.#c.leaseMs)
                  .catch(() => [])
              : [];
          limit -= early.length;
          for (const claim of early) this.#c.start(claim);
          const { recorded, claimed } = await this.#withRetry(() =>
            this.#c.queue.complete(
              this.#c.workerId,
              batch.map((b) => b.completion),
              { queues: this.#c.queues, limit, leaseMs: this.#c.leaseMs },
            ),
          );
          batch.forEach((b, i) => {
            const ok = recorded[i] ?? false;
            // Known before the tasks just claimed look for their upstream outputs.
            if (ok && b.plan && b.completion.kind === 'succeeded') {
              this.#c.upstream.remember(
                b.claim.runId,
                b.claim.runAttempt,
                b.plan,
                b.claim.task,
                b.completion.output,
              );
            }
            b.resolve(ok);
          });
          for (const claim of claimed) this.#c.start(claim);
          this.#plenty = early.length > 0 || (limit > 0 && claimed.length === limit);
        } catch (error) {
          // Not recorded: the leases expire and the reaper hands the tasks out again.
          for (const b of batch) b.reject(error);
        }
      }
    } finally {
      this.#draining = undefined;
    }
  }

  async #withRetry<T>(work: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await work();
      } catch (error) {
        if (attempt >= 3 || this.#c.isStopping()) throw error;
        this.#c.error(error, 'recording results (trying again)');
        await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
      }
    }
  }
}
