import { readdirSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRun } from '../../src/engine/create-run.js';
import type { EngineEvent } from '../../src/engine/events.js';
import { executeRun } from '../../src/engine/execute-run.js';
import { createMasker, MASK, secretForms } from '../../src/engine/mask.js';
import { createBuiltinHandlers } from '../../src/handlers/builtins.js';
import { HandlerRegistry } from '../../src/handlers/registry.js';
import type { AnyHandler } from '../../src/handlers/types.js';
import { loadPipelineText } from '../../src/project/load-pipeline.js';
import { createHttpServer } from '../../src/server/index.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { tempProject, weft } from '../cli/helpers.js';
import { count, seededRng, type Rng } from './tier.js';

/**
 * Item 13: the values of a pipeline's `secrets:` never appear — as they are, base64, base64url,
 * URL-encoded or JSON-escaped — in log lines (handler logs, shell stdout and stderr), the store
 * (every table of the SQLite file, and its raw bytes), errors, task outputs, engine events,
 * webhook bodies, API responses, the dashboard's HTML, or `weft plan`.
 */

const CHARS =
  'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"\'\\/+=&%?# <>{}$!`~:;,|*()[]é€😀';

/** A secret with characters that need escaping in JSON, URLs, HTML and shells (no newline, no NUL). */
function generateSecret(rng: Rng): string {
  const chars = [...CHARS];
  let secret = '';
  for (let n = 16 + rng.int(24); n > 0; n--) secret += rng.pick(chars);
  // Always a few that need escaping somewhere.
  return `${secret}"\\<&%+/`;
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
function leaksIn(text: string, secrets: readonly string[]): string[] {
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

let receiver: Server;
let receiverUrl: string;
const bodies: string[] = [];

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      bodies.push(body);
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
});

afterAll(async () => {
  receiver.closeAllConnections();
  await new Promise((r) => receiver.close(r));
});

