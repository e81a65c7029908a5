import { Cron } from 'croner';
import type { PlanSchedule } from '../compile/plan.js';
import { formatDuration } from '../core/duration.js';

/**
 * Which schedule times are due, and what to do about each: pure functions of the schedule, the
 * last fire handled and the time now, so the policies (start_deadline, catchup) are tested without
 * a clock.
 */

/** A compiled cron expression in its time zone (croner's Cron, kept per pipeline). */
export interface CronTimes {
  /** The first fire strictly after `afterMs`, or null when the expression never fires again. */
  next(afterMs: number): number | null;
}

export function createCronTimes(cron: string, timezone: string): CronTimes {
  const job = new Cron(cron, { paused: true, timezone });
  return {
    next(afterMs) {
      const at = job.nextRun(new Date(afterMs));
      return at ? at.getTime() : null;
    },
  };
}

export interface DueScan {
  /** The newest `keep` due fires, oldest first. */
  fires: number[];
  /** How many fires are due in all (at least, when `truncated`). */
  total: number;
  /** Scanning stopped at its limit: there were more due fires than `total` says. */
  truncated: boolean;
}

/** Months of `* * * * *` downtime is a few hundred thousand fires: scanning stops here. */
const SCAN_LIMIT = 200_000;

/** Fires in (afterMs, untilMs], keeping the newest `keep`. */
export function scanDueFires(times: CronTimes, afterMs: number, untilMs: number, keep: number): DueScan {
  const fires: number[] = [];
  let total = 0;
  let at = times.next(afterMs);
  while (at !== null && at <= untilMs) {
    total += 1;
    fires.push(at);
    if (fires.length > keep) fires.shift();
    if (total >= SCAN_LIMIT) return { fires, total, truncated: true };
    at = times.next(at);
  }
  return { fires, total, truncated: false };
}

/** Why the scheduler is looking at due fires. */
export type DueContext =
  /** It slept until the next fire and woke (on time, late after a pause, or after a clock jump). */
  | 'wake'
  /** It is starting, and compares the pipeline's last recorded fire with now (downtime). */
  | 'start';

export interface FireDecision {
  at: number;
  action: 'run' | 'missed';
  /** Set for a missed fire; for a run, whether it is a catch-up of a missed fire. */
  reason: string | null;
  catchup: boolean;
}

export interface DueDecisions {
  /** Oldest first; a catch-up run before the current fire. */
  decisions: FireDecision[];
  /** Missed fires that get no record (beyond what is kept), counted for the report. */
  unrecorded: number;
  /** With catchup `all`: missed fires that did not run because of catchup_limit. */
  cutByLimit: number;
}

export interface DecideInput {
  scan: DueScan;
  now: number;
  schedule: PlanSchedule;
  context: DueContext;
  /**
   * At start, or when several fires are due at once (a pause, a clock jump forward), the newest
   * due fire still counts as the current one when at most this late and no start_deadline is set.
   */
  lateGraceMs: number;
  /**
   * The scan starts after a fire another scheduler recorded, not after the one this scheduler
   * slept for (it woke late): a single due fire is then not "the fire it slept for".
   */
  afterOthers?: boolean;
}

/**
 * Decides every due fire. The newest due fire is the *current* one when it is late by at most
 * start_deadline; without a deadline, when it is the only fire the scheduler slept for, or when it
 * is at most `lateGraceMs` late. Every other due fire was *missed*:
 *  - a single fire at wake past its start_deadline is missed, whatever catchup says (the deadline
 *    exists to stop late starts);
 *  - otherwise (downtime, a pause over several fires, a clock jump) `catchup` decides: `none`
 *    records them missed, `latest` runs the newest of them (unless the current fire runs), `all`
 *    runs the newest `catchupLimit` of them, oldest first. Catch-up runs ignore start_deadline.
 */
export function decideDueFires(input: DecideInput): DueDecisions {
  const { scan, now, schedule, context } = input;
  const fires = scan.fires;
  const unlisted = scan.total - fires.length;
  if (fires.length === 0) return { decisions: [], unrecorded: unlisted, cutByLimit: 0 };
  const newest = fires[fires.length - 1]!;
  const late = now - newest;
  const single = context === 'wake' && scan.total === 1 && input.afterOthers !== true;
  const limit = schedule.startDeadlineMs ?? (single ? Infinity : input.lateGraceMs);
  const current = late <= limit ? newest : null;

  if (single) {
    if (current !== null) return { decisions: [run(newest, false)], unrecorded: 0, cutByLimit: 0 };
    const reason = `it could start only ${formatDuration(late)} late, past its start_deadline of ${formatDuration(schedule.startDeadlineMs ?? 0)}`;
    return { decisions: [missed(newest, reason)], unrecorded: 0, cutByLimit: 0 };
  }

  const older = current === null ? fires : fires.slice(0, -1);
  const why =
    context === 'start'
      ? 'no scheduler was running at this time'
      : 'the scheduler was paused or the clock jumped forward past this time';
  const decisions: FireDecision[] = [];
  let cutByLimit = 0;
  switch (schedule.catchup) {
    case 'none':
      for (const at of older) decisions.push(missed(at, `${why} (catchup: none)`));
      break;
    case 'latest': {
      const rerun = current === null ? older[older.length - 1] : undefined;
      for (const at of older) {
        if (at === rerun) decisions.push(run(at, true));
        else decisions.push(missed(at, `${why}; catchup: latest runs only the most recent missed fire`));
      }
      break;
    }
    case 'all': {
      const limitN = Math.max(0, schedule.catchupLimit);
      const cut = Math.max(0, older.length - limitN);
      cutByLimit = cut + unlisted;
      older.forEach((at, i) => {
        if (i < cut) decisions.push(missed(at, `${why}; over catchup_limit (${limitN})`));
        else decisions.push(run(at, true));
      });
      break;
    }
  }
  if (current !== null) decisions.push(run(current, false));
  return { decisions, unrecorded: unlisted, cutByLimit };
}

function run(at: number, catchup: boolean): FireDecision {
  return { at, action: 'run', reason: null, catchup };
}

function missed(at: number, reason: string): FireDecision {
  return { at, action: 'missed', reason, catchup: false };
}
