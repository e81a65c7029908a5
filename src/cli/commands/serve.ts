import { UsageError } from '../../errors.js';
import { parseDuration } from '../../core/duration.js';
import { localOwner } from '../../engine/index.js';
import type { SchedulerEvent } from '../../schedule/events.js';
import { formatSchedulerEvent, type SchedulerLogFormat } from '../../schedule/log-format.js';
import { createPipelineWatcher } from '../../schedule/pipeline-watcher.js';
import { createScheduler } from '../../schedule/scheduler.js';
import type { CliContext } from '../context.js';
import { renderReports } from '../render/diagnostics.js';

export interface ServeOptions {
  logFormat: SchedulerLogFormat;
  grace: string;
}

/**
 * `weft serve [PATH]`: validates every pipeline, then runs them on their schedules (and the runs
 * `weft trigger` asks for) until SIGTERM or SIGINT, which stop it gracefully (exit 0). The
 * scheduler is a library object; this command only wires it to a folder, a store and stdout.
 */
export async function serveCommand(
  ctx: CliContext,
  path: string | undefined,
  options: ServeOptions,
): Promise<number> {
  const graceMs = parseDuration(options.grace);
  if (graceMs === null)
    throw new UsageError(`--grace expects a duration such as 30s or 2m, got "${options.grace}"`);
  const target = path ?? (await ctx.pipelinesDir());
  const registry = await ctx.registry();
  const log = (event: SchedulerEvent, at: number) => {
    const line = formatSchedulerEvent(event, at, options.logFormat);
    if (event.type === 'scheduler:error' || event.type === 'file:invalid') ctx.io.stderr(line);
    else ctx.io.stdout(line);
  };
  const watcher = createPipelineWatcher({ paths: [target], cwd: ctx.cwd, registry, onLog: log });
  let loads;
  try {
    loads = await watcher.load();
  } catch (error) {
    watcher.close();
    throw error;
  }
  if (loads.length === 0) {
    watcher.close();
    throw new UsageError(`no pipeline files (*.yaml, *.yml) found in ${target}`);
  }
  const invalid = loads.filter((l) => l.plan === null);
  if (invalid.length > 0) {
    watcher.close();
    ctx.io.stderr(
      renderReports(
        loads.map((l) => ({
          file: l.file,
          valid: l.plan !== null,
          pipeline: l.pipeline,
          diagnostics: l.diagnostics,
        })),
        'text',
        ctx.io.colors,
      ),
    );
    for (const l of invalid) if (l.problem) ctx.io.stderr(`${l.file}: ${l.problem}\n`);
    ctx.io.stderr(`weft serve did not start: ${invalid.length} pipeline file(s) are invalid\n`);
    return 1;
  }
  const store = await ctx.store();
  const scheduler = createScheduler({
    store,
    registry,
    pipelines: watcher,
    owner: localOwner(),
    onLog: log,
    engine: { env: ctx.io.env },
  });
  let stopRequested: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    stopRequested = resolve;
  });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals === 1) {
      ctx.io.stderr(`${signal}: stopping (no new runs; runs in progress get ${options.grace})\n`);
      stopRequested();
      return;
    }
    // A second signal: the user does not want to wait for the grace period. Runs still going
    // stay `running` with a dead owner; the next weft command marks them interrupted.
    ctx.io.stderr(`${signal} again: exiting now\n`);
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await scheduler.start();
    watcher.watch();
    await stopped;
    watcher.close();
    await scheduler.stop({ graceMs });
  } finally {
    watcher.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return 0;
}
