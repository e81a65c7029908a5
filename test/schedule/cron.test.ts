import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { describeCron, isValidTimeZone, nextFires, validateCron } from '../../src/schedule/cron.js';

describe('validateCron', () => {
  it.each(['*/5 * * * *', '0 9 * * 1-5', '0 0 1 * *', '@daily', '0 0 * * MON-FRI', '30 2 * * *'])(
    'accepts %s',
    (expr) => {
      expect(validateCron(expr)).toBeNull();
    },
  );

  it.each([
    ['61 * * * *', 'Invalid value for minute: 61'],
    ['* * *', 'exactly five or six space separated parts are required'],
    ['*/0 * * * *', 'illegal stepping'],
    ['0 0 30 2 *', 'never matches'],
  ])('rejects %s: %s', (expr, message) => {
    expect(validateCron(expr)).toContain(message);
  });

  it('never throws on any text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 30 }), (text) => {
        const result = validateCron(text);
        expect(result === null || typeof result === 'string').toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe('isValidTimeZone', () => {
  it.each([
    ['UTC', true],
    ['Europe/Berlin', true],
    ['America/New_York', true],
    ['Europe/Berln', false],
    ['', false],
    ['Mars/Base', false],
  ])('%s -> %s', (tz, expected) => {
    expect(isValidTimeZone(tz)).toBe(expected);
  });
});

describe('nextFires', () => {
  const originalTz = process.env.TZ;
  afterEach(() => {
    if (originalTz === undefined) delete process.env.TZ;
    else process.env.TZ = originalTz;
  });

  it('gives fire times strictly after `after`', () => {
    const fires = nextFires('*/15 * * * *', new Date('2025-01-01T10:15:00Z'), 'UTC', 3);
    expect(fires.map((f) => f.at.toISOString())).toEqual([
      '2025-01-01T10:30:00.000Z',
      '2025-01-01T10:45:00.000Z',
      '2025-01-01T11:00:00.000Z',
    ]);
    expect(fires.every((f) => f.dstNote === null)).toBe(true);
  });

  it('reads a schedule in its own zone, whatever process.env.TZ says', () => {
    process.env.TZ = 'America/Los_Angeles';
    const utc = nextFires('0 9 * * *', new Date('2025-06-01T00:00:00Z'), 'UTC', 1);
    expect(utc[0]!.at.toISOString()).toBe('2025-06-01T09:00:00.000Z');
    process.env.TZ = 'Asia/Tokyo';
    const again = nextFires('0 9 * * *', new Date('2025-06-01T00:00:00Z'), 'UTC', 1);
    expect(again[0]!.at.toISOString()).toBe('2025-06-01T09:00:00.000Z');
    const berlin = nextFires('0 9 * * *', new Date('2025-06-01T00:00:00Z'), 'Europe/Berlin', 1);
    expect(berlin[0]!.at.toISOString()).toBe('2025-06-01T07:00:00.000Z');
  });

  it.each([
    ['Europe/Berlin', '2025-03-29T23:00:00Z', 'clocks go forward 1h on this day in Europe/Berlin'],
    ['Europe/Berlin', '2025-10-25T22:00:00Z', 'clocks go back 1h on this day in Europe/Berlin'],
    ['America/New_York', '2025-03-09T05:00:00Z', 'clocks go forward 1h on this day in America/New_York'],
    ['America/New_York', '2025-11-02T04:00:00Z', 'clocks go back 1h on this day in America/New_York'],
  ])('a 5-minute schedule across a change in %s from %s: strictly increasing, flagged', (tz, from, note) => {
    const fires = nextFires('*/5 * * * *', new Date(from), tz, 12 * 6);
    const times = fires.map((f) => f.at.getTime());
    for (let i = 1; i < times.length; i++) expect(times[i]).toBeGreaterThan(times[i - 1]!);
    expect(new Set(times).size).toBe(times.length);
    expect(fires.every((f) => f.dstNote === note)).toBe(true);
  });

  it('does not flag an ordinary day', () => {
    const fires = nextFires('0 12 * * *', new Date('2025-03-27T00:00:00Z'), 'Europe/Berlin', 5);
    // Fires on 27, 28, 29, 30 and 31 March; the clocks change on the 30th.
    expect(fires.map((f) => f.dstNote)).toEqual([
      null,
      null,
      null,
      'clocks go forward 1h on this day in Europe/Berlin',
      null,
    ]);
  });

  it('moves a fire in the skipped hour to after the jump', () => {
    const [fire] = nextFires('30 2 * * *', new Date('2025-03-09T00:00:00Z'), 'America/New_York', 1);
    // 02:30 does not exist that day; croner fires at 03:30 EDT.
    expect(fire!.at.toISOString()).toBe('2025-03-09T07:30:00.000Z');
    expect(fire!.dstNote).toBe('clocks go forward 1h on this day in America/New_York');
  });

  it('returns nothing for a count of 0', () => {
    expect(nextFires('* * * * *', new Date(0), 'UTC', 0)).toEqual([]);
  });
});

describe('describeCron', () => {
  it.each([
    ['* * * * *', 'every minute'],
    ['*/5 * * * *', 'every 5 minutes'],
    ['15 * * * *', 'every hour at minute 15'],
    ['0 */6 * * *', 'every 6 hours at minute 0'],
    ['0 9 * * *', 'at 09:00 every day'],
    ['0 9 * * 1-5', 'at 09:00 on Monday–Friday'],
    ['30 18 * * MON-FRI', 'at 18:30 on Monday–Friday'],
    ['0 8 * * 1,3,5', 'at 08:00 on Monday, Wednesday and Friday'],
    ['0 8 * * 0', 'at 08:00 on Sunday'],
    ['0 8 * * 7', 'at 08:00 on Sunday'],
    ['0 0 1 * *', 'at 00:00 on day 1 of every month'],
    ['@daily', 'every day at 00:00'],
    ['@hourly', 'every hour at minute 0'],
    ['0 9 * 1 *', '0 9 * 1 *'],
    ['0 9,17 * * *', '0 9,17 * * *'],
    ['0 0 0 * * *', '0 0 0 * * *'],
  ])('%s -> %s', (expr, words) => {
    expect(describeCron(expr)).toBe(words);
  });
});
