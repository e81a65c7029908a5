import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { nextFires } from '../../src/schedule/cron.js';
import { createCronTimes } from '../../src/schedule/due-fires.js';
import { count, isFullTier } from './tier.js';

/**
 * Item 3: cron fire times across daylight-saving changes. For every zone and expression, two
 * years of fire times (in the default tier: the weeks around each change for the busy
 * expressions) are checked against an independent model of the rule in docs/scheduling.md:
 *  - fire times strictly increase (no instant twice);
 *  - every wall-clock time the expression names that exists on a day fires exactly once — in the
 *    repeated autumn hour one of its two instants, never both;
 *  - a wall-clock time skipped in spring fires at the same time read with the offset before the
 *    change (02:30 in Berlin becomes 03:30 CEST); if that instant is already a fire, it is not
 *    fired twice.
 * Both ways the code computes fire times are checked against the model: `nextFires` (what `weft
 * plan` and the docs show) and `createCronTimes` (what the scheduler actually fires on).
 */

const ZONES = ['Europe/Berlin', 'America/New_York', 'Australia/Sydney', 'America/Santiago'] as const;
const EXPRESSIONS = ['*/5 * * * *', '0 */6 * * *', '30 2 * * *', '0 0 * * 0'] as const;
const START = Date.UTC(2025, 0, 1);
const END = Date.UTC(2027, 0, 1);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

function offsetReader(zone: string): (instant: number) => number {
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone: zone,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
  });
  const cache = new Map<number, number>();
  return (instant) => {
    const key = Math.floor(instant / MINUTE);
    const hit = cache.get(key);
    if (hit !== undefined) return hit;
    const f: Record<string, number> = {};
    for (const part of format.formatToParts(new Date(key * MINUTE))) {
      if (part.type !== 'literal') f[part.type] = Number(part.value);
    }
    const local = Date.UTC(f.year!, f.month! - 1, f.day, f.hour, f.minute);
    const offset = (local - key * MINUTE) / MINUTE;
    cache.set(key, offset);
    return offset;
  };
}

/** The expression as a predicate on local (minute, hour, weekday); only the forms used here. */
function matcher(expr: string): (minute: number, hour: number, weekday: number) => boolean {
  const field = (text: string) => (value: number) => {
    if (text === '*') return true;
    const step = /^\*\/(\d+)$/.exec(text);
    if (step) return value % Number(step[1]) === 0;
    return value === Number(text);
  };
  const [m, h, dom, mon, dow] = expr.split(' ') as [string, string, string, string, string];
  if (dom !== '*' || mon !== '*') throw new Error(`matcher: unsupported ${expr}`);
  const [fm, fh, fd] = [field(m), field(h), field(dow)];
  return (minute, hour, weekday) => fm(minute) && fh(hour) && fd(weekday);
}

/** Runs of local calendar dates (as UTC midnights) around each offset change, in [from, to). */
function changeWindows(zone: string, from: number, to: number, margin: number): Window[] {
  const offsetAt = offsetReader(zone);
  const windows: Window[] = [];
  for (let day = from; day < to; day += DAY) {
    if (offsetAt(day) === offsetAt(day + DAY)) continue;
    const last = windows[windows.length - 1];
    const window = { from: day - (margin + 1) * DAY, to: day + (margin + 2) * DAY };
    if (last && window.from <= last.to) last.to = window.to;
    else windows.push(window);
  }
  return windows;
}

interface Window {
  from: number;
  to: number;
}

function check(
  zone: string,
  expr: string,
  windows: readonly Window[],
): { fires: number; skipped: number; repeated: number } {
  const offsetAt = offsetReader(zone);
  const matches = matcher(expr);
  let total = 0;
  let skipped = 0;
  let repeated = 0;
  for (const { from, to } of windows) {
    // Generous bounds for the fires, exact bounds for the model (local dates from..to).
    const shown: number[] = [];
    let after = new Date(from - DAY);
    for (;;) {
      const batch = nextFires(expr, after, zone, expr.startsWith('*/') ? 288 : 16).map((f) => f.at.getTime());
      if (batch.length === 0) break;
      shown.push(...batch);
      after = new Date(batch[batch.length - 1]!);
      if (after.getTime() > to + DAY) break;
    }
    const scheduled: number[] = [];
    const times = createCronTimes(expr, zone);
    for (let at = times.next(from - DAY); at !== null && at <= to + DAY; at = times.next(at))
      scheduled.push(at);
    for (const [path, fires] of [
      ['nextFires', shown],
      ['createCronTimes', scheduled],
    ] as const) {
      const counts = checkFires(`${zone} [${path}]`, expr, from, to, fires, offsetAt, matches);
      // Both paths meet the same wall times; count them once.
      if (path === 'nextFires') {
        total += counts.fires;
        skipped += counts.skipped;
        repeated += counts.repeated;
      }
    }
  }
  return { fires: total, skipped, repeated };
}

