import type { Plan } from '../../src/compile/plan.js';
import { systemClock, type Clock } from '../../src/core/clock.js';
import type { JsonObject, JsonValue } from '../../src/core/json.js';
import type { TaskState } from '../../src/core/states.js';
import { createRun } from '../../src/engine/create-run.js';
import type { EngineEvent, EngineEventMap, EngineEventType } from '../../src/engine/events.js';
import { executeRun } from '../../src/engine/execute-run.js';
import type { EngineOptions } from '../../src/engine/options.js';
import { NonRetryableError } from '../../src/errors.js';
import { HandlerRegistry } from '../../src/handlers/registry.js';
import type { AnyHandler, HandlerContext } from '../../src/handlers/types.js';
import { createMemoryStore } from '../../src/store/memory/memory-store.js';
import type { AttemptRecord, RunRecord, RunStore, TaskRunRecord } from '../../src/store/run-store.js';

/**
 * Engine tests in a few lines: a memory store, a registry of small test handlers, every event
 * recorded, and how often each task's handler ran.
 *
 * Handlers: ok (returns { task }), boom (throws), fatal (NonRetryableError), echo (returns its
 * arguments), flaky (fails the first `with.times` attempts), sleep (waits `with.ms` of real time,
 * honouring its signal), hang (never returns and ignores its signal), gate (waits until the test
 * opens the gate named `with.gate`).
 */

export interface HarnessOptions {
  clock?: Clock;
  handlers?: AnyHandler[];
  env?: Record<string, string | undefined>;
  owner?: string;
}

/** Engine options to override (a wrapped store, a signal, …), plus the run's params and id. */
export type RunOptions = Partial<EngineOptions> & {
  params?: JsonObject;
  id?: string;
};

export interface RunOutcome {
  run: RunRecord;
  tasks: Record<string, TaskRunRecord>;
  states: Record<string, TaskState>;
  attempts: AttemptRecord[];
}

interface Gate {
  promise: Promise<void>;
  open: () => void;
}

export class EngineHarness {
  readonly store: RunStore = createMemoryStore();
  readonly registry = new HandlerRegistry();
  readonly clock: Clock;
  readonly events: EngineEvent[] = [];
  /** Handler calls per task name. */
  readonly calls = new Map<string, number>();
  /** Contexts the handlers were called with, per task (last call). */
  readonly contexts = new Map<string, HandlerContext>();
  /** Arguments the handlers were called with, per task (last call). */
  readonly args = new Map<string, unknown>();
  readonly env: Record<string, string | undefined>;
  readonly owner: string;
  #concurrent = 0;
  maxConcurrent = 0;
  readonly #gates = new Map<string, Gate>();
  #now = Date.parse('2030-01-01T00:00:00.000Z');

