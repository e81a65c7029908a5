import { UsageError } from '../../errors.js';
import {
  createScaledClock,
  parseTestClock,
  systemClock,
  TEST_CLOCK_ENV,
  TEST_CLOCK_FORM,
  type Clock,
} from '../../core/clock.js';
import { parseDuration } from '../../core/duration.js';
import { localOwner } from '../../engine/index.js';
import type { SchedulerEvent } from '../../schedule/events.js';
import { formatSchedulerEvent, type SchedulerLogFormat } from '../../schedule/log-format.js';
import { createPipelineWatcher } from '../../schedule/pipeline-watcher.js';
import { createScheduler } from '../../schedule/scheduler.js';
import { readFileSync } from 'node:fs';
import { basename, extname, relative, resolve } from 'node:path';
import type { Plan } from '../../compile/plan.js';
import {
  API_TOKEN_ENV,
  checkBindSecurity,
  createHttpServer,
  type PipelineEntry,
} from '../../server/index.js';
import type { FileLoad } from '../../schedule/pipeline-watcher.js';
import { resolveStoreSpec } from '../../store/open-store.js';
import { startRetention } from '../../store/retention.js';
import { queueHealth } from '../../worker/queue-health.js';
import type { TaskQueue } from '../../worker/queue-port.js';
import type { CliContext } from '../context.js';
import { onShutdownSignals } from '../shutdown.js';
import { renderReports } from '../render/diagnostics.js';
import { describePrune, parseRetention } from './prune.js';
import { resolveServeSettings, type ServeSetting } from './serve-settings.js';

/**
 * The flags as commander parsed them. Only `http` is read as is: the settings come from
 * resolveServeSettings, given which of these were typed (the `flag` argument of serveCommand).
 */
