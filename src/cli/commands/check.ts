import { existsSync } from 'node:fs';
// Loaded by every command already (the default SQLite store): importing it here costs nothing.
import Database from 'better-sqlite3';
import { UsageError } from '../../errors.js';
import type { HandlerRegistry } from '../../handlers/registry.js';
import type { ServiceName } from '../../handlers/types.js';
import { DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL } from '../../organism/connections.js';
import { findPipelineFiles } from '../../project/discover.js';
import { loadPipeline } from '../../project/load-pipeline.js';
import { openStore, redactUrl, resolveStoreSpec } from '../../store/open-store.js';
import type { QueueHealth } from '../../worker/queue-port.js';
import type { QueueProblem } from '../../worker/queue-health.js';
import type { CliContext } from '../context.js';
import { renderTable } from '../render/table.js';

export interface CheckOptions {
  format: 'text' | 'json';
  redisUrl?: string;
  databaseUrl?: string;
  timeout?: string;
}

export type CheckTarget = 'store' | ServiceName;

export type CheckResult = {
  target: CheckTarget;
  /** The store's kind (sqlite, postgres, memory); the server's name otherwise. */
  kind: string;
  /** Where it is: a file or a URL without its password. */
  location: string;
  reachable: boolean;
  /** Server version (Redis, PostgreSQL), or the store's schema version when easy to read. */
  version: string | null;
  error: string | null;
  /** Pipelines under PATH that cannot run without it. */
  neededBy: string[];
};

export type PipelineNeeds = { file: string; pipeline: string | null; services: ServiceName[] };

/**
 * The task queues of a PostgreSQL store: what is waiting and how many live workers take it.
 * `queues` is null when the store has no queue (SQLite, memory) or it could not be read (`error`).
 */
export type QueueCheck = { queues: QueueHealth[] | null; problems: QueueProblem[]; error: string | null };

const DEFAULT_TIMEOUT_MS = 2000;

/**
 * `weft check [PATH]`: is everything the pipelines under PATH need reachable? Probes the run store,
 * Redis and PostgreSQL (each bounded by a short timeout), prints what answered with its version,
 * and exits 1 when one that some pipeline needs did not. Which pipeline needs which server is
 * declared by its handlers (`Handler.services`), never guessed from names.
 */
