/**
 * Wall-clock readings of an instant in an IANA time zone, without the process zone ever entering
 * into it. Pure: Intl only.
 */

/** Minutes east of UTC of a zone at an instant. */
export type OffsetReader = (instant: number) => number;

const partFormats = new Map<string, Intl.DateTimeFormat>();

function partsFormat(timezone: string): Intl.DateTimeFormat {
  let format = partFormats.get(timezone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    partFormats.set(timezone, format);
  }
  return format;
}

/** The local wall time of `instant` in `timezone`, as the UTC instant with the same fields. */
export function wallTimeOf(instant: number, timezone: string): number {
  const fields: Record<string, number> = {};
  for (const part of partsFormat(timezone).formatToParts(new Date(instant))) {
    if (part.type !== 'literal') fields[part.type] = Number(part.value);
  }
  return Date.UTC(fields.year!, fields.month! - 1, fields.day, fields.hour, fields.minute, fields.second);
}

export function createOffsetReader(timezone: string): OffsetReader {
  return (instant) =>
    Math.round((wallTimeOf(instant, timezone) - Math.floor(instant / 1000) * 1000) / 60_000);
}

/**
 * The zone's short name at an instant: "CEST", "EDT", "BST" where the runtime knows one, else
 * "GMT+11". en-US knows the American names, en-GB the European ones.
 */
export function zoneAbbreviation(instant: number, timezone: string): string {
  let fallback = '';
  for (const locale of ['en-US', 'en-GB']) {
    const name =
      new Intl.DateTimeFormat(locale, { timeZone: timezone, timeZoneName: 'short' })
        .formatToParts(new Date(instant))
        .find((part) => part.type === 'timeZoneName')?.value ?? '';
    if (name !== '' && !/^GMT[+-]/.test(name)) return name;
    fallback ||= name;
  }
  return fallback || timezone;
}

const two = (n: number) => String(n).padStart(2, '0');

/** "02:30", or "02:30:15" when the seconds are not zero, of a wall time (see wallTimeOf). */
export function formatClock(wall: number): string {
  const date = new Date(wall);
  const seconds = date.getUTCSeconds();
  return `${two(date.getUTCHours())}:${two(date.getUTCMinutes())}${seconds ? `:${two(seconds)}` : ''}`;
}

/** "2027-03-28" of a wall time. */
export function formatDay(wall: number): string {
  return new Date(wall).toISOString().slice(0, 10);
}

/** "2027-03-28 03:30 CEST": an instant as read on the clocks of `timezone`. */
export function formatInZone(instant: number, timezone: string): string {
  const wall = wallTimeOf(instant, timezone);
  return `${formatDay(wall)} ${formatClock(wall)} ${zoneAbbreviation(instant, timezone)}`;
}

/** "2027-03-28T03:30:00+02:00": an instant in ISO 8601 with the zone's offset at that instant. */
export function isoInZone(instant: number, timezone: string): string {
  const wall = wallTimeOf(instant, timezone);
  const offset = Math.round((wall - Math.floor(instant / 1000) * 1000) / 60_000);
  const sign = offset < 0 ? '-' : '+';
  const abs = Math.abs(offset);
  return `${new Date(wall).toISOString().slice(0, 19)}${sign}${two(Math.floor(abs / 60))}:${two(abs % 60)}`;
}