export interface ServeOptions {
  logFormat: SchedulerLogFormat;
  grace: string;
  port: string;
  host: string;
  /** `--no-http`: schedule only, no dashboard or API. */
  http: boolean;
  /** `--retain 30d`: prune the history older than this every hour. */
  retain?: string;
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
  /** A setting's value when given as a flag (not a default or the environment). */
  flag: (key: ServeSetting) => string | undefined = () => undefined,
): Promise<number> {
  const { config, file, root } = await ctx.config();
  const settings = resolveServeSettings({
    flag,
    env: ctx.io.env,
    config,
    configName: file ? relative(root, file) : 'weft.config.ts',
  });
  const port = Number(settings.port.value);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new UsageError(
      `${settings.port.from} expects a port number from 0 to 65535, got "${settings.port.value}"`,
    );
  }
  const host = settings.host.value!;
  const logFormat = settings.logFormat.value as SchedulerLogFormat;
  const grace = settings.grace.value!;
  const token = ctx.io.env[API_TOKEN_ENV] || undefined;
  // Before anything else starts: a dashboard reachable from the network must have a token.
  if (options.http) {
    try {
      checkBindSecurity(host, token);
    } catch (error) {
      // Say where the address came from: a weft.config.ts or a WEFT_HOST set long ago.
      if (
        error instanceof UsageError &&
        settings.host.source !== 'flag' &&
        settings.host.source !== 'default'
      )
        throw new UsageError(`${error.message} (host from ${settings.host.from})`, {
          ...(error.hint ? { hint: error.hint } : {}),
        });
      throw error;
    }
  }
  const graceMs = parseDuration(grace);
  if (graceMs === null)
    throw new UsageError(`${settings.grace.from} expects a duration such as 30s or 2m, got "${grace}"`);
  const retain = settings.retain.value;
  const retainMs = retain === null ? null : parseRetention(settings.retain.from, retain);
  const clock = testClock(ctx.io.env[TEST_CLOCK_ENV]);
  const target = path ?? (await ctx.pipelinesDir());
  const registry = await ctx.registry();
  const log = (event: SchedulerEvent, at: number) => {
    const line = formatSchedulerEvent(event, at, logFormat);
    if (event.type === 'scheduler:error' || event.type === 'file:invalid') ctx.io.stderr(line);
    else ctx.io.stdout(line);
  };
  // The watcher stamps its lines with real time; the scheduler's clock instead, so that under
  // WEFT_TEST_CLOCK every line of this log is on one timeline.
  const watcher = createPipelineWatcher({
    paths: [target],
    cwd: ctx.cwd,
    registry,
    onLog: (event) => log(event, (clock ?? systemClock).now()),
  });
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
  // On PostgreSQL, runs go to the task queue for `weft worker` processes instead of running here.
  // The server's own lines follow --log-format like the scheduler's, so a JSON log stays parseable.
  const say = (event: string, message: string, isError = false) => {
    const at = new Date().toISOString();
    const line = logFormat === 'json' ? JSON.stringify({ ts: at, event, message }) : `${at} ${message}`;
    (isError ? ctx.io.stderr : ctx.io.stdout)(`${line}\n`);
  };
  const distributed = store.kind === 'postgres' ? await startQueueDuties(ctx, say) : null;
  const scheduler = createScheduler({
    store,
    registry,
    pipelines: watcher,
    owner: localOwner(),
    onLog: log,
    ...(clock ? { clock } : {}),
    engine: { env: ctx.io.env },
    recoverUncreatedRuns: true,
    ...(distributed ? { queue: distributed.queue } : {}),
  });
  const server = options.http
    ? createHttpServer({
        store,
        pipelines: () => pipelineEntries(watcher.current(), loads),
        scheduler,
        ...(token ? { token } : {}),
        env: ctx.io.env,
        logger: {
          info: (message) => say('http:info', message),
          error: (message, error) =>
            say('http:error', `${message}${error instanceof Error ? `: ${error.message}` : ''}`, true),
        },
      })
    : null;
  const shutdown = onShutdownSignals(ctx.io, `stopping (no new runs; runs in progress get ${grace})`);
  let retention: { stop: () => Promise<void> } | null = null;
  let started = false;
  try {
    await scheduler.start();
    started = true;
    watcher.watch();
    if (server) {
      const { url } = await listen(server, port, host, settings.port.from);
      say('http:listening', `dashboard and API on ${url}${token ? ' (token required)' : ''}`);
    }
    if (retainMs !== null) {
      retention = startRetention({
        store,
        retainMs,
        now: () => (clock ?? systemClock).now(),
        onPruned: (report, before) => {
          if (report.runs + report.fires + report.runRequests > 0)
            say('store:pruned', describePrune(report, before, false));
        },
        onError: (error) =>
          say(
            'store:error',
            `pruning failed: ${error instanceof Error ? error.message : String(error)}`,
            true,
          ),
      });
    }
    await shutdown.stopped;
    watcher.close();
    await server?.close();
    await scheduler.stop({ graceMs });
    started = false;
  } finally {
    watcher.close();
    shutdown.dispose();
    await retention?.stop();
    // Failed on the way up (a port taken): nothing may go on using the store once it closes.
    if (started) await scheduler.stop({ graceMs: 0 });
    await distributed?.stop();
  }
  return 0;
}

/** Listens, or says which setting names a port or address it cannot have (taken, not local). */
async function listen(
  server: { listen: (port: number, host: string) => Promise<{ url: string }> },
  port: number,
  host: string,
  portFrom: string,
): Promise<{ url: string }> {
  try {
    return await server.listen(port, host);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL' || code === 'EACCES') {
      const why =
        code === 'EADDRINUSE'
          ? 'is in use'
          : code === 'EACCES'
            ? 'needs privileges'
            : 'is not an address of this machine';
      throw new UsageError(`cannot listen on ${host}:${port} (${portFrom}): it ${why}`, {
        hint: 'choose another with --port (0 picks a free one), or stop what holds it',
      });
    }
    throw error;
  }
}

