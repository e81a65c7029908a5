import type { DocPath } from '../errors.js';
import { isValidTimeZone, knownTimeZones, validateCron } from '../schedule/cron.js';
import { suggest } from '../pipeline/suggest.js';
import { type CompileContext, didYouMean, readDuration, report, sourcePosition } from './context.js';
import type { PlanSchedule } from './plan.js';
import type { ScheduleObjectSpec } from '../pipeline/spec.js';

const DEFAULT_CATCHUP_LIMIT = 100;

/** Checks `schedule` and returns it normalised (null when absent or broken). */
export function checkSchedule(ctx: CompileContext): PlanSchedule | null {
  const written = ctx.spec.schedule;
  if (written === undefined) return null;
  const object: ScheduleObjectSpec = typeof written === 'string' ? { cron: written } : written;
  const cronPath: DocPath = typeof written === 'string' ? ['schedule'] : ['schedule', 'cron'];
  let ok = true;

  const problem = validateCron(object.cron);
  if (problem !== null) {
    ok = false;
    report(
      ctx,
      cronPath,
      'CRON_INVALID',
      `invalid cron expression ${JSON.stringify(object.cron)}: ${problem}`,
      {
        hint: 'five fields: minute hour day-of-month month day-of-week, e.g. "*/15 * * * *" or "0 9 * * 1-5"',
      },
    );
  }

  const timezone = object.timezone ?? 'UTC';
  if (!isValidTimeZone(timezone)) {
    ok = false;
    const close = suggest(timezone, knownTimeZones());
    report(
      ctx,
      ['schedule', 'timezone'],
      'TIMEZONE_UNKNOWN',
      `unknown time zone ${JSON.stringify(timezone)}`,
      {
        hint: close ? didYouMean(close) : 'use an IANA name such as "Europe/Berlin" or "UTC"',
      },
    );
  }

  const deadline = readDuration(ctx, object.start_deadline, ['schedule', 'start_deadline'], {
    positive: true,
  });
  if (object.start_deadline !== undefined && deadline === null) ok = false;
  if (!ok) return null;

  return {
    cron: object.cron.trim(),
    timezone,
    overlap: object.overlap ?? 'skip',
    catchup: object.catchup ?? 'none',
    catchupLimit: object.catchup_limit ?? DEFAULT_CATCHUP_LIMIT,
    startDeadlineMs: deadline,
    position: sourcePosition(ctx, cronPath),
  };
}