const PIPELINE = (url: string) => `name: secretive
secrets: [API_TOKEN, DB_PASSWORD]
on_failure:
  - handler: notify.webhook
    with: { url: "${url}/run-failed", allow_hosts: [127.0.0.1], text: "run failed, token \${{ env.API_TOKEN }}" }
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
  leaky:
    handler: leaky
  notify:
    handler: notify.webhook
    depends_on: [shell_out]
    with:
      url: "${url}/task"
      allow_hosts: [127.0.0.1]
      text: "deploying with \${{ env.API_TOKEN }}"
      extra: { password: "\${{ env.DB_PASSWORD }}" }
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

function registryFor(secrets: { token: string; password: string }): HandlerRegistry {
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
      };
    },
  };
  const throws: AnyHandler = {
    name: 'throws',
    run: (_args, ctx) => {
      throw new Error(
        `request failed: ${JSON.stringify({ auth: ctx.env.API_TOKEN })} / ${encodeURIComponent(secrets.password)}`,
      );
    },
  };
  const registry = new HandlerRegistry(createBuiltinHandlers());
  registry.register(leaky);
  registry.register(throws);
  return registry;
}

describe('secrets never leak', () => {
  const rounds = count(2, 20);
  it(
    `${rounds} runs with generated secrets: logs, store, errors, outputs, events, webhooks, API and dashboard`,
    async () => {
      const rng = seededRng('secrets');
      for (let round = 0; round < rounds; round++) {
        const secrets = { token: generateSecret(rng), password: generateSecret(rng) };
        const all = [secrets.token, secrets.password];
        const env = { PATH: process.env.PATH, API_TOKEN: secrets.token, DB_PASSWORD: secrets.password };
        const dir = mkdtempSync(join(tmpdir(), 'weft-secrets-'));
        bodies.length = 0;
        try {
          const registry = registryFor(secrets);
          const yaml = PIPELINE(receiverUrl);
          const loaded = loadPipelineText('secretive.yaml', yaml, { registry });
          expect(loaded.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
          const store = createSqliteStore(join(dir, 'weft.db'));
          const events: EngineEvent[] = [];
          let runId: string;
          try {
            const run = await createRun(store, {
              plan: loaded.plan!,
              params: {},
              trigger: 'manual',
              now: Date.now(),
            });
            runId = run.id;
            const done = await executeRun(run.id, {
              store,
              registry,
              owner: 'test:1',
              env,
              onEvent: (e) => events.push(e),
            });
            expect(done.state).toBe('failed');

            const logs = await store.getLogs(run.id);
            const text = logs.map((l) => l.message).join('\n');
            // Positive controls: the lines are there, masked.
            expect(logs.filter((l) => l.message.includes(MASK)).length).toBeGreaterThanOrEqual(8);
            expect(leaksIn(text, all)).toEqual([]);
            const tasks = await store.getTaskRuns(run.id);
            expect(tasks.find((t) => t.task === 'leaky')!.output).toMatchObject({ token: MASK });
            expect(leaksIn(JSON.stringify(tasks), all)).toEqual([]);
            const attempts = (await Promise.all(tasks.map((t) => store.getAttempts(run.id, t.task)))).flat();
            expect(attempts.some((a) => a.error?.message.includes(MASK))).toBe(true);
            expect(leaksIn(JSON.stringify(attempts), all)).toEqual([]);
            expect(leaksIn(JSON.stringify(await store.getRun(run.id)), all)).toEqual([]);
            expect(leaksIn(JSON.stringify(await store.getHooks(run.id)), all)).toEqual([]);
            expect(leaksIn(JSON.stringify(events), all)).toEqual([]);

            // Webhooks: the task's post and both failure hooks arrived, masked.
            expect(bodies.length).toBe(3);
            expect(bodies.join('\n')).toContain(MASK);
            expect(leaksIn(bodies.join('\n'), all)).toEqual([]);

            // The API and the dashboard.
            const server = createHttpServer({
              store,
              pipelines: () => [
                {
                  file: 'secretive.yaml',
                  name: 'secretive',
                  plan: loaded.plan,
                  diagnostics: [],
                  source: yaml,
                },
              ],
              env,
              logger: { error: () => undefined },
            });
            const { url } = await server.listen(0, '127.0.0.1');
            try {
              for (const path of [
                '/api/runs',
                `/api/runs/${run.id}`,
                `/api/runs/${run.id}/logs`,
                '/api/pipelines',
                '/api/pipelines/secretive',
                '/',
                `/runs/${run.id}`,
                '/pipelines/secretive',
                '/ui/home',
                `/ui/runs/${run.id}`,
                '/metrics',
              ]) {
                const response = await fetch(`${url}${path}`);
                const body = await response.text();
                expect(response.status, path).toBeLessThan(400);
                expect(leaksIn(body, all), path).toEqual([]);
              }
            } finally {
              await server.close();
            }
          } finally {
            await store.close();
          }

          // Every table of the SQLite file, as text; then the raw bytes of every file it wrote.
          const db = new Database(join(dir, 'weft.db'), { readonly: true });
          const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as {
            name: string;
          }[];
          let dump = '';
          for (const { name } of tables) dump += JSON.stringify(db.prepare(`SELECT * FROM "${name}"`).all());
          db.close();
          expect(tables.length).toBeGreaterThanOrEqual(4);
          expect(dump).toContain(runId);
          expect(leaksIn(dump, all)).toEqual([]);
          for (const file of readdirSync(dir)) {
            const bytes = readFileSync(join(dir, file));
            for (const secret of all) expect(bytes.includes(Buffer.from(secret)), file).toBe(false);
          }
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
    },
    count(20_000, 120_000),
  );

  it('the masker covers each encoded form, and inside longer encoded values', () => {
    const rng = seededRng('secret-forms');
    for (let i = 0; i < count(200, 5000); i++) {
      const secret = generateSecret(rng);
      const mask = createMasker([secret]);
      for (const form of secretForms(secret)) expect(mask(`x ${form} y`)).not.toContain(form);
      for (const prefix of ['', 'u', 'us', 'user:']) {
        const encoded = Buffer.from(`${prefix}${secret}tail`).toString('base64');
        expect(leaksIn(mask(encoded), [secret])).toEqual([]);
      }
      expect(mask(`{"a":${JSON.stringify(secret)}}`)).toBe(`{"a":"${MASK}"}`);
    }
  });

  it('weft plan masks env-substituted secrets, in every form', () => {
    const rng = seededRng('secret-plan');
    const secret = generateSecret(rng);
    const project = tempProject({
      'pipelines/deploy.yaml': `name: deploy
secrets: [API_TOKEN]
tasks:
  call:
    handler: http.request
    with:
      url: "https://api.example.com/deploy?token=\${{ env.API_TOKEN }}"
      headers: { authorization: "Bearer \${{ env.API_TOKEN }}" }
  run:
    handler: shell
    with:
      command: deploy --token \${{ env.API_TOKEN }}
`,
    });
    try {
      for (const format of ['text', 'json']) {
        const result = weft(['plan', 'deploy', ...(format === 'json' ? ['--format', 'json'] : [])], {
          cwd: project.dir,
          env: { API_TOKEN: secret },
        });
        expect(result.code, result.stderr).toBe(0);
        expect(result.stdout).toContain(MASK);
        expect(leaksIn(result.stdout + result.stderr, [secret])).toEqual([]);
      }
    } finally {
      project.cleanup();
    }
  });
});
