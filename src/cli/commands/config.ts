import { resolve } from 'node:path';
import type { Command } from 'commander';
import { createBuiltinHandlers } from '../../handlers/builtins.js';
import { loadHandlerModule } from '../../project/config.js';
import { organismHandlers } from '../../organism/index.js';
import { DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL } from '../../organism/connections.js';
import { describeStoreLocation, redactUrl, resolveStoreSpec } from '../../store/open-store.js';
import type { CliContext, CommonOptions } from '../context.js';
import { formatOption, withProjectOptions, withStoreOption } from '../options.js';
import { renderTable } from '../render/table.js';
import type { CommandDeps } from './types.js';
import { type ConfigValue, PRECEDENCE_TEXT, type ValueSource } from './config-value.js';
import {
  resolveServeSettings,
  SERVE_SETTINGS,
  type ServeSetting,
  type ServeSettings,
} from './serve-settings.js';

export interface EffectiveConfig {
  precedence: string;
  configFile: ConfigValue;
  pipelines: ConfigValue;
  store: ConfigValue & { kind: string };
  env: { DATABASE_URL: ConfigValue; REDIS_URL: ConfigValue };
  /** `weft serve`'s settings as it would run here without flags. */
  serve: ServeSettings;
  handlers: { source: string; names: string[] }[];
}

/** Works out every setting as the other commands will, and where each came from. Secrets masked. */
export async function effectiveConfig(ctx: CliContext): Promise<EffectiveConfig> {
  const { config, file, root } = await ctx.config();
  const configName = file ? file.slice(root.length + 1) : 'weft.config.ts';
  const env = ctx.io.env;

  const configFile: ConfigValue = ctx.options.config
    ? { value: file, source: 'flag', from: '--config' }
    : file
      ? { value: file, source: 'default', from: 'found in the current folder' }
      : { value: null, source: 'default', from: 'none found: built-in defaults' };

  const pipelines: ConfigValue =
    config.pipelines !== undefined
      ? { value: resolve(root, config.pipelines), source: 'config', from: `${configName} (pipelines)` }
      : { value: resolve(root, 'pipelines'), source: 'default', from: 'pipelines/ beside the config' };

  const storeSpec: [string | undefined, ValueSource, string][] = [
    [ctx.options.store, 'flag', '--store'],
    [env.WEFT_STORE, 'environment', 'WEFT_STORE'],
    [config.store, 'config', `${configName} (store)`],
  ];
  const chosen = storeSpec.find(([value]) => value !== undefined && value !== '');
  const spec = chosen?.[0];
  const storeCwd = spec ? ctx.cwd : root;
  const store = {
    value: describeStoreLocation(spec, { cwd: storeCwd }),
    kind: resolveStoreSpec(spec, { cwd: storeCwd }).kind,
    source: chosen?.[1] ?? 'default',
    from: chosen?.[2] ?? '.weft/weft.db beside the config',
  };

  const url = (name: 'DATABASE_URL' | 'REDIS_URL', fallback: string): ConfigValue => {
    const value = env[name];
    return value
      ? { value: redactUrl(value), source: 'environment', from: name }
      : {
          value: redactUrl(fallback),
          source: 'default',
          from: 'used by the organism handlers and weft check',
        };
  };

  const handlers = [
    { source: 'built-in', names: createBuiltinHandlers().map((h) => h.name) },
    { source: 'organism (built-in)', names: organismHandlers.map((h) => h.name) },
  ];
  if (config.handlers?.length)
    handlers.push({ source: configName, names: config.handlers.map((h) => h.name) });
  for (const module of ctx.options.handlers ?? []) {
    handlers.push({
      source: `--handlers ${module}`,
      names: (await loadHandlerModule(resolve(ctx.cwd, module))).map((h) => h.name),
    });
  }

  return {
    precedence: PRECEDENCE_TEXT,
    configFile,
    pipelines,
    store,
    env: {
      DATABASE_URL: url('DATABASE_URL', DEFAULT_DATABASE_URL),
      REDIS_URL: url('REDIS_URL', DEFAULT_REDIS_URL),
    },
    serve: resolveServeSettings({ flag: () => undefined, env, config, configName }),
    handlers,
  };
}

/** `weft config`: the effective configuration and where each value came from. */
export async function configCommand(ctx: CliContext, options: { format: 'text' | 'json' }): Promise<number> {
  const effective = await effectiveConfig(ctx);
  if (options.format === 'json') {
    ctx.io.stdout(JSON.stringify(effective, null, 2) + '\n');
    return 0;
  }
  const c = ctx.io.colors;
  const row = (name: string, v: ConfigValue, extra = '') => [
    name,
    (v.value ?? c.dim('(none)')) + extra,
    c.dim(`${v.source}: ${v.from}`),
  ];
  const rows = [
    ['SETTING', 'VALUE', 'FROM'].map((h) => c.bold(h)),
    row('config file', effective.configFile),
    row('pipelines', effective.pipelines),
    row('store', effective.store, effective.store.kind === 'sqlite' ? '' : ` (${effective.store.kind})`),
    row('DATABASE_URL', effective.env.DATABASE_URL),
    row('REDIS_URL', effective.env.REDIS_URL),
    ...(Object.keys(SERVE_SETTINGS) as ServeSetting[]).map((key) =>
      row(`serve ${SERVE_SETTINGS[key].flag}`, effective.serve[key]),
    ),
  ];
  ctx.io.stdout(renderTable(rows) + '\n\n');
  ctx.io.stdout(c.bold('handlers') + '\n');
  for (const group of effective.handlers) {
    ctx.io.stdout(`  ${group.source} ${c.dim(`(${group.names.length})`)}: ${group.names.join(', ')}\n`);
  }
  ctx.io.stdout(`\n${c.dim(`precedence: ${effective.precedence}`)}\n`);
  return 0;
}

export function registerConfigCommand(program: Command, deps: CommandDeps): void {
  withStoreOption(
    withProjectOptions(
      program
        .command('config')
        .description(
          'print the effective configuration (store, pipelines, handlers, weft serve settings) and where each value came from',
        )
        .addOption(formatOption(['text', 'json'], 'text')),
    ),
  ).action(async (options: { format: 'text' | 'json' } & CommonOptions) =>
    deps.setExitCode(await configCommand(deps.context(options), options)),
  );
}
