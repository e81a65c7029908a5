import { Cron } from 'croner';
import { formatDuration } from '../core/duration.js';
import {
  createOffsetReader,
  formatClock,
  formatDay,
  zoneAbbreviation,
  type OffsetReader,
} from './zone-time.js';

/**
 * Cron as pure functions over croner: validation, the next fire times in a time zone, and a
 * description in words. Nothing here reads the clock or the process time zone: a schedule's zone
 * is always explicit (UTC unless the pipeline says otherwise).
 *
 * Around daylight-saving changes croner fires each local wall-clock time once: a time in the hour
 * that is skipped in spring is read with the offset before the change (02:30 becomes 03:30), and a
 * time in the hour that repeats in autumn fires at only one of its two instants. Fire times
 * therefore always strictly increase. The rule, in full: docs/scheduling.md.
 */

/** croner's message for an invalid expression, without its class prefix; null when valid. */
export function validateCron(expr: string): string | null {
  let job: Cron;
  try {
    job = new Cron(expr, { paused: true, timezone: 'UTC' });
  } catch (error) {
    return cleanMessage(error);
  }
  // 5 years covers every leap-day pattern; a pattern that matches nothing in that time never will.
  if (job.nextRun(new Date(Date.UTC(2000, 0, 1))) === null) return 'the expression never matches a date';
  return null;
}

function cleanMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/^CronPattern:\s*/, '');
}

export function isValidTimeZone(timezone: string): boolean {
  if (timezone.trim() === '') return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    return true;
  } catch {
    return false;
  }
}

/** Every time zone name this runtime knows, for "did you mean" hints. */
export function knownTimeZones(): string[] {
  const zones = Intl.supportedValuesOf('timeZone');
  return zones.includes('UTC') ? zones : ['UTC', ...zones];
}

export interface CronFire {
  at: Date;
  /**
   * Set when a daylight-saving change moves or merges this fire, or makes its wall-clock time
   * ambiguous: it falls where the skipped hour was (or in the hour after the change), or in the
   * repeated hour. Says what happens, e.g. "02:30 does not exist on 2027-03-28 in Europe/Berlin
   * (clocks go forward 1h); fires at 03:30 CEST". Fires elsewhere on a change day get null.
   */
  dstNote: string | null;
}

/** The next `count` fire times strictly after `after`. Expects a valid expression and zone. */
export function nextFires(expr: string, after: Date, timezone: string, count: number): CronFire[] {
  if (count <= 0) return [];
  const job = new Cron(expr, { paused: true, timezone });
  const zone: ZoneReader = {
    timezone,
    offsetAt: createOffsetReader(timezone),
    // The expression read on bare wall-clock fields: UTC has no changes, so it matches a wall time
    // exactly when the expression names it.
    namesWallTime: lazyMatcher(() => new Cron(expr, { paused: true, timezone: 'UTC' })),
    firesAt: lazyMatcher(() => job),
  };
  return job.nextRuns(count, after).map((at) => ({ at, dstNote: dstNoteFor(at.getTime(), zone) }));
}

interface ZoneReader {
  timezone: string;
  offsetAt: OffsetReader;
  /** Whether the expression names this wall time (see wallTimeOf). */
  namesWallTime: (wall: number) => boolean;
  /** Whether the job fires at this instant. */
  firesAt: (instant: number) => boolean;
}

function lazyMatcher(create: () => Cron): (time: number) => boolean {
  let job: Cron | undefined;
  return (time) => {
    job ??= create();
    return job.nextRun(new Date(time - 1000))?.getTime() === time;
  };
}

/** Far enough either side of a fire to see any daylight-saving change that can affect it. */
const CHANGE_WINDOW_MS = 26 * 3_600_000;

/** The first instant (to the second) at which the offset differs from the one at `from`. */
function findChange(from: number, to: number, offsetAt: OffsetReader): number {
  const before = offsetAt(from);
  let lo = Math.floor(from / 1000) * 1000;
  let hi = Math.ceil(to / 1000) * 1000;
  while (hi - lo > 1000) {
    const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
    if (offsetAt(mid) === before) lo = mid;
    else hi = mid;
  }
  return hi;
}

