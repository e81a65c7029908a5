import type { Plan, PlanSchedule } from '../../src/compile/plan.js';
import { flushMicrotasks, ManualClock } from '../../src/core/clock.js';
import type { HandlerRegistry } from '../../src/handlers/registry.js';
import type { AnyHandler } from '../../src/handlers/types.js';
import type { SchedulerEvent } from '../../src/schedule/events.js';
import { createStaticPipelineSource, type PipelineSource } from '../../src/schedule/pipeline-source.js';
import { createScheduler, type Scheduler, type SchedulerOptions } from '../../src/schedule/scheduler.js';
import { createMemoryStore } from '../../src/store/memory/memory-store.js';
import type { RunRecord, RunStore } from '../../src/store/run-store.js';
import { EngineHarness } from '../support/engine-harness.js';
import { plan, type PlanDef } from '../support/plan-builder.js';

/** A plan with a schedule (defaults as the compiler applies them). */
export function scheduled(
  def: PlanDef,
  schedule: Partial<Omit<PlanSchedule, 'position'>> & { cron: string },
): Plan {
  return {
    ...plan(def),
    schedule: {
      timezone: 'UTC',
      overlap: 'skip',
      catchup: 'none',
      catchupLimit: 100,
      startDeadlineMs: null,
      position: { file: 'test.yaml', line: 1, column: 1 },
      ...schedule,
    },
  };
}

/** A handler whose calls each wait until the test releases them, one by one, in call order. */
export function createBlocker(name = 'block') {
  const waiting: (() => void)[] = [];
  let calls = 0;
  const handler: AnyHandler = {
    name,
    run: (_args, ctx) =>
      new Promise<void>((resolve, reject) => {
        calls += 1;
        waiting.push(resolve);
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true });
      }),
  };
  return {
    handler,
    get calls() {
      return calls;
    },
    get waiting() {
      return waiting.length;
    },
    releaseOne() {
      const next = waiting.shift();
      if (!next) throw new Error('blocker: nothing is waiting');
      next();
    },
  };
}

export interface SchedulerFixture {
  clock: ManualClock;
  store: RunStore;
  registry: HandlerRegistry;
  source: ReturnType<typeof createStaticPipelineSource>;
  scheduler: Scheduler;
  events: { event: SchedulerEvent; at: number }[];
  eventsOf<T extends SchedulerEvent['type']>(type: T): Extract<SchedulerEvent, { type: T }>[];
  /** Moves the clock forward `ms` in steps, letting the scheduler finish its work after each. */
  advance(ms: number, stepMs?: number): Promise<void>;
  runs(): Promise<RunRecord[]>;
}

export interface FixtureOptions extends Partial<Omit<SchedulerOptions, 'pipelines' | 'clock'>> {
  plans?: Plan[];
  pipelines?: PipelineSource;
  clock?: ManualClock;
  start: number | Date;
  handlers?: AnyHandler[];
}

export function createFixture(options: FixtureOptions): SchedulerFixture {
  const clock = options.clock ?? new ManualClock(options.start);
  const harness = new EngineHarness({ clock, handlers: options.handlers ?? [] });
  const store = options.store ?? createMemoryStore();
  const source = createStaticPipelineSource(options.plans ?? []);
  const events: { event: SchedulerEvent; at: number }[] = [];
  const scheduler = createScheduler({
    owner: 'test-host:1',
    isOwnerAlive: () => true,
    pollMs: 20,
    engine: { cancelGraceMs: 50, heartbeatMs: 60_000, cancelPollMs: 20 },
    ...options,
    store,
    registry: options.registry ?? harness.registry,
    clock,
    pipelines: options.pipelines ?? source,
    onLog: (event, at) => {
      events.push({ event, at });
      options.onLog?.(event, at);
    },
  });
  return {
    clock,
    store,
    registry: options.registry ?? harness.registry,
    source,
    scheduler,
    events,
    eventsOf: <T extends SchedulerEvent['type']>(type: T) =>
      events.map((e) => e.event).filter((e): e is Extract<SchedulerEvent, { type: T }> => e.type === type),
    async advance(ms, stepMs = 60_000) {
      let left = ms;
      while (left > 0) {
        const step = Math.min(stepMs, left);
        await clock.advance(step);
        await scheduler.whenIdle();
        left -= step;
      }
    },
    runs: () => store.listRuns({ limit: 100_000 }),
  };
}

/** Polls until `check` returns true (real time); for work that runs while a handler is blocked. */
export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error('waitUntil: condition not met in time');
    await flushMicrotasks(2);
  }
}

export const MINUTE = 60_000;
export const HOUR = 3_600_000;
