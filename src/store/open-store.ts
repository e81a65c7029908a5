import { isAbsolute, join, resolve } from 'node:path';
import { WeftError } from '../errors.js';
import { createMemoryStore } from './memory/memory-store.js';
import type { RunStore } from './run-store.js';
import { createSqliteStore } from './sqlite/sqlite-store.js';

/**
 * Where runs are stored, as the user says it (`--store`, WEFT_STORE, the config's `store`):
 *  - nothing: `<cwd>/.weft/weft.db`, the embedded SQLite default;
 *  - `:memory:`: in memory, for one process;
 *  - `postgres://…` / `postgresql://…`: PostgreSQL (not available yet);
 *  - anything else: a SQLite file path, relative to cwd.
 */

export const DEFAULT_STORE_PATH = join('.weft', 'weft.db');

export type StoreTarget =
  | { kind: 'memory' }
  | { kind: 'sqlite'; path: string }
  | { kind: 'postgres'; url: string };

export interface OpenStoreOptions {
  cwd: string;
  /** Open an existing SQLite file for reading only (no migrations, writes fail). */
  readonly?: boolean;
}

export function resolveStoreSpec(spec: string | undefined, options: { cwd: string }): StoreTarget {
  const trimmed = spec?.trim();
  if (!trimmed) return { kind: 'sqlite', path: resolve(options.cwd, DEFAULT_STORE_PATH) };
  if (trimmed === ':memory:') return { kind: 'memory' };
  if (/^postgres(ql)?:\/\//i.test(trimmed)) return { kind: 'postgres', url: trimmed };
  return { kind: 'sqlite', path: isAbsolute(trimmed) ? trimmed : resolve(options.cwd, trimmed) };
}

/** Where a store spec points, for messages: a path, `:memory:`, or a URL without its password. */
export function describeStoreLocation(spec: string | undefined, options: { cwd: string }): string {
  const target = resolveStoreSpec(spec, options);
  switch (target.kind) {
    case 'memory':
      return ':memory:';
    case 'sqlite':
      return target.path;
    case 'postgres':
      return redactUrl(target.url);
  }
}

/** A URL with its password replaced by `***` (what may appear in messages and logs). */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    // Not parseable: hide everything between "://" and "@", where a password would be.
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}

/** Opens the store a spec points at (see above); rejects with CONFIG_INVALID or STORE_FAILED. */
export function openStore(spec: string | undefined, options: OpenStoreOptions): Promise<RunStore> {
  try {
    return Promise.resolve(openTarget(resolveStoreSpec(spec, options), options));
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
}

// Synchronous for now: opening SQLite is; the PostgreSQL adapter will make this async.
function openTarget(target: StoreTarget, options: OpenStoreOptions): RunStore {
  switch (target.kind) {
    case 'memory':
      return createMemoryStore();
    case 'sqlite':
      return createSqliteStore(target.path, { readonly: options.readonly ?? false });
    case 'postgres':
      throw new WeftError('CONFIG_INVALID', 'the PostgreSQL store is not available yet', {
        retryable: false,
        hint: `use a SQLite file (the default, .weft/weft.db) instead of ${redactUrl(target.url)}`,
      });
  }
}