function dstNoteFor(at: number, zone: ZoneReader): string | null {
  const { timezone, offsetAt } = zone;
  const before = offsetAt(at - CHANGE_WINDOW_MS);
  const after = offsetAt(at + CHANGE_WINDOW_MS);
  if (before === after) return null;
  const change = findChange(at - CHANGE_WINDOW_MS, at + CHANGE_WINDOW_MS, offsetAt);
  const gap = Math.abs(after - before) * 60_000;
  const amount = formatDuration(gap);
  const wall = at + offsetAt(at) * 60_000;
  const clock = formatClock(wall);
  const here = `${clock} ${zoneAbbreviation(at, timezone)}`;

  if (after > before) {
    // Spring forward: wall times [change+before, +gap) do not exist; croner reads them with the
    // offset before the change, which lands them in the first `gap` after it.
    if (at < change || at >= change + gap) return null;
    const skipped = wall - gap;
    const forward = `clocks go forward ${amount}`;
    if (zone.namesWallTime(skipped)) {
      const missing = `${formatClock(skipped)} does not exist on ${formatDay(skipped)} in ${timezone} (${forward})`;
      return zone.namesWallTime(wall)
        ? `${missing}; it would move to ${here}, which is already a fire time, so ${here} fires once for both`
        : `${missing}; fires at ${here}`;
    }
    const from = `${formatClock(change + before * 60_000)} ${zoneAbbreviation(change - 1000, timezone)}`;
    const to = `${formatClock(change + after * 60_000)} ${zoneAbbreviation(change, timezone)}`;
    return `${here} on ${formatDay(wall)} in ${timezone} is in the ${amount} after the ${forward} (${from} → ${to}); fires as usual`;
  }

  // Fall back: wall times [change+after, change+before) happen twice, `gap` apart.
  if (at < change - gap || at >= change + gap) return null;
  const first = at < change;
  const other = first ? at + gap : at - gap;
  const otherText = `${clock} ${zoneAbbreviation(other, timezone)}`;
  const twice = `${clock} happens twice on ${formatDay(wall)} in ${timezone} (clocks go back ${amount})`;
  if (zone.firesAt(other))
    return `${twice}; fires at both, ${first ? here : otherText} and ${first ? otherText : here}`;
  return `${twice}; fires once, at the ${first ? 'first' : 'second'} (${here}), not at ${otherText}`;
}

const DAY_NAMES = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const DAY_ALIASES: Record<string, number> = { SUN: 0, MON: 1, TUE: 2, WED: 3, THU: 4, FRI: 5, SAT: 6 };
const NICKNAMES: Record<string, string> = {
  '@yearly': 'every year on 1 January at 00:00',
  '@annually': 'every year on 1 January at 00:00',
  '@monthly': 'on day 1 of every month at 00:00',
  '@weekly': 'every Sunday at 00:00',
  '@daily': 'every day at 00:00',
  '@midnight': 'every day at 00:00',
  '@hourly': 'every hour at minute 0',
};

const NUMBER = /^\d+$/;

function pad(value: string): string {
  return value.padStart(2, '0');
}

function dayNumber(text: string): number | null {
  const upper = text.toUpperCase();
  if (Object.hasOwn(DAY_ALIASES, upper)) return DAY_ALIASES[upper]!;
  if (!NUMBER.test(text)) return null;
  const n = Number(text);
  return n >= 0 && n <= 7 ? n % 7 : null;
}

function describeDays(field: string): string | null {
  const range = /^(\w+)-(\w+)$/.exec(field);
  if (range) {
    const from = dayNumber(range[1]!);
    const to = dayNumber(range[2]!);
    return from === null || to === null ? null : `${DAY_NAMES[from]}–${DAY_NAMES[to]}`;
  }
  const days = field.split(',').map(dayNumber);
  if (days.some((day) => day === null)) return null;
  const names = days.map((day) => DAY_NAMES[day!]!);
  return names.length === 1 ? names[0]! : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

/** The common forms in words; any other expression is returned as it is. */
export function describeCron(expr: string): string {
  const trimmed = expr.trim();
  const nickname = NICKNAMES[trimmed.toLowerCase()];
  if (nickname) return nickname;
  const fields = trimmed.split(/\s+/);
  if (fields.length !== 5) return trimmed;
  const [minute, hour, dom, month, dow] = fields as [string, string, string, string, string];
  const step = (field: string) => /^\*\/(\d+)$/.exec(field)?.[1];
  if (month !== '*') return trimmed;

  if (dom === '*' && dow === '*') {
    if (minute === '*' && hour === '*') return 'every minute';
    const minuteStep = step(minute);
    if (minuteStep && hour === '*')
      return minuteStep === '1' ? 'every minute' : `every ${minuteStep} minutes`;
    if (NUMBER.test(minute) && hour === '*') return `every hour at minute ${Number(minute)}`;
    const hourStep = step(hour);
    if (NUMBER.test(minute) && hourStep) {
      return hourStep === '1'
        ? `every hour at minute ${Number(minute)}`
        : `every ${hourStep} hours at minute ${Number(minute)}`;
    }
  }
  if (!NUMBER.test(minute) || !NUMBER.test(hour)) return trimmed;
  const time = `${pad(hour)}:${pad(minute)}`;
  if (dom === '*' && dow === '*') return `at ${time} every day`;
  if (dom === '*') {
    const days = describeDays(dow);
    return days ? `at ${time} on ${days}` : trimmed;
  }
  if (dow === '*' && NUMBER.test(dom)) return `at ${time} on day ${Number(dom)} of every month`;
  return trimmed;
}