export async function checkCommand(
  ctx: CliContext,
  path: string | undefined,
  options: CheckOptions,
): Promise<number> {
  const timeoutMs = parseTimeout(options.timeout);
  const registry = await ctx.registry();
  const pipelines = await pipelineNeeds(ctx, path, registry);
  const env = ctx.io.env;
  const redisUrl = options.redisUrl ?? env.REDIS_URL ?? DEFAULT_REDIS_URL;
  const databaseUrl = options.databaseUrl ?? env.DATABASE_URL ?? DEFAULT_DATABASE_URL;

  const [{ result: store, postgresUrl }, redis, postgres] = await Promise.all([
    probeStore(ctx, timeoutMs),
    probe('redis', 'redis', redactUrl(redisUrl), timeoutMs, (signal) =>
      redisVersion(redisUrl, timeoutMs, signal),
    ),
    probe('postgres', 'postgresql', redactUrl(databaseUrl), timeoutMs, () =>
      postgresVersion(databaseUrl, timeoutMs),
    ),
  ]);
  const named = (list: PipelineNeeds[]) => list.map((p) => p.pipeline ?? p.file);
  // Every run needs the store; a server only the pipelines whose handlers declare it.
  store.neededBy = named(pipelines);
  redis.neededBy = named(pipelines.filter((p) => p.services.includes('redis')));
  postgres.neededBy = named(pipelines.filter((p) => p.services.includes('postgres')));
  const results = [store, redis, postgres];
  const missing = results.filter((r) => !r.reachable && r.neededBy.length > 0);
  // On PostgreSQL a scheduler only enqueues: tasks waiting with no live worker never run.
  const queues: QueueCheck =
    postgresUrl !== null && store.reachable
      ? await checkQueues(postgresUrl, timeoutMs)
      : { queues: null, problems: [], error: null };
  const queuesOk = queues.problems.length === 0 && queues.error === null;
  const ok = missing.length === 0 && queuesOk;

  if (options.format === 'json') {
    ctx.io.stdout(
      JSON.stringify(
        {
          ok,
          checks: results.map(({ neededBy, ...rest }) => ({ ...rest, needed_by: neededBy })),
          pipelines,
          queues: queues.queues,
          queue_problems: queues.problems,
          queue_error: queues.error,
        },
        null,
        2,
      ) + '\n',
    );
  } else {
    const c = ctx.io.colors;
    const label = { store: 'run store', redis: 'Redis', postgres: 'PostgreSQL' } as const;
    const rows = [
      ['', 'STATUS', 'VERSION', 'LOCATION', 'NEEDED BY'].map((h) => c.bold(h)),
      ...results.map((r) => [
        label[r.target],
        r.reachable
          ? c.green('ok')
          : (r.neededBy.length > 0 ? c.red : c.yellow)(
              // Reached, but its schema is missing or old: a migration fixes it, not the network.
              /schema/.test(r.error ?? '') ? 'needs migrating' : 'unreachable',
            ),
        r.version ?? '-',
        r.target === 'store' ? `${r.kind} ${r.location}` : r.location,
        r.neededBy.length > 0 ? r.neededBy.join(', ') : c.dim('no pipeline'),
      ]),
    ];
    ctx.io.stdout(renderTable(rows, { indent: '  ' }) + '\n');
    for (const r of results.filter((x) => !x.reachable)) {
      ctx.io.stdout(
        `  ${r.neededBy.length > 0 ? c.red('✗') : c.yellow('!')} ${label[r.target]}: ${r.error}\n`,
      );
    }
    if (queues.queues !== null && queues.queues.length > 0) {
      const queueRows = [
        ['QUEUE', 'READY', 'DELAYED', 'RUNNING', 'WORKERS'].map((h) => c.bold(h)),
        ...queues.queues.map((q) => [
          q.queue,
          String(q.ready),
          String(q.delayed),
          String(q.running),
          q.workers > 0 ? String(q.workers) : q.ready + q.delayed > 0 ? c.red('0') : '0',
        ]),
      ];
      ctx.io.stdout('\n' + renderTable(queueRows, { indent: '  ' }) + '\n');
    }
    for (const problem of queues.problems) ctx.io.stdout(`  ${c.red('✗')} ${problem.message}\n`);
    if (queues.error !== null) ctx.io.stdout(`  ${c.red('✗')} task queues: ${queues.error}\n`);
    ctx.io.stdout(
      missing.length === 0
        ? `${c.green('✓')} everything the ${pipelines.length} pipeline(s) need is reachable\n`
        : `${c.red('✗')} not reachable but needed: ${missing.map((r) => label[r.target]).join(', ')}\n`,
    );
    if (queues.problems.length > 0) {
      ctx.io.stdout(
        `${c.red('✗')} tasks waiting with no live worker in queue(s): ${queues.problems.map((p) => p.queue).join(', ')}\n`,
      );
    }
  }
  return ok ? 0 : 1;
}

/** Queue health of a PostgreSQL store (its schema is current: probeStore checked). */
async function checkQueues(url: string, timeoutMs: number): Promise<QueueCheck> {
  const [{ createPostgresTaskQueue }, { queueHealth }] = await Promise.all([
    import('../../store/postgres/queue.js'),
    import('../../worker/queue-health.js'),
  ]);
  let timer: NodeJS.Timeout | undefined;
  let abandoned = false;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      abandoned = true;
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  const read = async () => {
    const queue = await createPostgresTaskQueue(url, { migrate: false, poolSize: 1 });
    try {
      if (abandoned) throw new Error('abandoned');
      return await queueHealth(queue);
    } finally {
      // Closed even when the answer came too late: an open pool would keep the process alive.
      await queue.close().catch(() => undefined);
    }
  };
  try {
    const health = await Promise.race([read(), timeout]);
    return { queues: health.queues, problems: health.problems, error: null };
  } catch (error) {
    return { queues: null, problems: [], error: describeError(error) };
  } finally {
    clearTimeout(timer);
  }
}