/** The model's checks on one list of fire times for local dates [from, to). */
function checkFires(
  zone: string,
  expr: string,
  from: number,
  to: number,
  fires: readonly number[],
  offsetAt: (instant: number) => number,
  matches: (minute: number, hour: number, weekday: number) => boolean,
): { fires: number; skipped: number; repeated: number } {
  let skipped = 0;
  let repeated = 0;
  for (let i = 1; i < fires.length; i++) {
    if (!(fires[i]! > fires[i - 1]!)) {
      throw new Error(
        `${zone} ${expr}: fire ${new Date(fires[i]!).toISOString()} does not follow ${new Date(fires[i - 1]!).toISOString()}`,
      );
    }
  }
  const fireSet = new Set(fires);
  const explained = new Set<number>();
  // Every wall-clock time the expression names on local dates [from, to).
  for (let date = from; date < to; date += DAY) {
    const weekday = new Date(date).getUTCDay();
    for (let hour = 0; hour < 24; hour++) {
      for (let minute = 0; minute < 60; minute++) {
        if (!matches(minute, hour, weekday)) continue;
        const wall = date + hour * HOUR + minute * MINUTE;
        const offsets = new Set([offsetAt(wall - 36 * HOUR), offsetAt(wall + 36 * HOUR), offsetAt(wall)]);
        const instants = [...offsets]
          .map((o) => wall - o * MINUTE)
          .filter((t) => offsetAt(t) === (wall - t) / MINUTE);
        const unique = [...new Set(instants)];
        if (unique.length === 0) {
          // Skipped in spring: read with the offset in force before the change.
          skipped += 1;
          const shifted = wall - offsetAt(wall - 36 * HOUR) * MINUTE;
          if (!fireSet.has(shifted)) {
            throw new Error(
              `${zone} ${expr}: skipped wall time ${new Date(wall).toISOString().slice(0, 16)} did not fire at ${new Date(shifted).toISOString()}`,
            );
          }
          explained.add(shifted);
          continue;
        }
        if (unique.length > 1) repeated += 1;
        const fired = unique.filter((t) => fireSet.has(t));
        if (fired.length !== 1) {
          throw new Error(
            `${zone} ${expr}: wall time ${new Date(wall).toISOString().slice(0, 16)} fired ${fired.length} times (instants ${unique.map((t) => new Date(t).toISOString()).join(', ')})`,
          );
        }
        explained.add(fired[0]!);
      }
    }
  }
  // No fire the model does not explain, inside the window (local dates from..to).
  for (const fire of fires) {
    const local = fire + offsetAt(fire) * MINUTE;
    if (local >= from && local < to && !explained.has(fire)) {
      throw new Error(`${zone} ${expr}: unexplained fire ${new Date(fire).toISOString()}`);
    }
  }
  return { fires: explained.size, skipped, repeated };
}

function windowsFor(zone: string, expr: string): Window[] {
  // croner takes ~0.3 ms per fire time in a zone: the default tier checks the days around each
  // change (two years hold four), the full tier every day of the two years.
  if (isFullTier) return [{ from: START, to: END }];
  return changeWindows(zone, START, END, expr.startsWith('*/') ? 0 : 7);
}

