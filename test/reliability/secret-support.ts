import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { JsonObject, JsonValue } from '../../src/core/json.js';
import { createBuiltinHandlers } from '../../src/handlers/builtins.js';
import { HandlerRegistry } from '../../src/handlers/registry.js';
import type { AnyHandler } from '../../src/handlers/types.js';
import type { TestDatabase } from '../worker/pg-support.js';
import type { Rng } from './tier.js';

/** What secrets.test.ts needs around its runs: generated secrets, the leak check, pipelines, handlers, dumps. */

const CHARS =
  'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"\'\\/+=&%?# <>{}$!`~:;,|*()[]é€😀';

/** A secret with characters that need escaping in JSON, URLs, HTML and shells (no newline, no NUL). */
export function generateSecret(rng: Rng): string {
  const chars = [...CHARS];
  let secret = '';
  for (let n = 16 + rng.int(24); n > 0; n--) secret += rng.pick(chars);
  // Always a few that need escaping somewhere.
  return `${secret}"\\<&%+/`;
}

export interface Secrets {
  token: string;
  password: string;
}

export function envFor(secrets: Secrets): Record<string, string | undefined> {
  return { PATH: process.env.PATH, API_TOKEN: secrets.token, DB_PASSWORD: secrets.password };
}

function htmlEscape(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

/** What must never be found: every encoded form of every secret (and its HTML-escaped spelling). */
export function leaksIn(text: string, secrets: readonly string[]): string[] {
  const found: string[] = [];
  for (const secret of secrets) {
    const forms = new Map<string, string>([
      ['raw', secret],
      ['base64', Buffer.from(secret).toString('base64')],
      ['base64url', Buffer.from(secret).toString('base64url')],
      ['url', encodeURIComponent(secret)],
      ['form', new URLSearchParams({ s: secret }).toString().slice(2)],
      ['json', JSON.stringify(secret).slice(1, -1)],
      ['html', htmlEscape(secret)],
      ['basic-auth', Buffer.from(`user:${secret}`).toString('base64').slice(8, -4)],
    ]);
    for (const [name, form] of forms)
      if (text.includes(form)) found.push(`${name} form of ${JSON.stringify(secret)}`);
  }
  return found;
}

/**
 * Run params carrying both secrets, as is and encoded, in strings, arrays, nested objects and a
 * key; with a key that looks like the sealed form's tag, which must stay user data.
 */
export function paramsFor(secrets: Secrets): JsonObject {
  return {
    header: `Bearer ${secrets.token}`,
    config: {
      url: `https://api.example.com/?token=${encodeURIComponent(secrets.token)}`,
      basic: `Basic ${Buffer.from(`user:${secrets.password}`).toString('base64')}`,
      [secrets.password]: 'a key that is a secret',
      list: [secrets.token, { json: JSON.stringify({ p: secrets.password }) }],
      '$weft:secret-text': 'user data that looks like a tag',
    },
  };
}

/** A webhook receiver: every body it got, with its path. */
export interface Receiver {
  url: string;
  bodies: { path: string; body: string }[];
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const bodies: { path: string; body: string }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      bodies.push({ path: req.url ?? '', body });
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bodies,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/**
 * The pipeline every round runs: secrets read from env by shell, by webhooks and by handlers,
 * and carried in params (one with a default that *looks* like an env reference: defaults are
 * values, never evaluated). It fails (shell_fail, throws) and is retried once as a whole.
 */
export const PIPELINE = (url: string) => `name: secretive
secrets: [API_TOKEN, DB_PASSWORD]
params:
  header: { type: string }
  config: { type: object, default: { region: eu } }
  note: { type: string, default: "\${{ env.API_TOKEN }}" }
retries: 1
retry_delay: 10ms
defaults:
  on_failure:
    - handler: notify.webhook
      with: { url: "${url}/default-hook", allow_hosts: [127.0.0.1], text: "failed with \${{ params.header }} (\${{ env.DB_PASSWORD }})" }
on_failure:
  - handler: notify.webhook
    with: { url: "${url}/run-failed", allow_hosts: [127.0.0.1], text: "run failed, token \${{ env.API_TOKEN }}, \${{ params.header }}" }
tasks:
  shell_out:
    handler: shell
    with:
      command: |
        printf '%s\\n' "$API_TOKEN"
        printf '%s' "$API_TOKEN" | base64 -w0; echo
        printf '%s' "$DB_PASSWORD" | base64 -w0 | tr '+/' '-_' | tr -d '='; echo
        printf 'user:%s' "$DB_PASSWORD" | base64 -w0; echo
        printf '%s\\n' \${{ env.DB_PASSWORD }} >&2
        printf 'header %s\\n' \${{ params.header }}
        printf 'config %s\\n' \${{ params.config }} >&2
  leaky:
    handler: leaky
  with_params:
    handler: params_probe
    with:
      header: "\${{ params.header }}"
      config: "\${{ params.config }}"
      note: "\${{ params.note }}"
  notify:
    handler: notify.webhook
    depends_on: [shell_out]
    with:
      url: "${url}/task"
      allow_hosts: [127.0.0.1]
      text: "deploying with \${{ env.API_TOKEN }} and \${{ params.header }}"
      extra: { password: "\${{ env.DB_PASSWORD }}", config: "\${{ params.config }}" }
  shell_fail:
    handler: shell
    with:
      command: printf 'auth failed for %s\\n' "$API_TOKEN" >&2; exit 3
    on_failure:
      - handler: notify.webhook
        with: { url: "${url}/task-failed", allow_hosts: [127.0.0.1] }
  throws:
    handler: throws
    retries: 1
    retry_delay: 10ms
`;

/** For `weft trigger`: built-in handlers only, so the CLI compiles it without the test's. */
export const TRIGGERED = (url: string) => `name: triggered
secrets: [API_TOKEN, DB_PASSWORD]
params:
  header: { type: string }
  config: { type: object }
tasks:
  hash:
    handler: shell
    with:
      command: |
        printf '%s' \${{ params.header }} | sha256sum
        printf 'header %s\\n' \${{ params.header }}
  post:
    handler: notify.webhook
    with: { url: "${url}/triggered", allow_hosts: [127.0.0.1], text: "\${{ params.header }}", extra: { config: "\${{ params.config }}" } }
`;

/** What a handler was given: params (ctx.params) and, for params_probe, its arguments. */
export interface Probe {
  task: string;
  runId: string;
  params: JsonObject;
  args?: JsonValue;
}

export function registryFor(secrets: Secrets, probes: Probe[]): HandlerRegistry {
  const leaky: AnyHandler = {
    name: 'leaky',
    run: (_args, ctx) => {
      const token = ctx.env.API_TOKEN ?? '';
      ctx.log.info(`raw ${token}`);
      ctx.log.info(`base64 ${Buffer.from(token).toString('base64')}`);
      ctx.log.warn(`url https://api.example.com/?token=${encodeURIComponent(token)}`);
      ctx.log.info(`json ${JSON.stringify({ token, password: ctx.env.DB_PASSWORD })}`);
      ctx.log.info(`basic ${Buffer.from(`user:${secrets.password}`).toString('base64')}`);
      return {
        token,
        nested: { list: [secrets.password, Buffer.from(token).toString('base64url')] },
        json: JSON.stringify({ token }),
        keyed: { [secrets.password]: true },
      };
    },
  };
  const probe: AnyHandler = {
    name: 'params_probe',
    run: (args, ctx) => {
      probes.push({
        task: ctx.task,
        runId: ctx.run.id,
        params: structuredClone(ctx.params),
        args: args as JsonValue,
      });
      ctx.log.info(`params ${JSON.stringify(ctx.params)}`);
      return { header: ctx.params.header ?? null, note: ctx.params.note ?? null };
    },
  };
  const throws: AnyHandler = {
    name: 'throws',
    run: (_args, ctx) => {
      probes.push({ task: ctx.task, runId: ctx.run.id, params: structuredClone(ctx.params) });
      throw new Error(
        `request failed: ${JSON.stringify({ auth: ctx.env.API_TOKEN, header: ctx.params.header })} / ${encodeURIComponent(secrets.password)}`,
      );
    },
  };
  const registry = new HandlerRegistry(createBuiltinHandlers());
  for (const handler of [leaky, probe, throws]) registry.register(handler);
  return registry;
}

function cellText(value: unknown): string {
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint') return value.toString();
  return '';
}

/**
 * Every table of a SQLite file, each cell as its own text (a JSON column's secret shows in its
 * JSON-escaped form, which a dump of whole rows as JSON would escape once more), then each row as
 * JSON; and the raw bytes of every file in its folder (WAL and journal too), as UTF-8.
 */
export function dumpSqlite(dir: string, file: string): { tables: number; text: string } {
  const db = new Database(join(dir, file), { readonly: true });
  let text = '';
  let tables = 0;
  try {
    for (const { name } of db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as {
      name: string;
    }[]) {
      tables += 1;
      for (const row of db.prepare(`SELECT * FROM "${name}"`).all() as Record<string, unknown>[]) {
        text += `${Object.values(row).map(cellText).join('\n')}\n${JSON.stringify(row)}\n`;
      }
    }
  } finally {
    db.close();
  }
  for (const name of readdirSync(dir)) {
    if (statSync(join(dir, name)).isFile()) text += readFileSync(join(dir, name)).toString('utf8');
  }
  return { tables, text };
}

/**
 * Every table of every schema of the test database: each row as PostgreSQL's text for it
 * (`t::text`), and each of its columns as text (jsonb as its JSON text).
 */
export async function dumpPostgres(db: TestDatabase): Promise<{ tables: number; text: string }> {
  const tables = await db.query<{ schema: string; name: string }>(
    `SELECT table_schema AS schema, table_name AS name FROM information_schema.tables
      WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')`,
  );
  let text = '';
  for (const { schema, name } of tables) {
    const rows = await db.query<{ row: string; cells: string | null }>(
      `SELECT t::text AS row,
              (SELECT string_agg(coalesce(value, ''), E'\\n') FROM jsonb_each_text(to_jsonb(t))) AS cells
         FROM "${schema}"."${name}" t`,
    );
    for (const { row, cells } of rows) text += `${row}\n${cells ?? ''}\n`;
  }
  return { tables: tables.length, text };
}