/** The services each pipeline under PATH needs, from its tasks' and hooks' handlers. */
async function pipelineNeeds(
  ctx: CliContext,
  path: string | undefined,
  registry: HandlerRegistry,
): Promise<PipelineNeeds[]> {
  const target = path ?? (await ctx.pipelinesDir());
  // No pipelines folder yet is not an error for a health check: nothing needs anything then.
  if (path === undefined && !existsSync(target)) return [];
  const needs: PipelineNeeds[] = [];
  for (const file of findPipelineFiles([target], ctx.cwd)) {
    const loaded = await loadPipeline(file, { registry });
    const handlers = new Set<string>();
    if (loaded.plan) {
      const plan = loaded.plan;
      for (const task of Object.values(plan.tasks)) {
        handlers.add(task.handler);
        for (const hook of task.onFailure) handlers.add(hook.handler);
      }
      for (const hook of [...plan.onFailure, ...plan.onSuccess, ...plan.onRecovery])
        handlers.add(hook.handler);
    } else {
      // An invalid pipeline still says which handlers it means to call; `weft validate` reports the rest.
      for (const task of Object.values(loaded.spec?.tasks ?? {}))
        if (task.handler) handlers.add(task.handler);
    }
    const services = new Set<ServiceName>();
    for (const name of handlers)
      for (const service of registry.get(name)?.services ?? []) services.add(service);
    needs.push({ file, pipeline: loaded.spec?.name ?? null, services: [...services].sort() });
  }
  return needs;
}

async function probe(
  target: CheckTarget,
  kind: string,
  location: string,
  timeoutMs: number,
  fn: (signal: AbortSignal) => Promise<string | null>,
): Promise<CheckResult> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    const version = await Promise.race([fn(controller.signal), timeout]);
    return { target, kind, location, reachable: true, version, error: null, neededBy: [] };
  } catch (error) {
    return {
      target,
      kind,
      location,
      reachable: false,
      version: null,
      error: describeError(error),
      neededBy: [],
    };
  } finally {
    clearTimeout(timer);
  }
}

/** The run store's probe, and its URL when it is PostgreSQL (it then has task queues). */
async function probeStore(
  ctx: CliContext,
  timeoutMs: number,
): Promise<{ result: CheckResult; postgresUrl: string | null }> {
  const { config, root } = await ctx.config();
  const spec = ctx.options.store ?? ctx.io.env.WEFT_STORE ?? config.store;
  const cwd = spec ? ctx.cwd : root;
  const target = resolveStoreSpec(spec || undefined, { cwd });
  switch (target.kind) {
    case 'memory':
      return {
        result: await probe('store', 'memory', ':memory:', timeoutMs, () => Promise.resolve(null)),
        postgresUrl: null,
      };
    case 'sqlite':
      return {
        result: await probe('store', 'sqlite', target.path, timeoutMs, () =>
          sqliteSchemaVersion(target.path),
        ),
        postgresUrl: null,
      };
    case 'postgres':
      return {
        result: await probe('store', 'postgres', redactUrl(target.url), timeoutMs, async () => {
          // readonly: checks the schema is current without migrating anything.
          const store = await openStore(target.url, { cwd, readonly: true });
          await store.close();
          return null;
        }),
        postgresUrl: target.url,
      };
  }
}

/** "schema N" of an existing SQLite store; a file not created yet is fine (the first run creates it). */
function sqliteSchemaVersion(path: string): Promise<string | null> {
  if (!existsSync(path)) return Promise.resolve('not created yet');
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare('SELECT MAX(version) AS version FROM schema_migrations').get() as
      | { version: number | null }
      | undefined;
    return Promise.resolve(row?.version == null ? null : `schema ${row.version}`);
  } finally {
    db.close();
  }
}

async function redisVersion(url: string, timeoutMs: number, signal: AbortSignal): Promise<string | null> {
  const { Redis } = await import('ioredis');
  // No retries, no offline queue: one attempt, answered or not within the timeout.
  const client = new Redis(url, {
    lazyConnect: true,
    // A little longer than the probe's own timeout, so the message says which limit was hit.
    connectTimeout: timeoutMs + 500,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  // ioredis rejects with "Connection is closed"; the socket's own error (ECONNREFUSED…) says more.
  let socketError: unknown;
  client.on('error', (error) => (socketError ??= error));
  signal.addEventListener('abort', () => client.disconnect(), { once: true });
  try {
    await client.connect();
    const info = await client.info('server');
    return /^redis_version:(.+)$/m.exec(info)?.[1]?.trim() ?? null;
  } catch (error) {
    throw socketError ?? error;
  } finally {
    client.disconnect();
  }
}

async function postgresVersion(url: string, timeoutMs: number): Promise<string | null> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: timeoutMs + 500,
    statement_timeout: timeoutMs,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const result = await client.query<{ server_version: string }>('SHOW server_version');
    return result.rows[0]?.server_version ?? null;
  } finally {
    await client.end().catch(() => undefined);
  }
}

function describeError(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return describeError(error.errors[0]);
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

function parseTimeout(value: string | undefined): number {
  if (value === undefined) return DEFAULT_TIMEOUT_MS;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--timeout expects milliseconds, got "${value}"`);
  return n;
}
