/**
 * "Did you mean …?" for misspelled keys, task names and handler names.
 *
 * Distance is the optimal-string-alignment form of Damerau–Levenshtein (a swap of two neighbours
 * costs 1), computed on a normalised form where case and `-`/`_` do not count, so `Depends-On`
 * finds `depends_on`. A candidate is close enough when at most a third of the longer word differs,
 * or when both start alike (a shared start of 3+ characters covering most of the shorter word):
 * `retry` → `retries`, `desc` → `description`. The closest candidate wins.
 */
export function suggest(word: string, candidates: Iterable<string>): string | undefined {
  const wanted = normalise(word);
  if (wanted === '') return undefined;
  let best: string | undefined;
  let bestScore = Infinity;
  for (const candidate of candidates) {
    if (candidate === word) continue;
    const other = normalise(candidate);
    const score = editDistance(wanted, other);
    if (score > threshold(wanted, other) && !startAlike(wanted, other)) continue;
    // Ties go to the candidate closest in length, then to the first seen (callers pass a stable order).
    const tieBreak = Math.abs(other.length - wanted.length) / 100;
    if (score + tieBreak < bestScore) {
      bestScore = score + tieBreak;
      best = candidate;
    }
  }
  return best;
}

/** Up to a third of the longer word may be wrong, at least one character. */
function threshold(a: string, b: string): number {
  return Math.max(1, Math.floor(Math.max(a.length, b.length) / 3));
}

function startAlike(a: string, b: string): boolean {
  const shorter = Math.min(a.length, b.length);
  let common = 0;
  while (common < shorter && a[common] === b[common]) common += 1;
  return common >= 3 && common >= Math.ceil(shorter * 0.6);
}

function normalise(word: string): string {
  return word.toLowerCase().replaceAll('-', '_');
}

/** Optimal string alignment distance, in O(|a|·|b|) time and O(|b|) memory (three rows). */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  let beforePrevious = new Array<number>(b.length + 1).fill(0);
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  let current = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    current[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let value = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        value = Math.min(value, beforePrevious[j - 2]! + 1);
      }
      current[j] = value;
    }
    [beforePrevious, previous, current] = [previous, current, beforePrevious];
  }
  return previous[b.length]!;
}
