import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MIN_RETENTION_MS, parseDuration } from '../core/duration.js';
import { WeftError } from '../errors.js';
import type { AnyHandler } from '../handlers/types.js';

/** What a project's weft.config.ts exports (through `defineConfig`). */
export interface WeftConfig {
  /** The project's own handlers, added to the built-ins. */
  handlers?: AnyHandler[];
  /** Folder of pipeline files, relative to the config file. Default `pipelines`. */
  pipelines?: string;
  /** Default run store (a file path or a postgres:// URL); WEFT_STORE and --store win over it. */
  store?: string;
  /** `weft serve`'s settings; its flags and WEFT_* variables win over them. */
  serve?: ServeConfig;
}

export interface ServeConfig {
  /** Port of the dashboard and HTTP API (default 4200; 0 picks a free one). */
  port?: number;
  /** Address to listen on (default 127.0.0.1); anything but loopback needs WEFT_API_TOKEN. */
  host?: string;
  /** How long runs in progress get to finish on shutdown, e.g. "30s". */
  grace?: string;
  /** Prune the history older than this (at least "1d") at start and every hour, e.g. "30d". */
  retain?: string;
  /** Lines as text (default) or one JSON object each, for a log collector. */
  logFormat?: 'text' | 'json';
}

const SERVE_KEYS: Record<keyof ServeConfig, (value: unknown) => boolean> = {
  port: (v) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 65_535,
  host: (v) => typeof v === 'string' && v !== '',
  grace: (v) => typeof v === 'string' && parseDuration(v) !== null,
  retain: (v) => typeof v === 'string' && (parseDuration(v) ?? 0) >= MIN_RETENTION_MS,
  logFormat: (v) => v === 'text' || v === 'json',
};
const SERVE_EXPECTED: Record<keyof ServeConfig, string> = {
  port: 'a port number from 0 to 65535',
  host: 'an address such as 127.0.0.1',
  grace: 'a duration such as "30s"',
  retain: 'a duration of at least "1d", such as "30d"',
  logFormat: '"text" or "json"',
};

export interface LoadedConfig {
  config: WeftConfig;
  /** The file it came from, or null when the project has none. */
  file: string | null;
  /** The folder the config's relative paths start from. */
  root: string;
}

export const CONFIG_FILE_NAMES = ['weft.config.ts', 'weft.config.mts', 'weft.config.js', 'weft.config.mjs'];

export function findConfigFile(cwd: string): string | null {
  for (const name of CONFIG_FILE_NAMES) {
    const path = resolve(cwd, name);
    if (existsSync(path)) return path;
  }
  return null;
}

/**
 * Loads a TypeScript or JavaScript module without a build step. jiti transpiles TypeScript on the
 * fly (and caches it), so users write weft.config.ts and their handlers in TypeScript directly.
 */
export async function importModule(path: string): Promise<Record<string, unknown>> {
  const absolute = resolve(path);
  if (!existsSync(absolute)) {
    throw new WeftError('CONFIG_INVALID', `module not found: ${path}`, { retryable: false });
  }
  try {
    if (/\.(c|m)?js$/.test(absolute)) {
      return (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
    }
    const { createJiti } = await import('jiti');
    const jiti = createJiti(import.meta.url, { interopDefault: false, moduleCache: true });
    return await jiti.import<Record<string, unknown>>(absolute);
  } catch (error) {
    throw new WeftError('CONFIG_INVALID', `cannot load ${path}: ${(error as Error).message}`, {
      cause: error,
      retryable: false,
    });
  }
}

export async function loadConfig(options: { cwd: string; file?: string }): Promise<LoadedConfig> {
  const file = options.file ? resolve(options.cwd, options.file) : findConfigFile(options.cwd);
  if (!file) return { config: {}, file: null, root: options.cwd };
  const module = await importModule(file);
  const config = (module.default ?? module.config ?? module) as WeftConfig;
  checkConfig(config, file);
  return { config, file, root: resolve(file, '..') };
}

/** Handlers exported by a `--handlers MODULE`: its `handlers` array, its default, or each export that is a handler. */
export async function loadHandlerModule(path: string): Promise<AnyHandler[]> {
  const module = await importModule(path);
  const candidates: unknown[] = [];
  for (const value of [module.handlers, module.default]) {
    if (Array.isArray(value)) candidates.push(...(value as unknown[]));
    else if (value !== undefined) candidates.push(value);
  }
  if (candidates.length === 0) candidates.push(...Object.values(module));
  const handlers = candidates.filter(isHandler);
  if (handlers.length === 0) {
    throw new WeftError('CONFIG_INVALID', `${path} exports no handler`, {
      hint: 'export handlers made with defineHandler, or an array of them as `handlers`',
      retryable: false,
    });
  }
  return handlers;
}

function isHandler(value: unknown): value is AnyHandler {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as AnyHandler).name === 'string' &&
    typeof (value as AnyHandler).run === 'function'
  );
}

function checkConfig(config: WeftConfig, file: string): void {
  if (typeof config !== 'object' || config === null) {
    throw new WeftError('CONFIG_INVALID', `${file} must export a config object (use defineConfig)`);
  }
  if (config.handlers !== undefined) {
    if (!Array.isArray(config.handlers)) {
      throw new WeftError('CONFIG_INVALID', `${file}: \`handlers\` must be an array of handlers`);
    }
    config.handlers.forEach((handler, index) => {
      if (!isHandler(handler)) {
        throw new WeftError(
          'CONFIG_INVALID',
          `${file}: handlers[${index}] is not a handler (needs name and run)`,
        );
      }
    });
  }
  if (config.pipelines !== undefined && typeof config.pipelines !== 'string') {
    throw new WeftError('CONFIG_INVALID', `${file}: \`pipelines\` must be a folder path`);
  }
  if (config.serve !== undefined) checkServeConfig(config.serve, file);
}

function checkServeConfig(serve: unknown, file: string): void {
  if (typeof serve !== 'object' || serve === null || Array.isArray(serve)) {
    throw new WeftError('CONFIG_INVALID', `${file}: \`serve\` must be an object of weft serve settings`);
  }
  for (const [key, value] of Object.entries(serve)) {
    const check = Object.hasOwn(SERVE_KEYS, key) ? SERVE_KEYS[key as keyof ServeConfig] : undefined;
    if (!check) {
      throw new WeftError('CONFIG_INVALID', `${file}: \`serve.${key}\` is not a weft serve setting`, {
        hint: `the settings are ${Object.keys(SERVE_KEYS).join(', ')}`,
      });
    }
    if (value !== undefined && !check(value)) {
      throw new WeftError(
        'CONFIG_INVALID',
        `${file}: \`serve.${key}\` must be ${SERVE_EXPECTED[key as keyof ServeConfig]}, got ${JSON.stringify(value)}`,
      );
    }
  }
}
