import { afterEach, describe, expect, it, vi } from 'vitest';
import { createScaledClock, parseTestClock } from '../../src/core/clock.js';

const SIM = Date.parse('2025-01-01T00:00:00Z');
const REAL = Date.parse('2026-06-01T12:00:00Z');

afterEach(() => {
  vi.useRealTimers();
});

describe('createScaledClock', () => {
  it('runs `speed` times faster than real time from its anchor, and stands still before it', () => {
    let real = REAL - 5_000;
    const clock = createScaledClock({ simAnchor: SIM, realAnchor: REAL, speed: 720, realNow: () => real });
    expect(clock.now()).toBe(SIM);
    real = REAL;
    expect(clock.now()).toBe(SIM);
    real = REAL + 5_000;
    expect(clock.now()).toBe(SIM + 3_600_000);
  });

  it('gives processes with the same anchors one timeline, and one anchored an hour earlier a rewound one', () => {
    let real = REAL + 10_000;
    const realNow = () => real;
    const a = createScaledClock({ simAnchor: SIM, realAnchor: REAL, speed: 60, realNow });
    const b = createScaledClock({ simAnchor: SIM, realAnchor: REAL, speed: 60, realNow });
    const rewound = createScaledClock({ simAnchor: SIM - 3_600_000, realAnchor: REAL, speed: 60, realNow });
    expect(a.now()).toBe(SIM + 600_000);
    expect(b.now()).toBe(a.now());
    expect(a.now() - rewound.now()).toBe(3_600_000);
    real += 1_000;
    expect(b.now()).toBe(SIM + 660_000);
  });

  it('sleeps simulated time: ms / speed of real time, and wakes with the clock at the target', async () => {
    vi.useFakeTimers({ now: REAL });
    const clock = createScaledClock({ simAnchor: SIM, realAnchor: REAL, speed: 600 });
    let woke: number | null = null;
    void clock.sleep(300_000).then(() => (woke = clock.now()));
    await vi.advanceTimersByTimeAsync(499);
    expect(woke).toBeNull();
    await vi.advanceTimersByTimeAsync(1);
    expect(woke).toBe(SIM + 300_000);
  });

  it('counts a sleep started while the clock stands still from the anchor', async () => {
    vi.useFakeTimers({ now: REAL - 2_000 });
    const clock = createScaledClock({ simAnchor: SIM, realAnchor: REAL, speed: 60 });
    let woke: number | null = null;
    void clock.sleep(60_000).then(() => (woke = clock.now()));
    await vi.advanceTimersByTimeAsync(2_999);
    expect(woke).toBeNull();
    await vi.advanceTimersByTimeAsync(1);
    expect(woke).toBe(SIM + 60_000);
  });

  it('rejects a sleep when its signal aborts', async () => {
    const clock = createScaledClock({ simAnchor: SIM, realAnchor: Date.now(), speed: 1 });
    const controller = new AbortController();
    const sleeping = clock.sleep(60_000, controller.signal);
    controller.abort(new Error('stop'));
    await expect(sleeping).rejects.toThrow('stop');
  });
});

describe('parseTestClock (WEFT_TEST_CLOCK)', () => {
  it('reads <simulated ISO time>@<real epoch ms>x<speed>', () => {
    expect(parseTestClock(`2025-01-01T00:00:00Z@${REAL}x720`)).toEqual({
      options: { simAnchor: SIM, realAnchor: REAL, speed: 720 },
    });
    expect(parseTestClock(`2025-01-01T01:00:00.000+01:00@${REAL}x0.5`)).toEqual({
      options: { simAnchor: SIM, realAnchor: REAL, speed: 0.5 },
    });
  });

  it.each([
    ['', /expected <simulated ISO time>@<real epoch ms>x<speed>/],
    ['2025-01-01T00:00:00Z', /expected/],
    [`2025-01-01T00:00:00Z@${REAL}`, /expected/],
    [`2025-01-01T00:00:00Z@soonx720`, /expected/],
    [`2025-01-01T00:00:00@${REAL}x720`, /not an ISO time with a zone/],
    [`yesterday@${REAL}x720`, /not an ISO time with a zone/],
    [`2025-13-45T00:00:00Z@${REAL}x720`, /not an ISO time with a zone/],
    [`2025-01-01T00:00:00Z@${REAL}x0`, /speed must be above 0/],
  ])('refuses %j', (value, problem) => {
    const parsed = parseTestClock(value);
    expect('problem' in parsed && parsed.problem).toMatch(problem);
  });
});
