import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../testing/support.js';

let cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups) cleanup();
  cleanups = [];
});

const CONFIG = `export default {
  handlers: [{ name: 'mine.thing', run: () => null }],
  pipelines: 'flows',
  store: 'runs.db',
};
`;

interface Effective {
  configFile: { value: string | null; source: string };
  pipelines: { value: string; source: string; from: string };
  store: { value: string; kind: string; source: string; from: string };
  env: { DATABASE_URL: { value: string; source: string }; REDIS_URL: { value: string; source: string } };
  handlers: { source: string; names: string[] }[];
  serve: Record<string, { value: string | null; source: string; from: string }>;
  precedence: string;
}

async function effective(args: string[], files: Record<string, string>, env: NodeJS.ProcessEnv = {}) {
  const temp = tempDir(files);
  cleanups.push(temp.cleanup);
  const result = await runCli(['config', '--format', 'json', ...args], temp.dir, env);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return { dir: temp.dir, config: JSON.parse(result.stdout) as Effective };
}

describe('weft config', () => {
  it('shows defaults when there is no config file', async () => {
    const { dir, config } = await effective([], {});
    expect(config.configFile).toMatchObject({ value: null, source: 'default' });
    expect(config.pipelines).toMatchObject({ value: join(dir, 'pipelines'), source: 'default' });
    expect(config.store).toMatchObject({
      value: join(dir, '.weft', 'weft.db'),
      kind: 'sqlite',
      source: 'default',
    });
    expect(config.handlers.map((h) => h.source)).toEqual(['built-in', 'organism (built-in)']);
    expect(config.precedence).toBe(
      'flags > environment (WEFT_*, DATABASE_URL, REDIS_URL) > weft.config.ts > defaults',
    );
  });

  it('follows flags > environment > weft.config.ts > defaults, and masks passwords', async () => {
    const files = { 'weft.config.ts': CONFIG };
    const fromConfig = await effective([], files);
    expect(fromConfig.config.store).toMatchObject({
      value: join(fromConfig.dir, 'runs.db'),
      source: 'config',
      from: 'weft.config.ts (store)',
    });
    expect(fromConfig.config.pipelines).toMatchObject({
      value: join(fromConfig.dir, 'flows'),
      source: 'config',
    });
    expect(fromConfig.config.handlers.at(-1)).toEqual({ source: 'weft.config.ts', names: ['mine.thing'] });

    const env = {
      WEFT_STORE: 'postgres://weft:hunter2@db:5432/weft',
      DATABASE_URL: 'postgres://app:s3cret@db/app',
    };
    const fromEnv = await effective([], files, env);
    expect(fromEnv.config.store).toMatchObject({
      value: 'postgres://weft:***@db:5432/weft',
      kind: 'postgres',
      source: 'environment',
      from: 'WEFT_STORE',
    });
    expect(fromEnv.config.env.DATABASE_URL).toEqual({
      value: 'postgres://app:***@db/app',
      source: 'environment',
      from: 'DATABASE_URL',
    });
    expect(fromEnv.config.env.REDIS_URL.source).toBe('default');

    const fromFlag = await effective(['--store', ':memory:'], files, env);
    expect(fromFlag.config.store).toMatchObject({
      value: ':memory:',
      kind: 'memory',
      source: 'flag',
      from: '--store',
    });
  });

  it("resolves weft serve's settings the same way: WEFT_* > serve: in weft.config.ts > defaults", async () => {
    const files = {
      'weft.config.ts': "export default { serve: { port: 4300, retain: '30d', logFormat: 'json' } };\n",
    };
    const { config } = await effective([], files, { WEFT_RETAIN: '60d' });
    expect(config.serve).toEqual({
      port: { value: '4300', source: 'config', from: 'weft.config.ts (serve.port)' },
      host: { value: '127.0.0.1', source: 'default', from: 'built-in default' },
      grace: { value: '30s', source: 'default', from: 'built-in default' },
      logFormat: { value: 'json', source: 'config', from: 'weft.config.ts (serve.logFormat)' },
      retain: { value: '60d', source: 'environment', from: 'WEFT_RETAIN' },
    });
  });

  it('refuses a serve: setting it does not know or of the wrong type, naming the file and key', async () => {
    for (const [serve, message] of [
      ['{ prot: 4300 }', /weft\.config\.ts: `serve\.prot` is not a weft serve setting/],
      ["{ port: '4300' }", /`serve\.port` must be a port number from 0 to 65535, got "4300"/],
      ["{ logFormat: 'yaml' }", /`serve\.logFormat` must be "text" or "json", got "yaml"/],
    ] as const) {
      const temp = tempDir({ 'weft.config.ts': `export default { serve: ${serve} };\n` });
      cleanups.push(temp.cleanup);
      const result = await runCli(['config'], temp.dir);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(message);
      expect(result.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('prints a table in text form, with no password', async () => {
    const temp = tempDir({});
    cleanups.push(temp.cleanup);
    const result = await runCli(['config'], temp.dir, { REDIS_URL: 'redis://:pw123@cache:6379' });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/REDIS_URL\s+redis:\/\/:\*\*\*@cache:6379\s+environment: REDIS_URL/);
    expect(result.stdout).not.toContain('pw123');
    expect(result.stdout).toContain('precedence: flags > environment');
  });
});
