import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { WeftError } from '../../src/errors.js';
import { describeStoreLocation, openStore, redactUrl, resolveStoreSpec } from '../../src/store/open-store.js';
import type { RunStore } from '../../src/store/run-store.js';

const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** Outside CI a missing server skips the PostgreSQL case (loudly); in CI it runs, and fails. */
async function postgresAvailable(): Promise<boolean> {
  if (process.env.CI) return true;
  const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 1500 });
  try {
    await client.connect();
    return true;
  } catch {
    console.warn(`SKIPPED opening a PostgreSQL store: ${ADMIN_URL} unreachable (set CI=1 to fail instead)`);
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const hasPostgres = await postgresAvailable();

describe('resolveStoreSpec', () => {
  const cwd = '/work/project';

  it('defaults to .weft/weft.db under cwd', () => {
    expect(resolveStoreSpec(undefined, { cwd })).toEqual({
      kind: 'sqlite',
      path: '/work/project/.weft/weft.db',
    });
    expect(resolveStoreSpec('  ', { cwd })).toEqual({ kind: 'sqlite', path: '/work/project/.weft/weft.db' });
  });

  it('reads :memory:, postgres URLs and file paths', () => {
    expect(resolveStoreSpec(':memory:', { cwd })).toEqual({ kind: 'memory' });
    expect(resolveStoreSpec('postgres://u:p@db/weft', { cwd })).toEqual({
      kind: 'postgres',
      url: 'postgres://u:p@db/weft',
    });
    expect(resolveStoreSpec('postgresql://db/weft', { cwd }).kind).toBe('postgres');
    expect(resolveStoreSpec('data/runs.db', { cwd })).toEqual({
      kind: 'sqlite',
      path: '/work/project/data/runs.db',
    });
    expect(resolveStoreSpec('/var/weft.db', { cwd })).toEqual({ kind: 'sqlite', path: '/var/weft.db' });
  });
});

describe('describeStoreLocation', () => {
  it('never shows a password', () => {
    expect(describeStoreLocation('postgres://weft:s3cret@db:5432/weft', { cwd: '/' })).toBe(
      'postgres://weft:***@db:5432/weft',
    );
    expect(redactUrl('postgres://weft:s3cret@[bad')).not.toContain('s3cret');
    expect(describeStoreLocation(':memory:', { cwd: '/' })).toBe(':memory:');
    expect(describeStoreLocation('x.db', { cwd: '/tmp' })).toBe('/tmp/x.db');
  });
});

describe('openStore', () => {
  const dirs: string[] = [];
  const stores: RunStore[] = [];
  afterEach(async () => {
    await Promise.allSettled(stores.splice(0).map((s) => s.close()));
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('opens the default SQLite file under cwd, creating .weft/', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'weft-open-'));
    dirs.push(cwd);
    const store = await openStore(undefined, { cwd });
    stores.push(store);
    expect(store.kind).toBe('sqlite');
    expect(store.location).toBe(join(cwd, '.weft', 'weft.db'));
    expect(existsSync(join(cwd, '.weft', 'weft.db'))).toBe(true);
  });

  it('opens a relative SQLite path against cwd', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'weft-open-'));
    dirs.push(cwd);
    const store = await openStore('state/runs.db', { cwd });
    stores.push(store);
    expect(store.location).toBe(join(cwd, 'state', 'runs.db'));
  });

  it('opens a memory store', async () => {
    const store = await openStore(':memory:', { cwd: '/' });
    stores.push(store);
    expect(store.kind).toBe('memory');
    expect(store.location).toBe(':memory:');
  });

  it('opens a PostgreSQL URL with the PostgreSQL store, rejecting STORE_FAILED without the password when unreachable', async () => {
    const error: unknown = await openStore('postgres://weft:s3cret@127.0.0.1:1/weft', { cwd: '/' }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(WeftError);
    expect((error as WeftError).code).toBe('STORE_FAILED');
    expect((error as WeftError).message).toContain('postgres://weft:***@127.0.0.1:1/weft');
    expect((error as WeftError).message).not.toContain('s3cret');
    expect((error as WeftError).hint).not.toContain('s3cret');
  });

  it.runIf(hasPostgres)('opens and migrates a reachable PostgreSQL database', async () => {
    const name = `weft_test_open_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: ADMIN_URL });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${name}`);
      const url = new URL(ADMIN_URL);
      url.pathname = `/${name}`;
      const store = await openStore(url.toString().replace(/^postgres:/, 'postgresql:'), { cwd: '/' });
      stores.push(store);
      expect(store.kind).toBe('postgres');
      expect(store.location).toContain(name);
      expect(await store.listRuns()).toEqual([]);
      await store.close();
      // readonly: no migrating, so an empty database is refused rather than written to.
      await admin.query(`CREATE DATABASE ${name}_empty`);
      url.pathname = `/${name}_empty`;
      await expect(openStore(url.toString(), { cwd: '/', readonly: true })).rejects.toMatchObject({
        code: 'STORE_FAILED',
      });
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.query(`DROP DATABASE IF EXISTS ${name}_empty WITH (FORCE)`);
      await admin.end();
    }
  });

  it('rejects (not throws) when the SQLite file cannot be opened', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'weft-open-'));
    dirs.push(cwd);
    const promise = openStore('missing.db', { cwd, readonly: true });
    await expect(promise).rejects.toMatchObject({ code: 'STORE_FAILED' });
  });
});
