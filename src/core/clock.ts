/**
 * Time as the engine and scheduler see it. Injected everywhere so that tests can run hours of
 * schedule or minutes of retry delay in milliseconds.
 */
export interface Clock {
  now(): number;
  /** Resolves after `ms` of this clock's time, or rejects with the signal's reason when aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** The signal's reason when it is an Error (a cancel or timeout WeftError), else an AbortError. */
function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return new DOMException(
    reason === undefined
      ? 'The operation was aborted'
      : `The operation was aborted: ${typeof reason === 'string' ? reason : JSON.stringify(reason)}`,
    'AbortError',
  );
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) => realSleep(ms, signal),
};

/** Resolves after `ms` of real time (setTimeout), or rejects with the signal's reason when aborted. */
function realSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal!));
    };
    const timer = setTimeout(
      () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      },
      Math.max(0, ms),
    );
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Where a scaled clock's simulated time and real time meet, and how much faster it runs. */
export interface ScaledClockOptions {
  /** The simulated time (epoch ms) the clock shows at `realAnchor`. */
  simAnchor: number;
  /** The real time (epoch ms, Date.now()) at which the clock shows `simAnchor`. */
  realAnchor: number;
  /** Simulated milliseconds per real millisecond (> 0). */
  speed: number;
  /** Real time; default Date.now (tests of the clock itself pass their own). */
  realNow?: () => number;
}

/**
 * Simulated time running `speed` times faster than real time from a shared anchor: processes given
 * the same anchors share one timeline, whatever moment each of them started, so separate `weft
 * serve` processes can live through hours of schedule in seconds and still agree on the time.
 * Before `realAnchor` the clock stands still at `simAnchor`: processes started together for a test
 * are all up before time begins to move, and their first look at the clock is the same instant.
 * For tests only (WEFT_TEST_CLOCK, see parseTestClock).
 */
export function createScaledClock(options: ScaledClockOptions): Clock {
  const { simAnchor, realAnchor, speed } = options;
  const realNow = options.realNow ?? Date.now;
  const now = () => simAnchor + Math.max(0, realNow() - realAnchor) * speed;
  /** The real time at which the clock shows `sim` (the anchor itself while it stands still). */
  const realAt = (sim: number) => realAnchor + Math.max(0, sim - simAnchor) / speed;
  return {
    now,
    async sleep(ms, signal) {
      const target = now() + Math.max(0, ms);
      // Always one real timer, like the system clock, even for sleep(0); and a timer may fire a
      // millisecond early by Date.now(): sleep again until the clock shows the target.
      for (;;) {
        await realSleep(Math.ceil(realAt(target) - realNow()), signal);
        if (now() >= target) return;
      }
    },
  };
}

/** The environment variable that gives `weft serve` a scaled clock (reliability tests). */
export const TEST_CLOCK_ENV = 'WEFT_TEST_CLOCK';

/** WEFT_TEST_CLOCK's form, for messages. */
export const TEST_CLOCK_FORM = '<simulated ISO time>@<real epoch ms>x<speed>';

const TEST_CLOCK_PATTERN = /^([^@]+)@(\d+)x(\d+(?:\.\d+)?)$/;
const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})$/;

/**
 * Reads WEFT_TEST_CLOCK, `<simulated ISO time>@<real epoch ms>x<speed>` (e.g.
 * `2025-01-01T00:00:00Z@1767225600000x720`: the clock shows 2025-01-01T00:00Z at that real moment,
 * stands still before it, and runs 720 times faster than real time after it). Processes started
 * with the same value share one simulated timeline; one started with a simulated time an hour
 * earlier sees the clock set back by an hour. A testing facility like WEFT_FAILPOINT
 * (failpoint.ts): never set in production. Returns the problem instead of throwing, because core
 * imports nothing of ours (the CLI turns it into a UsageError).
 */
export function parseTestClock(value: string): { options: ScaledClockOptions } | { problem: string } {
  const match = TEST_CLOCK_PATTERN.exec(value.trim());
  if (!match) return { problem: `expected ${TEST_CLOCK_FORM}` };
  const [iso, real, speedText] = [match[1]!, match[2]!, match[3]!];
  const simAnchor = ISO_WITH_ZONE.test(iso) ? Date.parse(iso) : Number.NaN;
  if (Number.isNaN(simAnchor))
    return { problem: `"${iso}" is not an ISO time with a zone (such as 2025-01-01T00:00:00Z)` };
  const speed = Number(speedText);
  if (!(speed > 0) || !Number.isFinite(speed))
    return { problem: `the speed must be above 0, got ${speedText}` };
  return { options: { simAnchor, realAnchor: Number(real), speed } };
}

interface Sleeper {
  wakeAt: number;
  resolve: () => void;
}

/**
 * A clock that moves only when told to. `advance` wakes every sleeper whose time has come, in
 * order, letting each one's continuation run before the next wakes.
 */
export class ManualClock implements Clock {
  #now: number;
  #sleepers: Sleeper[] = [];

  constructor(start: number | Date = 0) {
    this.#now = typeof start === 'number' ? start : start.getTime();
  }

  now(): number {
    return this.#now;
  }

  /** Number of sleepers waiting: lets a test wait until the code under test is parked on the clock. */
  get pending(): number {
    return this.#sleepers.length;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(abortError(signal));
      const onAbort = () => {
        this.#sleepers = this.#sleepers.filter((s) => s !== sleeper);
        reject(abortError(signal!));
      };
      // The listener goes when the sleeper wakes: a long-lived signal shared by many sleeps must
      // not collect one listener per sleep.
      const sleeper: Sleeper = {
        wakeAt: this.#now + Math.max(0, ms),
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#sleepers.push(sleeper);
    });
  }

  /** Moves time forward by `ms`, waking sleepers in time order. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (;;) {
      this.#sleepers.sort((a, b) => a.wakeAt - b.wakeAt);
      const next = this.#sleepers[0];
      if (!next || next.wakeAt > target) break;
      this.#sleepers.shift();
      this.#now = Math.max(this.#now, next.wakeAt);
      next.resolve();
      // Let the woken code run (and perhaps sleep again) before time moves on.
      await flushMicrotasks();
    }
    this.#now = target;
  }

  /** Sets the time directly (a clock jump, forwards or backwards) without waking anyone. */
  set(time: number | Date): void {
    this.#now = typeof time === 'number' ? time : time.getTime();
  }
}

export async function flushMicrotasks(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
