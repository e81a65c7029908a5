import { UsageError } from '../../errors.js';
import { formatDuration, MIN_RETENTION_MS, parseDuration } from '../../core/duration.js';
import type { PruneReport } from '../../store/run-store.js';
import type { CliContext } from '../context.js';

export interface PruneOptions {
  olderThan: string;
  dryRun?: boolean;
  format: 'text' | 'json';
}

/** A `--older-than`/`--retain` value in milliseconds; a UsageError naming `flag` otherwise. */
export function parseRetention(flag: string, value: string): number {
  const ms = parseDuration(value);
  if (ms === null) throw new UsageError(`${flag} expects a duration such as 30d or 90d, got "${value}"`);
  if (ms < MIN_RETENTION_MS) {
    throw new UsageError(
      `${flag} must be at least ${formatDuration(MIN_RETENTION_MS)}, got "${value}": the last day of history is always kept`,
    );
  }
  return ms;
}

/** One line saying what a prune deleted (or, dry, would delete). */
export function describePrune(report: PruneReport, before: string, dryRun: boolean): string {
  const verb = dryRun ? 'would delete' : 'deleted';
  return `${verb} ${report.runs} run(s) (with their tasks, attempts, logs and hooks), ${report.fires} schedule tick(s) and ${report.runRequests} run request(s) that ended before ${before}`;
}

/**
 * `weft prune --older-than 30d`: deletes the history that ended before then (see RunStore.prune
 * for what is always kept). Safe while `weft serve` and workers use the store.
 */
export async function pruneCommand(ctx: CliContext, options: PruneOptions): Promise<number> {
  const ms = parseRetention('--older-than', options.olderThan);
  // Past the start of time (a typo of 999999d) is the start of time.
  const before = new Date(Math.max(0, Date.now() - ms)).toISOString();
  const dryRun = options.dryRun ?? false;
  const missing = await ctx.missingStore();
  const report = missing
    ? { runs: 0, fires: 0, runRequests: 0 }
    : await (await ctx.store()).prune({ before, dryRun });
  if (options.format === 'json') {
    ctx.io.stdout(
      JSON.stringify(
        { before, dry_run: dryRun, runs: report.runs, fires: report.fires, run_requests: report.runRequests },
        null,
        2,
      ) + '\n',
    );
    return 0;
  }
  ctx.io.stdout(`${describePrune(report, before, dryRun)} (older than ${formatDuration(ms)})\n`);
  return 0;
}
