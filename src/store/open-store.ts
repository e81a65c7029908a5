import { isAbsolute, join, resolve } from 'node:path';
import { createMemoryStore } from './memory/memory-store.js';
import { redactUrl } from './postgres/url.js';
import type { RunStore } from './run-store.js';
import { createSqliteStore } from './sqlite/sqlite-store.js';

/**
 * Where runs are stored, as the user says it (`--store`, WEFT_STORE, the config's `store`):
 *  - nothing: `<cwd>/.weft/weft.db`, the embedded SQLite default;
 *  - `:memory:`: in memory, for one process;
 *  - `postgres://…` / `postgresql://…`: PostgreSQL (migrated on open unless `readonly`);
 *  - anything else: a SQLite file path, relative to cwd.
 */

export const DEFAULT_STORE_PATH = join('.weft', 'weft.db');

export type StoreTarget =
  | { kind: 'memory' }
  | { kind: 'sqlite'; path: string }
  | { kind: 'postgres'; url: string };

export interface OpenStoreOptions {
  cwd: string;
  /**
   * Open an existing store without migrating it: a SQLite file for reading only (writes fail); a
   * PostgreSQL database whose schema must already be current.
   */
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

export { redactUrl };

/** Opens the store a spec points at (see above); rejects with CONFIG_INVALID or STORE_FAILED. */
export async function openStore(spec: string | undefined, options: OpenStoreOptions): Promise<RunStore> {
  const target = resolveStoreSpec(spec, options);
  switch (target.kind) {
    case 'memory':
      return createMemoryStore();
    case 'sqlite':
      return createSqliteStore(target.path, { readonly: options.readonly ?? false });
    case 'postgres': {
      // Loaded on demand: most commands never touch PostgreSQL and need not load its client.
      const { createPostgresStore } = await import('./postgres/postgres-store.js');
      return createPostgresStore(target.url, { migrate: !(options.readonly ?? false) });
    }
  }
}
