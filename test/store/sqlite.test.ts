import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { WeftError } from '../../src/errors.js';
import type { RunStore } from '../../src/store/run-store.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { LATEST_SCHEMA_VERSION } from '../../src/store/sqlite/migrate.js';
import { describeRunStoreConformance } from './conformance.js';
import { makePlan } from './plan-fixture.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'weft-sqlite-'));
}

describeRunStoreConformance('sqlite', () => {
  const dir = tempDir();
  const store = createSqliteStore(join(dir, 'weft.db'));
  return Promise.resolve({
    store,
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  });
});

const plan = makePlan('demo', [
  ['extract', []],
  ['load', ['extract']],
]);
let runCounter = 0;
const newRun = (overrides: { scheduledFor?: string | null; pipeline?: string } = {}) => ({
  id: `r_sql_${++runCounter}`,
  pipeline: overrides.pipeline ?? 'demo',
  plan,
  params: {},
  trigger: 'manual' as const,
  scheduledFor: overrides.scheduledFor ?? null,
  state: 'queued' as const,
  owner: null,
  createdAt: new Date(Date.UTC(2025, 0, 1, 0, 0, runCounter)).toISOString(),
});

async function rejection(promise: Promise<unknown>): Promise<WeftError> {
  const error = await promise.then(
    () => new Error('expected a rejection'),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(WeftError);
  return error as WeftError;
}

describe('SQLite store', () => {
  const dirs: string[] = [];
  const stores: RunStore[] = [];
  const dbs: Database.Database[] = [];

  function dir(): string {
    const d = tempDir();
    dirs.push(d);
    return d;
  }
  function open(path: string, options?: Parameters<typeof createSqliteStore>[1]): RunStore {
    const store = createSqliteStore(path, options);
    stores.push(store);
    return store;
  }
  function raw(path: string, options?: Database.Options): Database.Database {
    const db = new Database(path, options);
    dbs.push(db);
    return db;
  }

  afterEach(async () => {
    await Promise.allSettled(stores.splice(0).map((s) => s.close()));
    for (const db of dbs.splice(0)) if (db.open) db.close();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  describe('opening', () => {
    it('creates the parent directory and the schema, in WAL mode with foreign keys on', () => {
      const path = join(dir(), 'deep', 'er', 'weft.db');
      const store = open(path);
      expect(store.kind).toBe('sqlite');
      expect(store.location).toBe(path);
      const db = raw(path);
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      const versions = db.prepare('SELECT version, name FROM schema_migrations').all();
      expect(versions).toEqual([
        { version: 1, name: 'initial' },
        { version: 2, name: 'schedule' },
        { version: 3, name: 'retention' },
      ]);
      const tables = db
        .prepare(
          "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .all()
        .map((r) => (r as { name: string }).name);
      expect(tables).toEqual([
        'attempts',
        'fires',
        'hooks',
        'logs',
        'plans',
        'run_requests',
        'runs',
        'schema_migrations',
        'task_runs',
      ]);
    });

    it('keeps data across reopening and applies no migration twice', async () => {
      const path = join(dir(), 'weft.db');
      const first = open(path);
      const run = await first.createRun(newRun());
      await first.close();
      const second = open(path);
      expect((await second.getRun(run.id))?.id).toBe(run.id);
      expect((await second.getTaskRuns(run.id)).map((t) => t.task)).toEqual(['extract', 'load']);
      const count = raw(path).prepare('SELECT COUNT(*) AS n FROM schema_migrations').get() as { n: number };
      expect(count.n).toBe(LATEST_SCHEMA_VERSION);
    });

    it('refuses a store written by a newer weft', () => {
      const path = join(dir(), 'weft.db');
      open(path);
      const db = raw(path);
      db.prepare(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 'x')",
      ).run();
      db.close();
      let error: unknown;
      try {
        createSqliteStore(path);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(WeftError);
      expect((error as WeftError).code).toBe('STORE_FAILED');
      expect((error as WeftError).message).toContain('newer weft (schema version 999');
      expect((error as WeftError).message).toContain(path);
    });

    it('refuses a file that is not a SQLite database, naming it', () => {
      const path = join(dir(), 'weft.db');
      writeFileSync(path, 'this is not a database, just some text that is long enough '.repeat(20));
      expect(() => createSqliteStore(path)).toThrow(
        expect.objectContaining({ code: 'STORE_FAILED', message: expect.stringContaining(path) as string }),
      );
    });

    it('opens read-only: reads work, writes reject, a missing file is refused', async () => {
      const path = join(dir(), 'weft.db');
      const writer = open(path);
      const run = await writer.createRun(newRun());
      const reader = open(path, { readonly: true });
      expect((await reader.getRun(run.id))?.id).toBe(run.id);
      const error = await rejection(reader.updateRun(run.id, { state: 'running' }));
      expect(error.code).toBe('STORE_FAILED');
      expect(error.message).toContain('read-only');
      expect(() => createSqliteStore(join(dir(), 'missing.db'), { readonly: true })).toThrow(
        expect.objectContaining({ code: 'STORE_FAILED' }),
      );
    });
  });

  describe('group commit', () => {
    it('commits the writes of one tick in one transaction', async () => {
      const path = join(dir(), 'weft.db');
      const store = open(path);
      const run = await store.createRun(newRun());
      const db = raw(path);
      const before = db.pragma('data_version', { simple: true }) as number;
      const writes = [
        store.updateRun(run.id, { state: 'running' }),
        store.updateTaskRun(run.id, 'extract', { state: 'running', attempts: 1 }),
        store.appendLogs([
          { runId: run.id, task: 'extract', attempt: 1, ts: 't', level: 'info', message: 'm' },
        ]),
      ];
      // Nothing is visible to another connection before the batch runs...
      expect((db.prepare('SELECT state FROM runs WHERE id = ?').get(run.id) as { state: string }).state).toBe(
        'queued',
      );
      await Promise.all(writes);
      // ...and afterwards everything is, from one commit (data_version moves once per foreign commit).
      expect((db.prepare('SELECT state FROM runs WHERE id = ?').get(run.id) as { state: string }).state).toBe(
        'running',
      );
      expect(db.pragma('data_version', { simple: true })).toBe(before + 1);
    });

    it('rejects only the write that failed and commits the rest of its batch', async () => {
      const store = open(join(dir(), 'weft.db'));
      const run = await store.createRun(newRun({ scheduledFor: '2025-01-01T00:00:00.000Z' }));
      const results = await Promise.allSettled([
        store.updateTaskRun(run.id, 'extract', { state: 'running' }),
        store.createRun(newRun({ scheduledFor: '2025-01-01T00:00:00.000Z' })),
        store.insertAttempt({
          runId: run.id,
          task: 'ghost',
          attempt: 1,
          state: 'running',
          delayMs: 0,
          startedAt: 't',
          finishedAt: null,
          error: null,
          worker: null,
          pid: null,
        }),
        store.updateTaskRun(run.id, 'load', { state: 'skipped' }),
      ]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled']);
      expect(((results[1] as PromiseRejectedResult).reason as WeftError).code).toBe('RUN_DUPLICATE');
      expect(((results[2] as PromiseRejectedResult).reason as WeftError).code).toBe('STORE_FAILED');
      expect((await store.getTaskRuns(run.id)).map((t) => t.state)).toEqual(['running', 'skipped']);
      expect(await store.listRuns()).toHaveLength(1);
    });

    it('rejects a whole batch it cannot commit, naming the file, and never acknowledges it', async () => {
      const path = join(dir(), 'weft.db');
      const store = open(path, { busyTimeoutMs: 20 });
      const run = await store.createRun(newRun());
      const other = raw(path);
      other.exec('BEGIN IMMEDIATE');
      const results = await Promise.allSettled([
        store.updateRun(run.id, { state: 'running' }),
        store.updateTaskRun(run.id, 'extract', { state: 'running' }),
      ]);
      expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
      const error = (results[0] as PromiseRejectedResult).reason as WeftError;
      expect(error.code).toBe('STORE_FAILED');
      expect(error.message).toContain(path);
      other.exec('ROLLBACK');
      expect((await store.getRun(run.id))!.state).toBe('queued');
      // The store recovers once the lock is gone.
      expect(await store.updateRun(run.id, { state: 'running' })).toBe(true);
      expect((await store.getRun(run.id))!.state).toBe('running');
    });

    it('commits writes still queued when the store is closed', async () => {
      const path = join(dir(), 'weft.db');
      const store = createSqliteStore(path);
      const run = await store.createRun(newRun());
      const pending = store.updateRun(run.id, { state: 'running' });
      await store.close();
      expect(await pending).toBe(true);
      const reopened = open(path);
      expect((await reopened.getRun(run.id))!.state).toBe('running');
    });
  });

  describe('plans', () => {
    it('stores a plan once however many runs share it', async () => {
      const path = join(dir(), 'weft.db');
      const store = open(path);
      const first = await store.createRun(newRun());
      await store.createRun(newRun());
      await store.createRun({ ...newRun(), plan: first.plan });
      const count = raw(path).prepare('SELECT COUNT(*) AS n FROM plans').get() as { n: number };
      expect(count.n).toBe(1);
    });
  });

  describe('two connections on one file', () => {
    it('sees the other store’s writes and fences across them', async () => {
      const path = join(dir(), 'weft.db');
      const a = open(path);
      const b = open(path);
      const run = await a.createRun(newRun());
      expect((await b.getRun(run.id))?.state).toBe('queued');
      expect(await b.updateRun(run.id, { cancelRequested: true })).toBe(true);
      expect((await a.getRun(run.id))?.cancelRequested).toBe(true);
      expect(await a.updateRun(run.id, { state: 'running', owner: 'a' }, { states: ['queued'] })).toBe(true);
      expect(await b.updateRun(run.id, { state: 'running', owner: 'b' }, { states: ['queued'] })).toBe(false);
      expect((await b.getRun(run.id))?.owner).toBe('a');
    });

    it('loses no write when two stores write the same file side by side', async () => {
      const path = join(dir(), 'weft.db');
      const a = open(path);
      const b = open(path);
      const run = await a.createRun(newRun());
      const writes: Promise<void>[] = [];
      for (let i = 0; i < 300; i++) {
        const store = i % 2 === 0 ? a : b;
        writes.push(
          store.appendLogs([
            { runId: run.id, task: null, attempt: null, ts: 't', level: 'info', message: `m${i}` },
          ]),
        );
        if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      await Promise.all(writes);
      const logs = await a.getLogs(run.id);
      expect(logs).toHaveLength(300);
      expect(new Set(logs.map((l) => l.message)).size).toBe(300);
      expect(new Set(logs.map((l) => l.seq)).size).toBe(300);
      expect(raw(path).pragma('integrity_check', { simple: true })).toBe('ok');
    });

    it('waits for a lock held by another process instead of failing', async () => {
      const path = join(dir(), 'weft.db');
      const store = open(path);
      const run = await store.createRun(newRun());
      // A second process takes the write lock for 1 s, writing a log line of its own. (Not much
      // less: this process, paused by a busy machine, may see 'locked' late.)
      const { spawn } = await import('node:child_process');
      const script = `
        import Database from 'better-sqlite3';
        const db = new Database(${JSON.stringify(path)}, { timeout: 5000 });
        db.exec('BEGIN IMMEDIATE');
        db.prepare("INSERT INTO logs (run_id, ts, level, message) VALUES (?, 't', 'info', 'child')").run(${JSON.stringify(run.id)});
        process.stdout.write('locked\\n');
        const until = Date.now() + 1000;
        while (Date.now() < until) {}
        db.exec('COMMIT');
        db.close();
      `;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
        cwd: process.cwd(),
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      // Listened for at once: the child may be gone by the time this test would ask.
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
      const started = Date.now();
      await store.appendLogs([
        { runId: run.id, task: null, attempt: null, ts: 't', level: 'info', message: 'parent' },
      ]);
      expect(Date.now() - started).toBeGreaterThanOrEqual(100);
      expect(await exited).toBe(0);
      expect((await store.getLogs(run.id)).map((l) => l.message)).toEqual(['child', 'parent']);
      expect(raw(path).pragma('integrity_check', { simple: true })).toBe('ok');
    });
  });
});
