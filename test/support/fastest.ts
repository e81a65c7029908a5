/**
 * `work()`'s result and its fastest time of `tries`, in ms. Tests that bound how long something
 * takes check its own cost this way, not a pause of a busy machine (GC, another process on the
 * core) that happened to fall inside one try. Speed itself is measured by the benchmarks.
 */
export function fastestOf<T>(tries: number, work: () => T): { value: T; ms: number } {
  let best = Infinity;
  let value!: T;
  for (let i = 0; i < tries; i++) {
    const started = performance.now();
    value = work();
    best = Math.min(best, performance.now() - started);
  }
  return { value, ms: best };
}
