import { BEFORE_RUN_EXISTS, NAMED_POINTS } from './chaos-pipeline.js';
import type { Rng } from './tier.js';

/**
 * The order of a kill test's runs: `named` kills cycling through NAMED_POINTS from a random one
 * (so each point gets floor or ceil of named / points) and `random` random kills (null), shuffled —
 * except that the first is always BEFORE_RUN_EXISTS: the fresh run that follows it is one no kill
 * interrupts, and its duration times the random kills.
 */
export function chaosPlan(rng: Rng, named: number, random: number): (string | null)[] {
  if (named < NAMED_POINTS.length) throw new Error(`chaosPlan: ${named} named kills miss some points`);
  const offset = rng.int(NAMED_POINTS.length);
  const kills: (string | null)[] = Array.from(
    { length: named },
    (_, i) => NAMED_POINTS[(offset + i) % NAMED_POINTS.length]!,
  );
  kills.splice(kills.indexOf(BEFORE_RUN_EXISTS), 1);
  kills.push(...Array.from({ length: random }, () => null));
  for (let i = kills.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [kills[i], kills[j]] = [kills[j]!, kills[i]!];
  }
  return [BEFORE_RUN_EXISTS, ...kills];
}

/** The median of measured durations (ms); there is always one, the plan's first fresh run. */
export function medianOf(values: readonly number[]): number {
  if (values.length === 0) throw new Error('medianOf: no duration measured yet');
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