  constructor(options: HarnessOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.env = options.env ?? {};
    this.owner = options.owner ?? 'test-host:1';
    for (const handler of this.#builtins()) this.registry.register(handler);
    for (const handler of options.handlers ?? []) this.registry.register(handler);
  }

  /** Wraps a handler body so that calls, arguments, context and concurrency are recorded. */
  track(name: string, body: (args: unknown, ctx: HandlerContext) => unknown): AnyHandler {
    return {
      name,
      run: async (args: unknown, ctx: HandlerContext) => {
        this.calls.set(ctx.task, (this.calls.get(ctx.task) ?? 0) + 1);
        this.contexts.set(ctx.task, ctx);
        this.args.set(ctx.task, args);
        this.#concurrent += 1;
        this.maxConcurrent = Math.max(this.maxConcurrent, this.#concurrent);
        try {
          return (await body(args, ctx)) as JsonValue | void;
        } finally {
          this.#concurrent -= 1;
        }
      },
    };
  }

  #builtins(): AnyHandler[] {
    const arg = (args: unknown, key: string): unknown => (args as Record<string, unknown> | undefined)?.[key];
    return [
      this.track('ok', (_args, ctx) => ({ task: ctx.task })),
      this.track('boom', (_args, ctx) => {
        throw new Error(`boom in ${ctx.task}`);
      }),
      this.track('fatal', () => {
        throw new NonRetryableError('fatal: bad input');
      }),
      this.track('echo', (args) => args as JsonValue),
      this.track('flaky', (args, ctx) => {
        if (ctx.attempt <= Number(arg(args, 'times') ?? 1)) throw new Error(`flaky attempt ${ctx.attempt}`);
        return { attempt: ctx.attempt };
      }),
      this.track(
        'sleep',
        (args, ctx) =>
          new Promise((resolve, reject) => {
            const timer = setTimeout(
              () => resolve({ slept: arg(args, 'ms') }),
              Number(arg(args, 'ms') ?? 10),
            );
            ctx.signal.addEventListener('abort', () => {
              clearTimeout(timer);
              reject(ctx.signal.reason as Error);
            });
          }),
      ),
      this.track('hang', () => new Promise(() => undefined)),
      this.track('gate', (args) => this.gate(String(arg(args, 'gate'))).promise),
    ];
  }

  /** A named gate a `gate` task waits on until `open(name)`. */
  gate(name: string): Gate {
    let gate = this.#gates.get(name);
    if (!gate) {
      let open!: () => void;
      const promise = new Promise<void>((resolve) => {
        open = resolve;
      });
      gate = { promise, open };
      this.#gates.set(name, gate);
    }
    return gate;
  }

  open(name: string): void {
    this.gate(name).open();
  }

  register(handler: AnyHandler): this {
    this.registry.register(handler);
    return this;
  }

  /** Creates a queued run of `plan`; each call gets a later creation time. */
  async create(plan: Plan, options: { params?: JsonObject; id?: string } = {}): Promise<RunRecord> {
    this.#now += 1000;
    return createRun(this.store, {
      plan,
      params: options.params ?? {},
      trigger: 'manual',
      now: this.#now,
      ...(options.id ? { id: options.id } : {}),
    });
  }

  engineOptions(options: RunOptions = {}): EngineOptions {
    const { params: _params, id: _id, ...rest } = options;
    return {
      store: this.store,
      registry: this.registry,
      clock: this.clock,
      owner: this.owner,
      env: this.env,
      random: () => 0.5,
      cancelGraceMs: 200,
      heartbeatMs: 60_000,
      cancelPollMs: 20,
      onEvent: (event) => this.events.push(event),
      ...rest,
    };
  }

  execute(runId: string, options: RunOptions = {}): Promise<RunRecord> {
    return executeRun(runId, this.engineOptions(options));
  }

  /** Creates and executes a run, then reads back everything a test asserts on. */
  async run(plan: Plan, options: RunOptions = {}): Promise<RunOutcome> {
    const created = await this.create(plan, options);
    await this.execute(created.id, options);
    return this.outcome(created.id);
  }

  async outcome(runId: string): Promise<RunOutcome> {
    const run = (await this.store.getRun(runId))!;
    const list = await this.store.getTaskRuns(runId);
    const tasks: Record<string, TaskRunRecord> = {};
    const states: Record<string, TaskState> = {};
    for (const t of list) {
      tasks[t.task] = t;
      states[t.task] = t.state;
    }
    return { run, tasks, states, attempts: await this.store.getAttempts(runId) };
  }

  /** Events of one type, typed. */
  eventsOf<T extends EngineEventType>(type: T): EngineEventMap[T][] {
    return this.events.filter((e): e is EngineEventMap[T] => e.type === type);
  }

  /** Resolves when an event matching `predicate` has been emitted (polls; no sleeping on time). */
  async waitFor(predicate: (event: EngineEvent) => boolean, timeoutMs = 5000): Promise<EngineEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find(predicate);
      if (found) return found;
      if (Date.now() > deadline) throw new Error('waitFor: no matching engine event');
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}
