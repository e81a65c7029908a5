import type { CliContext } from '../context.js';
import { renderTable } from '../render/table.js';
import { UsageError } from '../../errors.js';

export interface FiresOptions {
  pipeline?: string;
  limit: string;
  format: 'text' | 'json';
}

/**
 * `weft fires [--pipeline P]`: what `weft serve` did with each schedule tick — ran, skipped (overlap),
 * queued or missed (downtime, start deadline) — with the reason, newest first.
 */
export async function firesCommand(ctx: CliContext, options: FiresOptions): Promise<number> {
  const limit = Number(options.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
    throw new UsageError(`--limit expects a whole number from 1 to 10000, got "${options.limit}"`);
  }
  // No store file yet means no tick recorded yet; do not create one just to say so.
  const missing = await ctx.missingStore();
  const fires = missing
    ? []
    : await (
        await ctx.store()
      ).listFires({ limit, ...(options.pipeline ? { pipeline: options.pipeline } : {}) });
  if (options.format === 'json') {
    ctx.io.stdout(
      JSON.stringify(
        fires.map((f) => ({
          pipeline: f.pipeline,
          scheduled_for: f.scheduledFor,
          outcome: f.outcome,
          reason: f.reason,
          run_id: f.runId,
          recorded_at: f.recordedAt,
        })),
        null,
        2,
      ) + '\n',
    );
    return 0;
  }
  if (fires.length === 0) {
    ctx.io.stdout('no schedule ticks recorded yet (weft serve records one per tick)\n');
    return 0;
  }
  const c = ctx.io.colors;
  const paint = { ran: c.green, skipped: c.yellow, missed: c.red, queued: c.cyan } as const;
  ctx.io.stdout(
    renderTable([
      ['SCHEDULED FOR', 'PIPELINE', 'OUTCOME', 'RUN', 'REASON'].map((h) => c.bold(h)),
      ...fires.map((f) => [
        f.scheduledFor,
        f.pipeline,
        paint[f.outcome](f.outcome),
        f.runId ?? '-',
        f.reason ?? '',
      ]),
    ]) + '\n',
  );
  return 0;
}
