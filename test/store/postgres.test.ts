import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WeftError } from '../../src/errors.js';
import { LATEST_POSTGRES_SCHEMA_VERSION, migratePostgres } from '../../src/store/postgres/migrate.js';
import { createStorePool } from '../../src/store/postgres/pool.js';
import { createPostgresStore, type PostgresStoreOptions } from '../../src/store/postgres/postgres-store.js';
import type { NewRun, RunStore } from '../../src/store/run-store.js';
import { describeRunStoreConformance } from './conformance.js';
import { makePlan, makeWidePlan } from './plan-fixture.js';

const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const suffix = () => randomBytes(5).toString('hex');

async function postgresUp(): Promise<boolean> {
  const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 1500 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>, url = ADMIN_URL): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

// Outside CI a missing server skips loudly; in CI the suite runs (and fails): a missing service
// there is a failure, not a skip.
const available = (await postgresUp()) || Boolean(process.env.CI);
if (!available) {
  console.warn(
    `SKIPPED test/store/postgres.test.ts: PostgreSQL (${ADMIN_URL}) unreachable (set CI=1 to fail instead)`,
  );
}

/** One database per test file, dropped at the end; each store gets a schema of its own in it. */
let databaseUrl = '';
let databaseName = '';
const openStores: RunStore[] = [];

beforeAll(async () => {
  if (!available) return;
  databaseName = `weft_test_store_${suffix()}`;
  await admin((c) => c.query(`CREATE DATABASE ${databaseName}`));
  const url = new URL(ADMIN_URL);
  url.pathname = `/${databaseName}`;
  databaseUrl = url.toString();
});

afterAll(async () => {
  if (!available || !databaseName) return;
  await Promise.allSettled(openStores.splice(0).map((s) => s.close()));
  await admin((c) => c.query(`DROP DATABASE IF EXISTS ${databaseName} WITH (FORCE)`));
});

async function openStore(options: PostgresStoreOptions = {}): Promise<RunStore> {
  const store = await createPostgresStore(databaseUrl, { schema: `s_${suffix()}`, ...options });
  openStores.push(store);
  return store;
}

/** A client on the test database with its search_path on one schema. */
function schemaClient(schema: string): pg.Client {
  return new pg.Client({ connectionString: databaseUrl, options: `-c search_path=${schema}` });
}

