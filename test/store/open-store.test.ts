import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WeftError } from '../../src/errors.js';
import { describeStoreLocation, openStore, redactUrl, resolveStoreSpec } from '../../src/store/open-store.js';
import type { RunStore } from '../../src/store/run-store.js';

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

  it('refuses PostgreSQL for now with CONFIG_INVALID, without leaking the password', async () => {
    const error: unknown = await openStore('postgres://weft:s3cret@db/weft', { cwd: '/' }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(WeftError);
    expect((error as WeftError).code).toBe('CONFIG_INVALID');
    expect((error as WeftError).message).toBe('the PostgreSQL store is not available yet');
    expect((error as WeftError).hint).not.toContain('s3cret');
  });

  it('rejects (not throws) when the SQLite file cannot be opened', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'weft-open-'));
    dirs.push(cwd);
    const promise = openStore('missing.db', { cwd, readonly: true });
    await expect(promise).rejects.toMatchObject({ code: 'STORE_FAILED' });
  });
});
