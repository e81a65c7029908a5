/**
 * Durations as users write them: "250ms", "60s", "5m", "1h30m", "2d", or a number of seconds.
 * Returns milliseconds, or null when the text is not a duration.
 */
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;

export function parseDuration(value: string | number): number | null {
  if (typeof value === 'number') {
    return Number.isFinite(value) && value >= 0 ? Math.round(value * 1000) : null;
  }
  const text = value.trim();
  if (text === '') return null;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < text.length) {
    const start = PART.lastIndex;
    const match = PART.exec(text);
    if (!match || match.index !== start) return null;
    total += Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
  }
  return Math.round(total);
}

/** Formats milliseconds the way users write them ("1h30m", "250ms", "0s"). */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const parts: string[] = [];
  let rest = Math.round(ms);
  for (const [unit, size] of [
    ['d', UNIT_MS.d],
    ['h', UNIT_MS.h],
    ['m', UNIT_MS.m],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  if (rest > 0) {
    const seconds = rest / 1000;
    parts.push(`${Number.isInteger(seconds) ? seconds : seconds.toFixed(1)}s`);
  }
  return parts.join('');
}

/**
 * The shortest history a prune may cut to (`weft prune`, `--retain`, `serve.retain`): a slip of
 * the finger (5m for 5d) must not wipe the runs that just ended, and a scheduler cut off from the
 * store for less than a day still finds every tick the others took recorded when it comes back.
 */
export const MIN_RETENTION_MS = 24 * 3_600_000;
