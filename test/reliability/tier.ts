/**
 * The reliability suite's two tiers: the default run uses reduced counts (the whole directory in
 * seconds), `WEFT_CHAOS=full` (npm run test:chaos) the full ones. Randomised tests draw from a
 * seeded PRNG and print the seed; `WEFT_SEED=<seed>` replays a failure exactly.
 */

export const isFullTier = process.env.WEFT_CHAOS === 'full';

/** `ci` in the default suite, `full` under WEFT_CHAOS=full. */
export function count(ci: number, full: number): number {
  return isFullTier ? full : ci;
}

export interface Rng {
  readonly seed: number;
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  pick<T>(items: readonly T[]): T;
}

/**
 * A mulberry32 generator seeded from WEFT_SEED or the clock. The seed is printed (with the test's
 * label) so that a failing run can be replayed.
 */
export function seededRng(label: string): Rng {
  const fromEnv = process.env.WEFT_SEED;
  const seed =
    fromEnv !== undefined && fromEnv !== ''
      ? Number(fromEnv) >>> 0
      : (Date.now() ^ (Math.random() * 0x1_0000_0000)) >>> 0;
  console.log(`[reliability] ${label}: seed ${seed} (replay with WEFT_SEED=${seed})`);
  let state = seed;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  };
  return {
    seed,
    next,
    int: (n) => Math.floor(next() * n),
    pick: (items) => items[Math.floor(next() * items.length)]!,
  };
}
