import type { LogRecord } from '../../store/run-store.js';
import { isRunFinished } from '../../core/states.js';
import { logToJson } from '../../store/run-json.js';
import type { CliContext } from '../context.js';
import { requireRun, requireStoreFor } from './runs.js';

export interface LogsOptions {
  follow?: boolean;
  format: 'text' | 'json';
}

const FOLLOW_POLL_MS = 250;

/** `weft logs RUN_ID [TASK] [--follow]`: a run's stored log lines; --follow waits for more until the run ends. */
export async function logsCommand(
  ctx: CliContext,
  runId: string,
  task: string | undefined,
  options: LogsOptions,
): Promise<number> {
  await requireStoreFor(ctx, runId);
  const store = await ctx.recoveredStore();
  runId = (await requireRun(store, runId)).id;
  let afterSeq = 0;
  const print = (lines: LogRecord[]) => {
    for (const line of lines) {
      afterSeq = Math.max(afterSeq, line.seq);
      ctx.io.stdout(
        options.format === 'json' ? JSON.stringify(logToJson(line)) + '\n' : formatLine(ctx, line) + '\n',
      );
    }
  };
  for (;;) {
    const lines = await store.getLogs(runId, { afterSeq, ...(task ? { task } : {}) });
    print(lines);
    if (!options.follow) return 0;
    const run = await store.getRun(runId);
    if (!run || isRunFinished(run.state)) {
      print(await store.getLogs(runId, { afterSeq, ...(task ? { task } : {}) }));
      return 0;
    }
    await new Promise((resolve) => setTimeout(resolve, FOLLOW_POLL_MS));
  }
}

function formatLine(ctx: CliContext, line: LogRecord): string {
  const c = ctx.io.colors;
  const where = line.task ? `${line.task}${line.attempt ? `#${line.attempt}` : ''}` : 'run';
  const paint =
    line.level === 'error' || line.level === 'stderr'
      ? c.red
      : line.level === 'warn'
        ? c.yellow
        : (s: string) => s;
  return `${c.dim(line.ts)} ${c.cyan(where)} ${paint(line.message)}`;
}