async function rejection(promise: Promise<unknown>): Promise<WeftError> {
  const error = await promise.then(
    () => new Error('expected a rejection'),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(WeftError);
  return error as WeftError;
}

const plan = makePlan('demo', [
  ['extract', []],
  ['load', ['extract']],
]);
let runCounter = 0;
function newRun(overrides: Partial<NewRun> = {}): NewRun {
  runCounter += 1;
  return {
    id: `r_pg_${String(runCounter).padStart(5, '0')}`,
    pipeline: 'demo',
    plan,
    params: {},
    trigger: 'manual',
    scheduledFor: null,
    state: 'queued',
    owner: null,
    createdAt: new Date(Date.UTC(2025, 0, 1, 0, 0, runCounter)).toISOString(),
    ...overrides,
  };
}

describe.runIf(available)('PostgreSQL store', () => {
  // One schema for the conformance cases, emptied before each: migrating a fresh schema per case
  // would cost more than the cases themselves.
  const conformanceSchema = 's_conformance';
  describeRunStoreConformance('postgres', async () => {
    const store = await createPostgresStore(databaseUrl, { schema: conformanceSchema });
    await admin(
      (c) =>
        c.query(
          `TRUNCATE ${['plans', 'runs', 'task_runs', 'attempts', 'logs', 'hooks', 'fires', 'run_requests']
            .map((t) => `${conformanceSchema}.${t}`)
            .join(', ')} RESTART IDENTITY`,
        ),
      databaseUrl,
    );
    return { store, cleanup: () => store.close() };
  });

  afterEach(async () => {
    await Promise.allSettled(openStores.splice(0).map((s) => s.close()));
  });

  describe('opening', () => {
    it('names the database without its password and reports kind postgres', async () => {
      const url = new URL(databaseUrl);
      url.password = 's3cret';
      // trust auth: the password is ignored by the server, but must never be shown.
      const store = await createPostgresStore(url.toString(), { schema: `s_${suffix()}` });
      openStores.push(store);
      expect(store.kind).toBe('postgres');
      expect(store.location).not.toContain('s3cret');
      expect(store.location).toContain('***');
      expect(store.location).toContain(databaseName);
    });

    it('applies the migrations once when two stores open a new schema at the same time', async () => {
      const schema = `s_${suffix()}`;
      const [a, b] = await Promise.all([
        createPostgresStore(databaseUrl, { schema }),
        createPostgresStore(databaseUrl, { schema }),
      ]);
      openStores.push(a, b);
      const versions = await admin(
        (c) =>
          c.query<{ version: number; name: string }>(
            `SELECT version, name FROM ${schema}.weft_schema_migrations ORDER BY version`,
          ),
        databaseUrl,
      );
      expect(versions.rows).toEqual([
        { version: 1, name: 'initial' },
        { version: 2, name: 'schedule' },
        { version: 3, name: 'queue' },
        { version: 4, name: 'queue-limits' },
        { version: 5, name: 'request-reclaim' },
        { version: 6, name: 'retention' },
      ]);
      expect(LATEST_POSTGRES_SCHEMA_VERSION).toBe(6);
      // Both work against the same tables.
      const run = await a.createRun(newRun());
      expect((await b.getRun(run.id))?.id).toBe(run.id);
      // A third migration of the same schema finds nothing to do.
      const pool = createStorePool(databaseUrl, { schema });
      try {
        expect(await migratePostgres(pool)).toEqual({ from: 6, to: 6, applied: [] });
      } finally {
        await pool.end();
      }
    });

    it('refuses a database migrated by a newer weft', async () => {
      const schema = `s_${suffix()}`;
      openStores.push(await createPostgresStore(databaseUrl, { schema }));
      await admin(
        (c) => c.query(`INSERT INTO ${schema}.weft_schema_migrations (version, name) VALUES (999, 'future')`),
        databaseUrl,
      );
      const error = await rejection(createPostgresStore(databaseUrl, { schema }));
      expect(error.code).toBe('STORE_FAILED');
      expect(error.message).toContain('newer weft (schema version 999');
      expect(error.message).toContain(databaseName);
      const unmigrated = await rejection(createPostgresStore(databaseUrl, { schema, migrate: false }));
      expect(unmigrated.message).toContain('schema version 999');
    });

    it('without migrating, refuses a schema that is not current', async () => {
      const error = await rejection(
        createPostgresStore(databaseUrl, { schema: `s_${suffix()}`, migrate: false }),
      );
      expect(error.code).toBe('STORE_FAILED');
      expect(error.hint).toContain('weft db migrate');
    });

    it('rejects with STORE_FAILED and a hint when the server cannot be reached', async () => {
      const error = await rejection(createPostgresStore('postgres://weft:pw@127.0.0.1:1/weft'));
      expect(error.code).toBe('STORE_FAILED');
      expect(error.message).toContain('127.0.0.1:1');
      expect(error.message).not.toContain(':pw@');
      expect(error.hint).toBeDefined();
    });
  });

  describe('group commit', () => {
    it('commits many concurrent small writes in far fewer transactions than writes', async () => {
      const store = await openStore();
      const run = await store.createRun({ ...newRun(), plan: makeWidePlan('wide', 500) });
      await store.flush();
      const commits = () => (store as unknown as { commits: number }).commits;
      const before = commits();
      const writes: Promise<unknown>[] = [];
      for (const task of run.plan.order) {
        writes.push(
          store.updateTaskRun(run.id, task, { state: 'running', attempts: 1 }, { states: ['pending'] }),
        );
        writes.push(
          store.insertAttempt({
            runId: run.id,
            task,
            attempt: 1,
            state: 'running',
            delayMs: 0,
            startedAt: '2025-01-01T00:00:00.000Z',
            finishedAt: null,
            error: null,
            worker: 'w',
            pid: null,
          }),
        );
      }
      const results = await Promise.all(writes);
      expect(results.filter((r) => r === true)).toHaveLength(500);
      expect(commits() - before).toBeLessThanOrEqual(2);
      const tasks = await store.getTaskRuns(run.id);
      expect(tasks.every((t) => t.state === 'running' && t.attempts === 1)).toBe(true);
      expect(await store.getAttempts(run.id)).toHaveLength(500);
    });

    it('writes many concurrent writes with few server-side transactions (distinct xmin)', async () => {
      const schema = `s_${suffix()}`;
      const store = await openStore({ schema });
      const run = await store.createRun({ ...newRun(), plan: makeWidePlan('wide', 300) });
      const writes: Promise<unknown>[] = [];
      for (const task of run.plan.order) {
        writes.push(store.updateTaskRun(run.id, task, { state: 'skipped', reason: 'test' }));
        writes.push(
          store.appendLogs([
            { runId: run.id, task, attempt: null, ts: run.createdAt, level: 'info', message: task },
          ]),
        );
      }
      await Promise.all(writes);
      // Every row version carries the id of the transaction that wrote it (xmin): counting them
      // counts the server's transactions, whatever else runs on the server.
      const client = schemaClient(schema);
      await client.connect();
      try {
        const r = await client.query<{ tasks: number; logs: number; rows: number }>(
          `SELECT (SELECT count(DISTINCT xmin::text)::int FROM task_runs WHERE run_id = $1) AS tasks,
                  (SELECT count(DISTINCT xmin::text)::int FROM logs WHERE run_id = $1) AS logs,
                  (SELECT count(*)::int FROM logs WHERE run_id = $1) AS rows`,
          [run.id],
        );
        expect(r.rows[0]!.rows).toBe(300);
        // 600 writes issued together: one or two transactions, not hundreds.
        expect(r.rows[0]!.tasks).toBeLessThanOrEqual(2);
        expect(r.rows[0]!.logs).toBeLessThanOrEqual(2);
      } finally {
        await client.end();
      }
      expect((await store.getLogs(run.id)).map((l) => l.message)).toEqual(run.plan.order);
    });

    it('keeps issue order for writes to one row inside one batch', async () => {
      const store = await openStore();
      const run = await store.createRun(newRun());
      const results = await Promise.all([
        store.insertAttempt({
          runId: run.id,
          task: 'extract',
          attempt: 1,
          state: 'running',
          delayMs: 0,
          startedAt: run.createdAt,
          finishedAt: null,
          error: null,
          worker: null,
          pid: null,
        }),
        store.updateAttempt(run.id, 'extract', 1, { state: 'failed' }, { states: ['running'] }),
        store.updateAttempt(run.id, 'extract', 1, { state: 'succeeded' }, { states: ['running'] }),
        store.updateRun(run.id, { state: 'running', owner: 'a' }, { states: ['queued'] }),
        store.updateRun(run.id, { owner: 'b' }, { owner: 'a' }),
        store.updateRun(run.id, { owner: 'c' }, { owner: 'a' }),
      ]);
      expect(results).toEqual([undefined, true, false, true, true, false]);
      expect((await store.getAttempts(run.id))[0]!.state).toBe('failed');
      expect((await store.getRun(run.id))!.owner).toBe('b');
    });

    it('rejects only the write that failed and commits the rest of its batch', async () => {
      const store = await openStore();
      const at = '2025-01-01T00:00:00.000Z';
      const run = await store.createRun(newRun({ scheduledFor: at }));
      const results = await Promise.allSettled([
        store.updateTaskRun(run.id, 'extract', { state: 'running' }),
        store.createRun(newRun({ scheduledFor: at })),
        store.appendLogs([
          { runId: 'r_missing', task: null, attempt: null, ts: at, level: 'info', message: 'x' },
        ]),
        // A value the database refuses (not a time) fails its write alone.
        store.updateTaskRun(run.id, 'extract', { startedAt: 'not a time' }),
        store.updateTaskRun(run.id, 'load', { state: 'skipped' }),
      ]);
      expect(results.map((r) => r.status)).toEqual([
        'fulfilled',
        'rejected',
        'rejected',
        'rejected',
        'fulfilled',
      ]);
      expect(((results[1] as PromiseRejectedResult).reason as WeftError).code).toBe('RUN_DUPLICATE');
      expect(((results[2] as PromiseRejectedResult).reason as WeftError).code).toBe('STORE_FAILED');
      expect(((results[3] as PromiseRejectedResult).reason as WeftError).code).toBe('STORE_FAILED');
      expect((await store.getTaskRuns(run.id)).map((t) => t.state)).toEqual(['running', 'skipped']);
      expect(await store.listRuns()).toHaveLength(1);
    });

    it('commits writes still queued when the store is closed', async () => {
      const schema = `s_${suffix()}`;
      const store = await createPostgresStore(databaseUrl, { schema });
      const run = await store.createRun(newRun());
      const pending = store.updateRun(run.id, { state: 'running' });
      await store.close();
      expect(await pending).toBe(true);
      const reopened = await openStore({ schema });
      expect((await reopened.getRun(run.id))!.state).toBe('running');
    });

    it('creates a 10,000-task run with one insert of its task runs', async () => {
      const store = await openStore();
      const run = await store.createRun({ ...newRun(), plan: makeWidePlan('huge', 10_000) });
      const tasks = await store.getTaskRuns(run.id);
      expect(tasks).toHaveLength(10_000);
      expect(tasks[9_999]!.task).toBe('t09999');
      // A second run of the same plan does not store it again.
      await store.createRun({ ...newRun(), plan: run.plan });
    });
  });

  describe('two stores on one schema', () => {
    it('lets exactly one of two racing fenced updates win, across stores', async () => {
      const schema = `s_${suffix()}`;
      const a = await openStore({ schema });
      const b = await openStore({ schema });
      for (let i = 0; i < 5; i++) {
        const run = await a.createRun(newRun());
        const results = await Promise.all([
          a.updateRun(run.id, { state: 'running', owner: 'a' }, { states: ['queued'] }),
          b.updateRun(run.id, { state: 'running', owner: 'b' }, { states: ['queued'] }),
          a.updateTaskRun(
            run.id,
            'extract',
            { state: 'running', attempts: 1 },
            { states: ['pending'], attempts: 0 },
          ),
          b.updateTaskRun(
            run.id,
            'extract',
            { state: 'running', attempts: 1 },
            { states: ['pending'], attempts: 0 },
          ),
        ]);
        expect(results.slice(0, 2).filter(Boolean)).toHaveLength(1);
        expect(results.slice(2).filter(Boolean)).toHaveLength(1);
        const winner = results[0] ? 'a' : 'b';
        expect((await b.getRun(run.id))!.owner).toBe(winner);
      }
    });

    it('keeps log seqs increasing in commit order when two stores append side by side', async () => {
      const schema = `s_${suffix()}`;
      const a = await openStore({ schema });
      const b = await openStore({ schema });
      const run = await a.createRun(newRun());
      const writes: Promise<void>[] = [];
      for (let i = 0; i < 200; i++) {
        const store = i % 2 === 0 ? a : b;
        writes.push(
          store.appendLogs([
            { runId: run.id, task: null, attempt: null, ts: run.createdAt, level: 'info', message: `m${i}` },
          ]),
        );
        if (i % 40 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      await Promise.all(writes);
      const logs = await a.getLogs(run.id);
      expect(logs).toHaveLength(200);
      expect(new Set(logs.map((l) => l.seq)).size).toBe(200);
      // Each store's own lines keep their issue order.
      const mine = logs
        .filter((l) => Number(l.message.slice(1)) % 2 === 0)
        .map((l) => Number(l.message.slice(1)));
      expect(mine).toEqual([...mine].sort((x, y) => x - y));
    });

    it('claims each run request once across stores', async () => {
      const schema = `s_${suffix()}`;
      const a = await openStore({ schema });
      const b = await openStore({ schema });
      for (let i = 0; i < 20; i++) {
        await a.requestRun({
          id: `q_${String(i).padStart(2, '0')}`,
          pipeline: 'demo',
          params: {},
          requestedAt: new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString(),
        });
      }
      const claims = await Promise.all([
        a.claimRunRequests(7, 'a', '2025-01-02T00:00:00.000Z'),
        b.claimRunRequests(7, 'b', '2025-01-02T00:00:00.000Z'),
        a.claimRunRequests(7, 'a', '2025-01-02T00:00:00.000Z'),
        b.claimRunRequests(7, 'b', '2025-01-02T00:00:00.000Z'),
      ]);
      const ids = claims.flat().map((r) => r.id);
      expect(ids).toHaveLength(20);
      expect(new Set(ids).size).toBe(20);
    });
  });

  describe('prune', () => {
    it('also deletes what the task queue still holds of a pruned run, and nothing of a kept one', async () => {
      const schema = `s_${suffix()}`;
      const store = await openStore({ schema });
      const old = '2025-01-01T00:00:00.000Z';
      const gone = await store.createRun(newRun());
      // The newest success stays (hooks count failures back to it): this one, not `gone`.
      const later = await store.createRun(newRun());
      const kept = await store.createRun(newRun());
      await store.updateRun(gone.id, { state: 'succeeded', finishedAt: old });
      await store.updateRun(later.id, { state: 'succeeded', finishedAt: '2025-03-01T00:00:00.000Z' });
      await store.updateRun(kept.id, { state: 'running' });
      const client = schemaClient(schema);
      await client.connect();
      const queueRows = async (runId: string) =>
        (
          await client.query<{ n: number }>(
            `SELECT (SELECT count(*) FROM queue_runs WHERE run_id = $1)
                  + (SELECT count(*) FROM queue_tasks WHERE run_id = $1)
                  + (SELECT count(*) FROM queue_hooks WHERE run_id = $1) AS n`,
            [runId],
          )
        ).rows[0]!.n;
      try {
        for (const id of [gone.id, kept.id]) {
          await client.query(
            `INSERT INTO queue_runs (run_id, states, first_attempt) VALUES ($1, 'ss', 1);
             INSERT INTO queue_tasks (run_id, task, queue, state, available_at) VALUES ($1, 'extract', 'default', 'ready', now());
             INSERT INTO queue_hooks (run_id, key) VALUES ($1, 'run_failure.0.1')`.replace(/\$1/g, `'${id}'`),
          );
        }
        expect(Number(await queueRows(gone.id))).toBe(3);
        expect(await store.prune({ before: '2025-02-01T00:00:00.000Z' })).toEqual({
          runs: 1,
          fires: 0,
          runRequests: 0,
        });
        expect(Number(await queueRows(gone.id))).toBe(0);
        expect(Number(await queueRows(kept.id))).toBe(3);
      } finally {
        await client.end();
      }
    });
  });

  describe('data', () => {
    it('stores the raw SQL shapes: timestamptz times, json kept as written, plans once', async () => {
      const schema = `s_${suffix()}`;
      const store = await openStore({ schema });
      const run = await store.createRun(newRun({ params: { zeta: 1, alpha: 2 } }));
      await store.createRun(newRun());
      const client = schemaClient(schema);
      await client.connect();
      try {
        const row = await client.query<{ params: string; created: string; plans: string }>(
          `SELECT params::text AS params, pg_typeof(created_at)::text AS created,
             (SELECT count(*)::text FROM plans) AS plans FROM runs WHERE id = $1`,
          [run.id],
        );
        expect(row.rows[0]).toEqual({
          params: '{"zeta":1,"alpha":2}',
          created: 'timestamp with time zone',
          plans: '1',
        });
      } finally {
        await client.end();
      }
      expect(Object.keys((await store.getRun(run.id))!.params)).toEqual(['zeta', 'alpha']);
    });
  });
});
