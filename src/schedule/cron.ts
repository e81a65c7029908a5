import { Cron } from 'croner';
import { formatDuration } from '../core/duration.js';

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
  /** Set when the fire falls on a day whose UTC offset changes in the zone (a DST change day). */
  dstNote: string | null;
}

/** The next `count` fire times strictly after `after`. Expects a valid expression and zone. */
export function nextFires(expr: string, after: Date, timezone: string, count: number): CronFire[] {
  if (count <= 0) return [];
  const job = new Cron(expr, { paused: true, timezone });
  const offsets = createOffsetReader(timezone);
  return job.nextRuns(count, after).map((at) => ({ at, dstNote: dstNoteFor(at, timezone, offsets) }));
}

/** Minutes east of UTC of `timezone` at an instant. */
type OffsetReader = (instant: number) => number;

function createOffsetReader(timezone: string): OffsetReader {
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone: timezone,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
  });
  return (instant) => {
    const fields: Record<string, number> = {};
    for (const part of format.formatToParts(new Date(instant))) {
      if (part.type !== 'literal') fields[part.type] = Number(part.value);
    }
    const local = Date.UTC(
      fields.year!,
      fields.month! - 1,
      fields.day,
      fields.hour,
      fields.minute,
      fields.second,
    );
    return Math.round((local - Math.floor(instant / 1000) * 1000) / 60_000);
  };
}

function dstNoteFor(at: Date, timezone: string, offsetAt: OffsetReader): string | null {
  const offset = offsetAt(at.getTime());
  // The local calendar day of the fire, as UTC instants of its start and end.
  const local = new Date(at.getTime() + offset * 60_000);
  const dayStartLocal = Date.UTC(local.getUTCFullYear(), local.getUTCMonth(), local.getUTCDate());
  const start = dayStartLocal - offsetAt(dayStartLocal - offset * 60_000) * 60_000;
  const end = start + 86_400_000;
  const change = offsetAt(end - 1) - offsetAt(start);
  if (change === 0) return null;
  const amount = formatDuration(Math.abs(change) * 60_000);
  return change > 0
    ? `clocks go forward ${amount} on this day in ${timezone}`
    : `clocks go back ${amount} on this day in ${timezone}`;
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