describe('cron fire times across daylight-saving changes', () => {
  for (const zone of ZONES) {
    it(
      `${zone}: every expression, two years, matches the documented rule`,
      () => {
        const started = performance.now();
        let skippedAll = 0;
        let repeatedAll = 0;
        for (const expr of EXPRESSIONS) {
          const { fires, skipped, repeated } = check(zone, expr, windowsFor(zone, expr));
          expect(fires, expr).toBeGreaterThan(0);
          skippedAll += skipped;
          repeatedAll += repeated;
        }
        // Each zone changes twice a year: the model must actually have met both kinds.
        expect(skippedAll).toBeGreaterThan(0);
        expect(repeatedAll).toBeGreaterThan(0);
        console.log(
          `[reliability] ${zone}: ${skippedAll} skipped and ${repeatedAll} repeated wall times checked in ${Math.round(performance.now() - started)} ms`,
        );
      },
      count(60_000, 240_000),
    );
  }

  it('the rule, as documented, on known days', () => {
    const iso = (expr: string, after: string, zone: string, n: number) =>
      nextFires(expr, new Date(after), zone, n).map((f) => f.at.toISOString());
    // Berlin, spring forward (2025-03-30, 02:00 CET -> 03:00 CEST): 02:30 fires at 03:30 CEST.
    expect(iso('30 2 * * *', '2025-03-29T12:00:00Z', 'Europe/Berlin', 2)).toEqual([
      '2025-03-30T01:30:00.000Z',
      '2025-03-31T00:30:00.000Z',
    ]);
    // Berlin, fall back (2025-10-26, 03:00 CEST -> 02:00 CET): 02:30 fires once, the second time (CET).
    expect(iso('30 2 * * *', '2025-10-25T12:00:00Z', 'Europe/Berlin', 2)).toEqual([
      '2025-10-26T01:30:00.000Z',
      '2025-10-27T01:30:00.000Z',
    ]);
    // New York, fall back (2025-11-02, 02:00 EDT -> 01:00 EST): 01:30 fires once, the first time (EDT).
    expect(iso('30 1 * * *', '2025-11-01T12:00:00Z', 'America/New_York', 2)).toEqual([
      '2025-11-02T05:30:00.000Z',
      '2025-11-03T06:30:00.000Z',
    ]);
    // Santiago, spring forward at midnight (2025-09-07, 00:00 -> 01:00): Sunday 00:00 fires at 01:00.
    expect(iso('0 0 * * 0', '2025-09-06T12:00:00Z', 'America/Santiago', 2)).toEqual([
      '2025-09-07T04:00:00.000Z',
      '2025-09-14T03:00:00.000Z',
    ]);
    // The plan warns on such days.
    expect(nextFires('30 2 * * *', new Date('2025-03-29T12:00:00Z'), 'Europe/Berlin', 1)[0]!.dstNote).toBe(
      '02:30 does not exist on 2025-03-30 in Europe/Berlin (clocks go forward 1h); fires at 03:30 CEST',
    );
  });

  it("a UTC schedule does not depend on the process's own TZ, on either path", async () => {
    // Zones with odd offsets (+5:30, +12:45), a half-hour DST shift (Lord Howe), and midnight changes.
    const processZones = [
      'America/Santiago',
      'Asia/Kolkata',
      'Australia/Lord_Howe',
      'Pacific/Chatham',
      'Europe/Berlin',
    ];
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const script = [
      `import { nextFires } from '${root}src/schedule/cron.ts';`,
      `import { createCronTimes } from '${root}src/schedule/due-fires.ts';`,
      'const after = Date.parse("2025-09-06T12:00:00Z");',
      'const out = {};',
      `for (const expr of ${JSON.stringify(EXPRESSIONS)}) {`,
      "  const shown = nextFires(expr, new Date(after), 'UTC', 50).map((f) => [f.at.toISOString(), f.dstNote]);",
      "  const times = createCronTimes(expr, 'UTC');",
      '  const scheduled = [];',
      '  for (let at = times.next(after); scheduled.length < 50; at = times.next(at)) scheduled.push(new Date(at).toISOString());',
      '  out[expr] = { shown, scheduled };',
      '}',
      'console.log(JSON.stringify({ tz: Intl.DateTimeFormat().resolvedOptions().timeZone, out }));',
    ].join('\n');
    const dir = mkdtempSync(join(tmpdir(), 'weft-tz-'));
    const file = join(dir, 'fires.ts');
    writeFileSync(file, script);
    type Out = { tz: string; out: Record<string, { shown: [string, string | null][]; scheduled: string[] }> };
    const run = async (tz: string) => {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        [`${root}node_modules/jiti/lib/jiti-cli.mjs`, file],
        {
          cwd: root,
          env: { ...process.env, TZ: tz },
          encoding: 'utf8',
        },
      );
      return JSON.parse(stdout) as Out;
    };
    let results: Out[];
    try {
      results = await Promise.all(processZones.map(run));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const after = Date.parse('2025-09-06T12:00:00Z');
    const here: Out['out'] = {};
    for (const expr of EXPRESSIONS) {
      const times = createCronTimes(expr, 'UTC');
      const scheduled: string[] = [];
      for (let at = times.next(after); scheduled.length < 50 && at !== null; at = times.next(at))
        scheduled.push(new Date(at).toISOString());
      here[expr] = {
        shown: nextFires(expr, new Date(after), 'UTC', 50).map((f) => [f.at.toISOString(), f.dstNote]),
        scheduled,
      };
      // The two paths agree with each other too.
      expect(scheduled, expr).toEqual(here[expr].shown.map(([at]) => at));
    }
    for (const [i, result] of results.entries()) {
      // ICU may name the zone by an alias (Asia/Kolkata resolves as Asia/Calcutta): compare canonical names.
      expect(result.tz).toBe(
        new Intl.DateTimeFormat('en', { timeZone: processZones[i] }).resolvedOptions().timeZone,
      );
      expect(result.out, processZones[i]).toEqual(here);
      // The UTC daily job is at 02:30Z every day, right across Santiago's change (2025-09-07).
      expect(result.out['30 2 * * *']!.scheduled.slice(0, 3), processZones[i]).toEqual([
        '2025-09-07T02:30:00.000Z',
        '2025-09-08T02:30:00.000Z',
        '2025-09-09T02:30:00.000Z',
      ]);
    }
  }, 60_000);
});
