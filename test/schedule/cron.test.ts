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
    ['Europe/Berlin', '2025-03-29T23:00:00Z'],
    ['Europe/Berlin', '2025-10-25T22:00:00Z'],
    ['America/New_York', '2025-03-09T05:00:00Z'],
    ['America/New_York', '2025-11-02T04:00:00Z'],
  ])('a 5-minute schedule across a change in %s from %s: strictly increasing', (tz, from) => {
    const fires = nextFires('*/5 * * * *', new Date(from), tz, 12 * 6);
    const times = fires.map((f) => f.at.getTime());
    for (let i = 1; i < times.length; i++) expect(times[i]).toBeGreaterThan(times[i - 1]!);
    expect(new Set(times).size).toBe(times.length);
    // Only the fires the change touches carry a note (12 an hour), never the whole day.
    const noted = fires.filter((f) => f.dstNote !== null).length;
    expect(noted).toBe(12);
  });

  it('does not flag an ordinary day, nor a noon fire on a change day', () => {
    const fires = nextFires('0 12 * * *', new Date('2025-03-27T00:00:00Z'), 'Europe/Berlin', 5);
    // Fires on 27, 28, 29, 30 and 31 March; the clocks change on the 30th at 02:00.
    expect(fires.map((f) => f.dstNote)).toEqual([null, null, null, null, null]);
  });

  it('moves a fire in the skipped hour to after the jump', () => {
    const [fire] = nextFires('30 2 * * *', new Date('2025-03-09T00:00:00Z'), 'America/New_York', 1);
    // 02:30 does not exist that day; croner fires at 03:30 EDT.
    expect(fire!.at.toISOString()).toBe('2025-03-09T07:30:00.000Z');
    expect(fire!.dstNote).toBe(
      '02:30 does not exist on 2025-03-09 in America/New_York (clocks go forward 1h); fires at 03:30 EDT',
    );
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

describe('nextFires: daylight-saving notes', () => {
  const fires = (expr: string, from: string, tz: string, count: number) =>
    nextFires(expr, new Date(from), tz, count).map((f) => [f.at.toISOString(), f.dstNote]);

  it('notes only the affected fire of an hourly 00-04 job on a spring-forward day; 02:00 merges into 03:00', () => {
    // Europe/Berlin, 2027-03-28: 02:00 CET jumps to 03:00 CEST. croner reads 02:00 with the offset
    // before the change (03:00 CEST), which is already a fire time: four fires, not five.
    expect(fires('0 0-4 28 3 *', '2027-03-27T00:00:00Z', 'Europe/Berlin', 4)).toEqual([
      ['2027-03-27T23:00:00.000Z', null],
      ['2027-03-28T00:00:00.000Z', null],
      [
        '2027-03-28T01:00:00.000Z',
        '02:00 does not exist on 2027-03-28 in Europe/Berlin (clocks go forward 1h); it would move to 03:00 CEST, which is already a fire time, so 03:00 CEST fires once for both',
      ],
      ['2027-03-28T02:00:00.000Z', null],
    ]);
  });

  it('says where a lone time in the skipped hour fires', () => {
    expect(fires('30 2 28 3 *', '2027-03-27T00:00:00Z', 'Europe/Berlin', 1)).toEqual([
      [
        '2027-03-28T01:30:00.000Z',
        '02:30 does not exist on 2027-03-28 in Europe/Berlin (clocks go forward 1h); fires at 03:30 CEST',
      ],
    ]);
  });

  it('notes a fire in the hour after the jump that was not moved', () => {
    expect(fires('45 3 28 3 *', '2027-03-27T00:00:00Z', 'Europe/Berlin', 1)).toEqual([
      [
        '2027-03-28T01:45:00.000Z',
        '03:45 CEST on 2027-03-28 in Europe/Berlin is in the 1h after the clocks go forward 1h (02:00 CET → 03:00 CEST); fires as usual',
      ],
    ]);
  });

  it('says which occurrence of a repeated time fires: the second east of UTC, the first west of it', () => {
    expect(fires('0 0-4 31 10 *', '2027-10-30T00:00:00Z', 'Europe/Berlin', 5)).toEqual([
      ['2027-10-30T22:00:00.000Z', null],
      ['2027-10-30T23:00:00.000Z', null],
      [
        '2027-10-31T01:00:00.000Z',
        '02:00 happens twice on 2027-10-31 in Europe/Berlin (clocks go back 1h); fires once, at the second (02:00 CET), not at 02:00 CEST',
      ],
      ['2027-10-31T02:00:00.000Z', null],
      ['2027-10-31T03:00:00.000Z', null],
    ]);
    expect(fires('30 1 7 11 *', '2027-11-06T00:00:00Z', 'America/New_York', 1)).toEqual([
      [
        '2027-11-07T05:30:00.000Z',
        '01:30 happens twice on 2027-11-07 in America/New_York (clocks go back 1h); fires once, at the first (01:30 EDT), not at 01:30 EST',
      ],
    ]);
  });

  it('uses a GMT offset where the zone has no abbreviation (Santiago, midnight change)', () => {
    expect(fires('0 0 7 9 *', '2025-09-06T00:00:00Z', 'America/Santiago', 1)).toEqual([
      [
        '2025-09-07T04:00:00.000Z',
        '00:00 does not exist on 2025-09-07 in America/Santiago (clocks go forward 1h); fires at 01:00 GMT-3',
      ],
    ]);
  });

  it('agrees with croner on every spring day: a noted skipped time fires exactly where the note says', () => {
    for (const [tz, from] of [
      ['Europe/Berlin', '2027-03-27T20:00:00Z'],
      ['America/New_York', '2027-03-14T03:00:00Z'],
      ['Australia/Sydney', '2027-10-02T13:00:00Z'],
    ] as const) {
      for (const f of nextFires('*/20 * * * *', new Date(from), tz, 24)) {
        const match = /^(\d\d:\d\d) does not exist .*(?:fires at|would move to) (\d\d:\d\d) /.exec(
          f.dstNote ?? '',
        );
        if (!match) continue;
        const local = new Intl.DateTimeFormat('en-GB', {
          timeZone: tz,
          hour: '2-digit',
          minute: '2-digit',
          hourCycle: 'h23',
        }).format(f.at);
        expect(local).toBe(match[2]);
      }
    }
  });
});
