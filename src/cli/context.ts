import { resolve } from 'node:path';
import { createDefaultHandlers } from '../project/default-handlers.js';
import { HandlerRegistry } from '../handlers/registry.js';
import { loadConfig, loadHandlerModule, type LoadedConfig } from '../project/config.js';
import { isLocalOwnerAlive, markInterruptedRuns } from '../engine/index.js';
import { existsSync } from 'node:fs';
import { openStore, resolveStoreSpec } from '../store/open-store.js';
import type { RunStore } from '../store/run-store.js';
import { closeOrganismConnections } from '../organism/connections.js';
import type { CliIO } from './io.js';

export interface CommonOptions {
  config?: string;
  handlers?: string[];
  store?: string;
}

/**
 * What every command needs, built lazily: `weft validate` of one file must not pay for opening a
 * store, and `weft runs` must not pay for loading handlers.
 */
export class CliContext {
  readonly io: CliIO;
  readonly options: CommonOptions;
  #config: Promise<LoadedConfig> | undefined;
  #registry: Promise<HandlerRegistry> | undefined;
  #stores: RunStore[] = [];

  constructor(io: CliIO, options: CommonOptions) {
    this.io = io;
    this.options = options;
  }

  get cwd(): string {
    return this.io.cwd;
  }

  config(): Promise<LoadedConfig> {
    this.#config ??= loadConfig({
      cwd: this.cwd,
      ...(this.options.config ? { file: this.options.config } : {}),
    });
    return this.#config;
  }

  async pipelinesDir(): Promise<string> {
    const { config, root } = await this.config();
    return resolve(root, config.pipelines ?? 'pipelines');
  }

  registry(): Promise<HandlerRegistry> {
    this.#registry ??= this.#buildRegistry();
    return this.#registry;
  }

  async #buildRegistry(): Promise<HandlerRegistry> {
    const registry = new HandlerRegistry(createDefaultHandlers());
    const { config } = await this.config();
    for (const handler of config.handlers ?? []) registry.register(handler);
    for (const module of this.options.handlers ?? []) {
      for (const handler of await loadHandlerModule(resolve(this.cwd, module))) registry.register(handler);
    }
    return registry;
  }

  /** The run store: --store, then WEFT_STORE, then the config's, then .weft/weft.db beside the pipelines. */
  async store(): Promise<RunStore> {
    const { config, root } = await this.config();
    const spec = this.options.store ?? this.io.env.WEFT_STORE ?? config.store;
    const store = await openStore(spec || undefined, { cwd: spec ? this.cwd : root });
    this.#stores.push(store);
    return store;
  }

  /**
   * Where the store is when it has never been written to (a SQLite file not created yet), else
   * null. Commands that only read use it to answer "no runs" instead of creating `.weft/` in
   * whatever folder the user happened to type `weft runs` in.
   */
  async missingStore(): Promise<string | null> {
    const { config, root } = await this.config();
    const spec = this.options.store ?? this.io.env.WEFT_STORE ?? config.store;
    const target = resolveStoreSpec(spec || undefined, { cwd: spec ? this.cwd : root });
    return target.kind === 'sqlite' && !existsSync(target.path) ? target.path : null;
  }

  /**
   * The store, after marking runs whose process died (kill -9, power loss) as `interrupted`, so
   * every command sees the truth and `weft resume` can finish them.
   */
  async recoveredStore(): Promise<RunStore> {
    const store = await this.store();
    const found = await markInterruptedRuns(store, { isOwnerAlive: isLocalOwnerAlive, now: Date.now() });
    for (const run of found) {
      this.io.stderr(
        this.io.colors.yellow(
          `run ${run.id} of ${run.pipeline} was interrupted (its process died); finish it with: weft resume ${run.id}\n`,
        ),
      );
    }
    return store;
  }

  async close(): Promise<void> {
    // Organism handlers cache Redis/PostgreSQL clients per URL; their sockets would keep the process
    // alive. This loads no client library when none was used (the caches are just empty).
    await Promise.allSettled([...this.#stores.map((store) => store.close()), closeOrganismConnections()]);
    this.#stores = [];
  }
}
