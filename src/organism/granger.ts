/**
 * Granger-style lagged influence, written out plainly: ordinary least squares by projecting y onto
 * the span of the regressors (modified Gram-Schmidt). Projection rather than normal equations means
 * collinear regressors (a constant series next to the intercept) simply add nothing, instead of
 * making a matrix singular.
 */

function dot(a: Float64Array, b: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]! * b[i]!;
  return sum;
}

/** Residual sum of squares of the least-squares fit of y on the given columns. */
export function residualSumOfSquares(y: Float64Array, columns: readonly Float64Array[]): number {
  const basis: Float64Array[] = [];
  for (const column of columns) {
    const v = Float64Array.from(column);
    const originalNorm = Math.sqrt(dot(v, v));
    for (const q of basis) {
      const c = dot(q, v);
      for (let i = 0; i < v.length; i++) v[i]! -= c * q[i]!;
    }
    const norm = Math.sqrt(dot(v, v));
    // A column (almost) inside the span of the previous ones carries no new information.
    if (norm <= 1e-9 * originalNorm || norm === 0) continue;
    for (let i = 0; i < v.length; i++) v[i]! /= norm;
    basis.push(v);
  }
  const r = Float64Array.from(y);
  for (const q of basis) {
    const c = dot(q, r);
    for (let i = 0; i < r.length; i++) r[i]! -= c * q[i]!;
  }
  return dot(r, r);
}

export interface GrangerResult {
  /** (RSS_restricted - RSS_full) / RSS_restricted, in [0, 1]. */
  score: number;
  /** Observations used: window days minus the lag. */
  days: number;
  rssRestricted: number;
  rssFull: number;
}

/** `series[t - k]` aligned with y_t for t = lag … n-1. */
function lagged(series: Float64Array, lag: number, k: number): Float64Array {
  const n = series.length - lag;
  const out = new Float64Array(n);
  for (let t = 0; t < n; t++) out[t] = series[t + lag - k]!;
  return out;
}

/**
 * Does x's past improve the prediction of y beyond y's own past?
 *   restricted: y_t ~ 1 + y_{t-1} + … + y_{t-lag}
 *   full:       y_t ~ 1 + y_{t-1..t-lag} + x_{t-1..t-lag}
 * Returns null when there are too few observations for the full model (n ≤ 2·lag + 1) or when y is
 * already perfectly explained by its own past (RSS_restricted ≈ 0: there is nothing left to explain).
 */
export function grangerInfluence(x: Float64Array, y: Float64Array, lag = 1): GrangerResult | null {
  if (x.length !== y.length) throw new RangeError('grangerInfluence: series of different lengths');
  const n = y.length - lag;
  if (lag < 1 || n <= 2 * lag + 1) return null;
  const target = lagged(y, lag, 0);
  const ones = new Float64Array(n).fill(1);
  const restricted: Float64Array[] = [ones];
  for (let k = 1; k <= lag; k++) restricted.push(lagged(y, lag, k));
  const full = [...restricted];
  for (let k = 1; k <= lag; k++) full.push(lagged(x, lag, k));
  const rssRestricted = residualSumOfSquares(target, restricted);
  if (rssRestricted <= 1e-12 * (1 + dot(target, target))) return null;
  const rssFull = Math.min(rssRestricted, residualSumOfSquares(target, full));
  const score = Math.min(1, Math.max(0, (rssRestricted - rssFull) / rssRestricted));
  return { score, days: n, rssRestricted, rssFull };
}
