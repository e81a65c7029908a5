import { RUN_STATES, type RunState } from '../../core/states.js';
import { UsageError, WeftError } from '../../errors.js';
import { formatDuration } from '../../core/duration.js';
import { runToJson, taskRunToJson } from '../../store/run-json.js';
import type { RunStore } from '../../store/run-store.js';
import type { CliContext } from '../context.js';
import { durationBetween, paintState } from '../render/states.js';
import { renderTable } from '../render/table.js';

export interface RunsOptions {
  pipeline?: string;
  state?: string[];
  limit: string;
  format: 'text' | 'json';
}

function parseLimit(value: string): number {
  const limit = Number(value);
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
    throw new UsageError(`--limit expects a whole number from 1 to 10000, got "${value}"`);
  }
  return limit;
}

function parseStates(values: string[] | undefined): RunState[] | undefined {
  if (!values) return undefined;
  for (const value of values) {
    if (!(RUN_STATES as readonly string[]).includes(value)) {
      throw new UsageError(`--state expects one of ${RUN_STATES.join(', ')}; got "${value}"`);
    }
  }
  return values as RunState[];
}

/** `weft runs [RUN_ID]`: recent runs, newest first, or one run in detail. */
export async function runsCommand(
  ctx: CliContext,
  runId: string | undefined,
  options: RunsOptions,
): Promise<number> {
  const limit = parseLimit(options.limit);
  const states = parseStates(options.state);
  const missing = await ctx.missingStore();
  if (missing !== null) {
    if (runId) throw runNotFound(runId, missing);
    ctx.io.stdout(options.format === 'json' ? '[]\n' : `no runs yet in ${missing}\n`);
    return 0;
  }
  const store = await ctx.recoveredStore();
  if (runId) return showRun(ctx, store, runId, options.format);
  const runs = await store.listRuns({
    limit,
    ...(options.pipeline ? { pipeline: options.pipeline } : {}),
    ...(states ? { states } : {}),
  });
  if (options.format === 'json') {
    ctx.io.stdout(
      JSON.stringify(
        runs.map((run) => runToJson(run)),
        null,
        2,
      ) + '\n',
    );
    return 0;
  }
  const c = ctx.io.colors;
  if (runs.length === 0) {
    ctx.io.stdout(`no runs yet in ${store.location}\n`);
    return 0;
  }
  const rows = [
    ['RUN', 'PIPELINE', 'STATE', 'TRIGGER', 'STARTED', 'DURATION'].map((h) => c.bold(h)),
    ...runs.map((run) => {
      const ms = durationBetween(run.startedAt, run.finishedAt);
      return [
        run.id,
        run.pipeline,
        paintState(run.state, c),
        run.trigger + (run.scheduledFor ? c.dim(` ${run.scheduledFor}`) : ''),
        run.startedAt ?? '-',
        ms === null ? '-' : formatDuration(ms),
      ];
    }),
  ];
  ctx.io.stdout(renderTable(rows) + '\n');
  return 0;
}

/**
 * The run a command was given: a run id, or the request id `weft trigger` printed (once the
 * server has created its run).
 */
export async function requireRun(store: RunStore, runId: string) {
  let run = await store.getRun(runId);
  if (!run && runId.startsWith('q_')) {
    const request = await store.getRunRequest(runId);
    if (request?.runId) run = await store.getRun(request.runId);
    else if (request) {
      throw new WeftError('RUN_NOT_FOUND', `request ${runId} has no run yet (${request.state})`, {
        hint: request.state === 'pending' ? 'is `weft serve` running on this store?' : undefined,
      });
    }
  }
  if (!run) throw runNotFound(runId, store.location);
  return run;
}

export function runNotFound(runId: string, location: string): WeftError {
  return new WeftError('RUN_NOT_FOUND', `no run ${runId} in ${location}`, {
    hint: "'weft runs' lists the runs in this store",
  });
}

/** For commands given a run id: fails without creating a store that does not exist yet. */
export async function requireStoreFor(ctx: CliContext, runId: string): Promise<void> {
  const missing = await ctx.missingStore();
  if (missing !== null) throw runNotFound(runId, missing);
}

async function showRun(
  ctx: CliContext,
  store: RunStore,
  runId: string,
  format: 'text' | 'json',
): Promise<number> {
  const run = await requireRun(store, runId);
  runId = run.id;
  const tasks = await store.getTaskRuns(runId);
  const attempts = await store.getAttempts(runId);
  if (format === 'json') {
    ctx.io.stdout(
      JSON.stringify(
        {
          ...runToJson(run),
          tasks: tasks.map((task) =>
            taskRunToJson(
              task,
              attempts.filter((a) => a.task === task.task),
            ),
          ),
        },
        null,
        2,
      ) + '\n',
    );
    return 0;
  }
  const c = ctx.io.colors;
  const ms = durationBetween(run.startedAt, run.finishedAt);
  ctx.io.stdout(
    `${c.bold(run.pipeline)} run ${run.id}: ${paintState(run.state, c)}` +
      (ms === null ? '' : ` in ${formatDuration(ms)}`) +
      (run.attempt > 1 ? ` (run attempt ${run.attempt})` : '') +
      '\n',
  );
  if (run.error) ctx.io.stdout(`  ${c.red(run.error.message)}\n`);
  const rows = [
    ['TASK', 'STATE', 'ATTEMPTS', 'DURATION', 'DETAIL'].map((h) => c.bold(h)),
    ...tasks.map((task) => {
      const taskMs = durationBetween(task.startedAt, task.finishedAt);
      return [
        task.task,
        paintState(task.state, c),
        String(task.attempts),
        taskMs === null ? '-' : formatDuration(taskMs),
        task.error?.message.split('\n')[0] ?? task.reason ?? '',
      ];
    }),
  ];
  ctx.io.stdout(renderTable(rows, { indent: '  ' }) + '\n');
  const retried = attempts.filter((a) => a.attempt > 1 || a.state !== 'succeeded');
  if (retried.length > 0) {
    ctx.io.stdout(`${c.bold('attempts')}\n`);
    for (const a of retried) {
      ctx.io.stdout(
        `  ${a.task} #${a.attempt} ${paintState(a.state, c)}` +
          (a.delayMs ? c.dim(` after ${formatDuration(a.delayMs)}`) : '') +
          (a.error ? ` ${a.error.message.split('\n')[0]}` : '') +
          '\n',
      );
    }
  }
  ctx.io.stdout(c.dim(`logs: weft logs ${run.id} [TASK]\n`));
  return 0;
}
