import type { RetryPolicy } from '../compile/plan.js';

/** Jitter spreads a delay by up to ±20 %, so tasks failing together do not retry in lockstep. */
export const JITTER_SPREAD = 0.2;

/**
 * The delay before attempt `attempt` (from 1) under `policy`: 0 before the first, then
 * `delayMs`, doubled per retry with exponential backoff, capped by `maxDelayMs`, and jittered.
 * Pure: `random` is injected (a number in [0, 1)).
 */
export function retryDelayMs(
  policy: RetryPolicy,
  attempt: number,
  random: () => number = Math.random,
): number {
  if (attempt <= 1) return 0;
  const retry = attempt - 1;
  let delay = policy.backoff === 'exponential' ? policy.delayMs * 2 ** (retry - 1) : policy.delayMs;
  if (policy.maxDelayMs !== null) delay = Math.min(delay, policy.maxDelayMs);
  if (policy.jitter && delay > 0) delay = delay * (1 - JITTER_SPREAD + 2 * JITTER_SPREAD * random());
  return Math.round(delay);
}

/** The delays before every attempt (the first is 0), without jitter: what `weft plan` shows. */
export function retryTimeline(policy: RetryPolicy): number[] {
  const noJitter = { ...policy, jitter: false };
  return Array.from({ length: policy.retries + 1 }, (_, i) => retryDelayMs(noJitter, i + 1));
}

/** Whether another attempt may follow attempt number `attempt` (from 1). */
export function hasRetryLeft(policy: RetryPolicy, attempt: number): boolean {
  return attempt <= policy.retries;
}
