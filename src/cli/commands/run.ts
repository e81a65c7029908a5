import { formatDuration } from '../../core/duration.js';
import { createRun, executeRun, localOwner } from '../../engine/index.js';
import type { RunRecord, RunStore } from '../../store/run-store.js';
import { runToJson, taskRunToJson } from '../../store/run-json.js';
import type { CliContext } from '../context.js';
import { onShutdownSignals } from '../shutdown.js';
import { createRunProgress } from '../render/run-progress.js';
import { durationBetween, paintState } from '../render/states.js';
import { renderTable } from '../render/table.js';
import { loadPlanForCommand, paramsForCommand, parsePositiveInt } from './common.js';

export interface RunOptions {
  param?: Record<string, string>;
  concurrency?: string;
  format: 'text' | 'json';
  quiet?: boolean;
}

/** `weft run PIPELINE`: runs it now, in this process. Exit 0 when it succeeded, 1 otherwise. */
export async function runCommand(ctx: CliContext, pipeline: string, options: RunOptions): Promise<number> {
  const plan = await loadPlanForCommand(ctx, pipeline);
  const params = paramsForCommand(plan, options.param);
  const concurrency = parsePositiveInt('--concurrency', options.concurrency);
  const store = await ctx.recoveredStore();
  const run = await createRun(store, {
    plan,
    params,
    trigger: 'manual',
    now: Date.now(),
    owner: localOwner(),
    env: ctx.io.env,
  });
  return executeInForeground(ctx, store, run, {
    ...options,
    ...(concurrency ? { concurrencyN: concurrency } : {}),
  });
}

/**
 * Executes a run in this process with a live display, Ctrl-C handling and a closing summary.
 * Shared by `weft run` and `weft resume`.
 */
export async function executeInForeground(
  ctx: CliContext,
  store: RunStore,
  run: RunRecord,
  options: { format: 'text' | 'json'; quiet?: boolean; concurrencyN?: number },
): Promise<number> {
  const json = options.format === 'json';
  const tasksBefore = await store.getTaskRuns(run.id);
  const alreadySucceeded = new Set(tasksBefore.filter((t) => t.state === 'succeeded').map((t) => t.task));
  const progress = createRunProgress(ctx.io, run.plan, {
    quiet: json || options.quiet === true,
    alreadySucceeded,
  });
  const controller = new AbortController();
  // A second Ctrl-C leaves at once: the run stays `running` with a dead owner, so the next
  // command finds it interrupted and `weft resume` can finish it.
  const shutdown = onShutdownSignals(ctx.io, `cancelling run ${run.id} (press Ctrl-C again to exit at once)`);
  void shutdown.stopped.then((signal) => controller.abort(new Error(`cancelled by ${signal}`)));
  let final: RunRecord;
  try {
    final = await executeRun(run.id, {
      store,
      registry: await ctx.registry(),
      owner: localOwner(),
      env: ctx.io.env,
      signal: controller.signal,
      onEvent: progress.onEvent,
      ...(options.concurrencyN ? { concurrency: options.concurrencyN } : {}),
    });
  } finally {
    shutdown.dispose();
    await progress.stop();
  }
  if (json) {
    const tasks = await store.getTaskRuns(final.id);
    const attempts = await store.getAttempts(final.id);
    ctx.io.stdout(
      JSON.stringify(
        {
          ...runToJson(final),
          tasks: tasks.map((t) =>
            taskRunToJson(
              t,
              attempts.filter((a) => a.task === t.task),
            ),
          ),
        },
        null,
        2,
      ) + '\n',
    );
  } else if (!options.quiet) {
    await printSummary(ctx, store, final);
  }
  return final.state === 'succeeded' ? 0 : 1;
}

const SUMMARY_MAX_ROWS = 30;

async function printSummary(ctx: CliContext, store: RunStore, run: RunRecord): Promise<void> {
  const c = ctx.io.colors;
  const tasks = await store.getTaskRuns(run.id);
  // A big run shows its counts and the tasks that did not succeed; a small one shows every task.
  const shown =
    tasks.length <= SUMMARY_MAX_ROWS
      ? tasks
      : tasks.filter((t) => t.state !== 'succeeded').slice(0, SUMMARY_MAX_ROWS);
  const rows = [
    ['TASK', 'STATE', 'ATTEMPTS', 'DURATION', 'DETAIL'].map((h) => c.bold(h)),
    ...shown.map((t) => {
      const ms = durationBetween(t.startedAt, t.finishedAt);
      return [
        t.task,
        paintState(t.state, c),
        String(t.attempts),
        ms === null ? '-' : formatDuration(ms),
        t.error?.message.split('\n')[0] ?? t.reason ?? '',
      ];
    }),
  ];
  const counts = new Map<string, number>();
  for (const t of tasks) counts.set(t.state, (counts.get(t.state) ?? 0) + 1);
  const ms = durationBetween(run.startedAt, run.finishedAt);
  ctx.io.stdout('\n' + renderTable(rows, { indent: '  ' }) + '\n');
  ctx.io.stdout(
    `\n${c.bold(run.pipeline)} ${paintState(run.state, c)}` +
      (ms === null ? '' : ` in ${formatDuration(ms)}`) +
      ` — ${[...counts].map(([state, n]) => `${n} ${state}`).join(', ')}\n`,
  );
  // Each failed task with where it is in the YAML; the run's own error when no task explains it.
  const failed = tasks.filter((t) => t.state === 'failed');
  for (const t of failed) {
    const position = run.plan.tasks[t.task]?.position;
    const where = position ? ` ${c.dim(`(${position.file}:${position.line}:${position.column})`)}` : '';
    ctx.io.stdout(`  ${c.red('✖')} ${t.task}${where}: ${t.error?.message.split('\n')[0] ?? 'failed'}\n`);
  }
  if (failed.length === 0 && run.error && run.state !== 'succeeded') {
    ctx.io.stdout(`  ${c.red(run.error.message.split('\n')[0] ?? '')}\n`);
  }
  ctx.io.stdout(
    `${c.dim('run id:')} ${run.id}  ${c.dim('store:')} ${store.location}${store.kind === 'sqlite' ? '' : ` (${store.kind})`}\n` +
      `${c.dim('logs:')}   weft logs ${run.id} [TASK]` +
      (run.state === 'failed' || run.state === 'cancelled'
        ? `\n${c.dim('retry:')}  weft resume ${run.id}`
        : '') +
      '\n',
  );
}
