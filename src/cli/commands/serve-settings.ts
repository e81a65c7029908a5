import type { ServeConfig, WeftConfig } from '../../project/config.js';
import type { ConfigValue } from './config-value.js';

/**
 * `weft serve`'s own settings, each from its flag, then its environment variable, then `serve:` in
 * weft.config.ts, then its default — the precedence every setting follows (config.ts). One table
 * for the command and for `weft config`, so what one prints is what the other uses.
 */
export const SERVE_SETTINGS = {
  port: { flag: '--port', env: 'WEFT_PORT', fallback: '4200' },
  host: { flag: '--host', env: 'WEFT_HOST', fallback: '127.0.0.1' },
  grace: { flag: '--grace', env: 'WEFT_GRACE', fallback: '30s' },
  logFormat: { flag: '--log-format', env: 'WEFT_LOG_FORMAT', fallback: 'text' },
  retain: { flag: '--retain', env: 'WEFT_RETAIN', fallback: null },
} as const satisfies Record<keyof ServeConfig, { flag: string; env: string; fallback: string | null }>;

export type ServeSetting = keyof typeof SERVE_SETTINGS;

export type ServeSettings = Record<ServeSetting, ConfigValue>;

export function resolveServeSettings(input: {
  /** A setting's value when it was given as a flag (not a commander default or env). */
  flag: (key: ServeSetting) => string | undefined;
  env: Readonly<Record<string, string | undefined>>;
  config: WeftConfig;
  configName: string;
}): ServeSettings {
  const out = {} as ServeSettings;
  for (const key of Object.keys(SERVE_SETTINGS) as ServeSetting[]) {
    const { flag, env, fallback } = SERVE_SETTINGS[key];
    const fromFlag = input.flag(key);
    const fromEnv = input.env[env];
    const fromConfig = input.config.serve?.[key];
    out[key] =
      fromFlag !== undefined
        ? { value: fromFlag, source: 'flag', from: flag }
        : fromEnv !== undefined && fromEnv !== ''
          ? { value: fromEnv, source: 'environment', from: env }
          : fromConfig !== undefined
            ? { value: String(fromConfig), source: 'config', from: `${input.configName} (serve.${key})` }
            : { value: fallback, source: 'default', from: 'built-in default' };
  }
  return out;
}
