import { describe, expect, it } from 'vitest';
import type { PlanSchedule } from '../../src/compile/plan.js';
import { createCronTimes, decideDueFires, scanDueFires } from '../../src/schedule/due-fires.js';
import { formatSchedulerEvent } from '../../src/schedule/log-format.js';

const MIN = 60_000;
const T = Date.parse('2025-01-01T10:00:00Z');
const schedule = (s: Partial<PlanSchedule> = {}): PlanSchedule => ({
  cron: '*/5 * * * *',
  timezone: 'UTC',
  overlap: 'skip',
  catchup: 'none',
  catchupLimit: 100,
  startDeadlineMs: null,
  position: { file: 'x.yaml', line: 1, column: 1 },
  ...s,
});
const every5 = createCronTimes('*/5 * * * *', 'UTC');

describe('scanDueFires', () => {
  it('lists fires strictly after the cursor up to now, keeping the newest', () => {
    const scan = scanDueFires(every5, T, T + 20 * MIN, 3);
    expect(scan).toEqual({ fires: [T + 10 * MIN, T + 15 * MIN, T + 20 * MIN], total: 4, truncated: false });
    expect(scanDueFires(every5, T, T + 4 * MIN, 3)).toEqual({ fires: [], total: 0, truncated: false });
  });
});

describe('decideDueFires', () => {
  const decide = (
    due: number[],
    now: number,
    s: Partial<PlanSchedule>,
    context: 'wake' | 'start' = 'start',
    total = due.length,
  ) =>
    decideDueFires({
      scan: { fires: due, total, truncated: false },
      now,
      schedule: schedule(s),
      context,
      lateGraceMs: MIN,
    });
  const brief = (r: ReturnType<typeof decide>) =>
    r.decisions.map((d) => `${(d.at - T) / MIN}:${d.action}${d.catchup ? '*' : ''}`);

  it('runs the one fire slept for however late, unless past start_deadline', () => {
    expect(brief(decide([T], T + 30 * MIN, {}, 'wake'))).toEqual(['0:run']);
    const late = decide([T], T + 3 * MIN, { startDeadlineMs: MIN, catchup: 'all' }, 'wake');
    expect(brief(late)).toEqual(['0:missed']);
    expect(late.decisions[0]!.reason).toContain('past its start_deadline of 1m');
  });

  it('treats one fire due after a fire another scheduler recorded like downtime, not like the fire slept for', () => {
    const afterOthers = (now: number, s: Partial<PlanSchedule>) =>
      brief(
        decideDueFires({
          scan: { fires: [T], total: 1, truncated: false },
          now,
          schedule: schedule(s),
          context: 'wake',
          lateGraceMs: MIN,
          afterOthers: true,
        }),
      );
    expect(afterOthers(T + 30_000, {})).toEqual(['0:run']);
    expect(afterOthers(T + 20 * 60 * MIN, {})).toEqual(['0:missed']);
    expect(afterOthers(T + 20 * 60 * MIN, { catchup: 'latest' })).toEqual(['0:run*']);
  });

  it('after downtime, the newest fire runs only when barely late; catchup decides the rest', () => {
    const due = [T, T + 5 * MIN, T + 10 * MIN];
    expect(brief(decide(due, T + 10 * MIN + 30_000, {}))).toEqual(['0:missed', '5:missed', '10:run']);
    expect(brief(decide(due, T + 13 * MIN, {}))).toEqual(['0:missed', '5:missed', '10:missed']);
    expect(brief(decide(due, T + 13 * MIN, { catchup: 'latest' }))).toEqual([
      '0:missed',
      '5:missed',
      '10:run*',
    ]);
    expect(brief(decide(due, T + 10 * MIN, { catchup: 'latest' }))).toEqual([
      '0:missed',
      '5:missed',
      '10:run',
    ]);
    expect(brief(decide(due, T + 13 * MIN, { catchup: 'all' }))).toEqual(['0:run*', '5:run*', '10:run*']);
    const capped = decide(due, T + 13 * MIN, { catchup: 'all', catchupLimit: 1 }, 'start', 5);
    expect(brief(capped)).toEqual(['0:missed', '5:missed', '10:run*']);
    expect(capped.cutByLimit).toBe(4);
    expect(capped.unrecorded).toBe(2);
    expect(capped.decisions[0]!.reason).toContain('over catchup_limit (1)');
  });

  it('uses start_deadline instead of the grace to decide whether the newest fire is current', () => {
    const due = [T, T + 5 * MIN];
    expect(brief(decide(due, T + 9 * MIN, { startDeadlineMs: 5 * MIN }))).toEqual(['0:missed', '5:run']);
    expect(brief(decide(due, T + 11 * MIN, { startDeadlineMs: 5 * MIN }))).toEqual(['0:missed', '5:missed']);
  });
});

describe('log lines', () => {
  const event = {
    type: 'fire:skipped',
    pipeline: 'p',
    scheduledFor: '2025-01-01T10:05:00.000Z',
    reason: 'busy',
  } as const;

  it('prints one plain line per event', () => {
    expect(formatSchedulerEvent(event, T, 'text')).toBe(
      '2025-01-01T10:00:00.000Z p: fire 2025-01-01T10:05:00.000Z skipped: busy\n',
    );
    const finished = formatSchedulerEvent(
      {
        type: 'run:finished',
        runId: 'r_1',
        pipeline: 'p',
        state: 'failed',
        durationMs: 90_000,
        error: { code: 'HANDLER_FAILED', message: 'boom\nmore' },
      },
      T,
      'text',
    );
    expect(finished).toBe('2025-01-01T10:00:00.000Z p: run r_1 failed in 1m30s: boom\n');
  });

  it('prints JSON lines with ts and event', () => {
    const line = formatSchedulerEvent(event, T, 'json');
    expect(line.endsWith('\n')).toBe(true);
    expect(JSON.parse(line)).toEqual({
      ts: '2025-01-01T10:00:00.000Z',
      event: 'fire:skipped',
      pipeline: 'p',
      scheduledFor: '2025-01-01T10:05:00.000Z',
      reason: 'busy',
    });
  });
});
