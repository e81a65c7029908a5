import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { RetryPolicy } from '../../src/compile/plan.js';
import { hasRetryLeft, retryDelayMs, retryTimeline } from '../../src/engine/retry-delay.js';

const policy = (p: Partial<RetryPolicy>): RetryPolicy => ({
  retries: 3,
  delayMs: 1000,
  backoff: 'fixed',
  maxDelayMs: null,
  jitter: false,
  ...p,
});

describe('retryDelayMs', () => {
  it('waits nothing before the first attempt and the fixed delay before each retry', () => {
    expect(retryTimeline(policy({}))).toEqual([0, 1000, 1000, 1000]);
  });

  it('doubles with exponential backoff up to the cap', () => {
    expect(retryTimeline(policy({ retries: 5, backoff: 'exponential', maxDelayMs: 5000 }))).toEqual([
      0, 1000, 2000, 4000, 5000, 5000,
    ]);
  });

  it('keeps jitter within ±20 % and never below zero', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 10 }),
        fc.double({ min: 0, max: 0.999999, noNaN: true }),
        (n, r) => {
          const p = policy({ retries: 10, backoff: 'exponential', jitter: true, maxDelayMs: 60_000 });
          const base = retryDelayMs({ ...p, jitter: false }, n);
          const jittered = retryDelayMs(p, n, () => r);
          expect(jittered).toBeGreaterThanOrEqual(Math.floor(base * 0.8));
          expect(jittered).toBeLessThanOrEqual(Math.ceil(base * 1.2));
        },
      ),
    );
  });

  it('counts retries after the first attempt', () => {
    const p = policy({ retries: 2 });
    expect([1, 2, 3].map((a) => hasRetryLeft(p, a))).toEqual([true, true, false]);
  });
});
