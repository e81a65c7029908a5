import { parseDuration } from '../../core/duration.js';
import { UsageError } from '../../errors.js';
import { resolveStoreSpec } from '../../store/open-store.js';
import { createWorker, type WorkerEvent } from '../../worker/worker.js';
import type { CliContext } from '../context.js';
import { onShutdownSignals } from '../shutdown.js';
import { parsePositiveInt } from './common.js';

export interface WorkerCommandOptions {
  queue?: string[];
  concurrency?: string;
  lease: string;
  grace: string;
  logFormat: 'text' | 'json';
}

function formatEvent(event: WorkerEvent, format: 'text' | 'json'): string {
  const at = new Date().toISOString();
  if (format === 'json') return `${JSON.stringify({ ts: at, ...event })}\n`;
  switch (event.type) {
    case 'worker:started':
      return `${at} worker ${event.worker} started: queues ${event.queues.join(', ')}, concurrency ${event.concurrency}\n`;
    case 'worker:stopped':
      return `${at} worker ${event.worker} stopped\n`;
    case 'worker:error':
      return `${at} worker ${event.worker} error: ${event.message}\n`;
    case 'lease:lost':
      return `${at} lost the lease on task "${event.task}" of run ${event.runId} (attempt ${event.attempt}); its result does not count\n`;
    case 'hook:lease-lost':
      return `${at} lost the lease on hook ${event.key} of run ${event.runId}; another worker may run it as well (hooks are at least once)\n`;
    case 'queue:reaped':
      return `${at} housekeeping: ${event.lost} lost attempt(s) recorded, ${event.cancelled} run(s) cancelled, ${event.resumed} run(s) resumed\n`;
    case 'task:started':
      return `${at} run ${event.runId} task "${event.task}" attempt ${event.attempt} started\n`;
    case 'task:finished':
      return `${at} run ${event.runId} task "${event.task}" attempt ${event.attempt} ${event.kind}${event.recorded ? '' : ' (not recorded)'}\n`;
  }
}

/**
 * `weft worker`: takes ready tasks of its queues from the PostgreSQL store that `weft serve
 * --store postgres://…` schedules into, runs them with the project's handlers, until SIGTERM or
 * SIGINT (tasks in progress get --grace, then go back to the queue).
 */
export async function workerCommand(ctx: CliContext, options: WorkerCommandOptions): Promise<number> {
  const leaseMs = parseDuration(options.lease);
  if (leaseMs === null || leaseMs < 100)
    throw new UsageError(`--lease expects a duration of 100ms or more, got "${options.lease}"`);
  const graceMs = parseDuration(options.grace);
  if (graceMs === null)
    throw new UsageError(`--grace expects a duration such as 30s, got "${options.grace}"`);
  const concurrency = parsePositiveInt('--concurrency', options.concurrency);
  const { config } = await ctx.config();
  const spec = ctx.options.store ?? ctx.io.env.WEFT_STORE ?? config.store;
  const target = resolveStoreSpec(spec || undefined, { cwd: ctx.cwd });
  if (target.kind !== 'postgres') {
    throw new UsageError('weft worker needs a PostgreSQL store', {
      hint: 'pass --store postgres://user@host/db (or set WEFT_STORE), the same store weft serve uses',
    });
  }
  const registry = await ctx.registry();
  const store = await ctx.store();
  const { createPostgresTaskQueue } = await import('../../store/postgres/queue.js');
  const queue = await createPostgresTaskQueue(target.url);
  const format = options.logFormat;
  const worker = createWorker({
    store,
    queue,
    registry,
    queues: options.queue && options.queue.length > 0 ? options.queue : ['default'],
    ...(concurrency !== undefined ? { concurrency } : {}),
    leaseMs,
    env: ctx.io.env,
    onEvent: (event) => {
      if (event.type === 'task:started' || event.type === 'task:finished') {
        if (format === 'json') ctx.io.stdout(formatEvent(event, format));
        return;
      }
      const line = formatEvent(event, format);
      if (event.type === 'worker:error') ctx.io.stderr(line);
      else ctx.io.stdout(line);
    },
  });
  const shutdown = onShutdownSignals(
    ctx.io,
    `stopping (no new tasks; tasks in progress get ${options.grace})`,
  );
  try {
    await worker.start();
    await shutdown.stopped;
    await worker.stop({ graceMs });
  } finally {
    shutdown.dispose();
    await queue.close();
  }
  return 0;
}