/**
 * WEFT_TEST_CLOCK (the reliability suite): the scheduler, and through it the engine, run on a
 * scaled simulated clock, so several `weft serve` processes live through hours of schedule in
 * seconds on one timeline. Everything that decides what fires reads it: due fires and catch-up,
 * fire records, run creation and scheduled times, interrupted-run recovery, run requests, run and
 * heartbeat timestamps, every scheduler log line. What measures real liveness stays on real time:
 * the poll and heartbeat intervals, the stop grace, the PostgreSQL queue's leases and
 * housekeeping and the times it stamps on the runs workers execute (SQL now(), shared with `weft
 * worker`), the HTTP server's views, and this command's own lines about the server and the queue.
 */
function testClock(value: string | undefined): Clock | undefined {
  if (value === undefined || value === '') return undefined;
  const parsed = parseTestClock(value);
  if ('problem' in parsed) {
    throw new UsageError(`${TEST_CLOCK_ENV}: ${parsed.problem}, got "${value}"`, {
      hint: `${TEST_CLOCK_ENV} (tests only) is ${TEST_CLOCK_FORM}, e.g. 2025-01-01T00:00:00Z@${Date.now()}x720`,
    });
  }
  return createScaledClock(parsed.options);
}

const HEALTH_EVERY_MS = 15_000;
const REAP_EVERY_MS = 1_000;

/**
 * What a scheduler on PostgreSQL does besides scheduling: it hands runs to the task queue, does
 * the queue's housekeeping like any worker (leases of dead workers, cancel requests, run retries),
 * and says in its log when tasks wait with no live worker to take them.
 */
async function startQueueDuties(
  ctx: CliContext,
  say: (event: string, message: string, isError?: boolean) => void,
): Promise<{ queue: TaskQueue; stop: () => Promise<void> }> {
  const { config } = await ctx.config();
  const spec = ctx.options.store ?? ctx.io.env.WEFT_STORE ?? config.store;
  const target = resolveStoreSpec(spec || undefined, { cwd: ctx.cwd });
  if (target.kind !== 'postgres') throw new UsageError('the PostgreSQL store has no postgres:// URL');
  const { createPostgresTaskQueue } = await import('../../store/postgres/queue.js');
  const queue = await createPostgresTaskQueue(target.url);
  let warned = new Set<string>();
  const check = async (first: boolean) => {
    const { queues, problems } = await queueHealth(queue);
    if (first && !queues.some((q) => q.workers > 0)) {
      say(
        'queue:no_worker',
        'no weft worker is running on this store; runs will wait in the queue until one starts',
        true,
      );
    }
    for (const problem of problems)
      if (!warned.has(problem.queue)) say('queue:waiting', problem.message, true);
    warned = new Set(problems.map((p) => p.queue));
  };
  let busy = false;
  const reap = setInterval(() => {
    if (busy) return;
    busy = true;
    queue
      .reap()
      .catch((error: unknown) =>
        say(
          'queue:error',
          `queue housekeeping failed: ${error instanceof Error ? error.message : String(error)}`,
          true,
        ),
      )
      .finally(() => {
        busy = false;
      });
  }, REAP_EVERY_MS);
  const health = setInterval(() => void check(false).catch(() => undefined), HEALTH_EVERY_MS);
  reap.unref();
  health.unref();
  await check(true).catch(() => undefined);
  return {
    queue,
    stop: async () => {
      clearInterval(reap);
      clearInterval(health);
      await queue.close();
    },
  };
}

/**
 * What the dashboard lists: every file the watcher knows, valid or not, with its source text. The
 * watcher's current plans win over the first load, so an edit shows at once.
 */
function pipelineEntries(current: readonly Plan[], loads: readonly FileLoad[]): PipelineEntry[] {
  const byFile = new Map<string, PipelineEntry>();
  for (const load of loads) {
    byFile.set(resolve(load.file), {
      file: load.file,
      name: load.pipeline ?? basename(load.file, extname(load.file)),
      plan: load.plan,
      diagnostics: load.diagnostics,
      source: readSource(load.file),
    });
  }
  for (const plan of current) {
    const key = resolve(plan.file);
    byFile.set(key, {
      file: plan.file,
      name: plan.name,
      plan,
      diagnostics: [],
      source: readSource(plan.file),
    });
  }
  return [...byFile.values()].sort((a, b) => a.name.localeCompare(b.name));
}

function readSource(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}
