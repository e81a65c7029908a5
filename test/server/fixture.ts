import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Plan } from '../../src/compile/plan.js';
import type { JsonObject } from '../../src/core/json.js';
import { createRun, executeRun } from '../../src/engine/index.js';
import { HandlerRegistry } from '../../src/handlers/registry.js';
import type { AnyHandler } from '../../src/handlers/types.js';
import { loadPipelineText } from '../../src/project/load-pipeline.js';
import { newRunId } from '../../src/store/ids.js';
import { createMemoryStore } from '../../src/store/memory/memory-store.js';
import type { RunRecord, RunStore } from '../../src/store/run-store.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import {
  createHttpServer,
  type HttpServer,
  type HttpServerOptions,
  type PipelineEntry,
} from '../../src/server/index.js';

/**
 * A store seeded through the real engine, the pipelines `weft serve` would pass, and a server on
 * 127.0.0.1 port 0. Handlers: `xss` logs a <script> and a secret, `flaky` fails its first attempt,
 * `boom` always fails, `ok`, `wait` blocks until the test opens its gate.
 */

export const SECRET = 'sk-live-0123456789abcdef';
export const XSS = '<script>window.__xss = 1; alert(1)</script>';

export const DEMO_YAML = `name: demo
description: "Says <b>hello</b>"
schedule:
  cron: "0 6 * * *"
  timezone: Europe/Amsterdam
secrets: [API_KEY]
params:
  who: { type: string, default: world }
  count: { type: integer, default: 1 }
tasks:
  greet:
    handler: xss
  flaky:
    handler: flaky
    depends_on: greet
    retries: 2
    retry_delay: 20ms
  done:
    handler: ok
    depends_on: flaky
`;

export const BROKEN_YAML = `name: broken
tasks:
  explode:
    handler: boom
    retries: 1
    retry_delay: 10ms
  after:
    handler: ok
    depends_on: explode
`;

export const SLOW_YAML = `name: slow
tasks:
  hold:
    handler: wait
`;

export const INVALID_YAML = `name: invalid
tasks:
  a:
    handler: ok
    depends_on: missing
`;

export interface Gate {
  open(): void;
  promise: Promise<void>;
}

export function createGate(): Gate {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, promise };
}

export class Fixture {
  readonly registry = new HandlerRegistry();
  readonly entries: PipelineEntry[] = [];
  gate = createGate();
  #clock = Date.parse('2030-03-01T10:00:00.000Z');
  dir: string | undefined;

  constructor(readonly store: RunStore) {
    const handlers: AnyHandler[] = [
      {
        name: 'xss',
        run: (_args, ctx) => {
          ctx.log.info(XSS);
          ctx.log.warn(`using key ${SECRET}`);
          return { key: SECRET, who: ctx.params.who ?? null };
        },
      },
      {
        name: 'flaky',
        run: (_args, ctx) => {
          if (ctx.attempt === 1) throw new Error(`first attempt fails (key ${SECRET})`);
          ctx.log.info('second attempt works');
          return { attempt: ctx.attempt };
        },
      },
      {
        name: 'boom',
        run: () => {
          throw new Error('boom <img src=x onerror=alert(2)>');
        },
      },
      { name: 'ok', run: (_args, ctx) => ({ task: ctx.task }) },
      {
        name: 'wait',
        run: async (_args, ctx) => {
          ctx.log.info('waiting for the gate');
          await this.gate.promise;
          ctx.log.info('gate opened');
          return null;
        },
      },
    ];
    for (const handler of handlers) this.registry.register(handler);
    for (const [file, text] of [
      ['pipelines/demo.yaml', DEMO_YAML],
      ['pipelines/broken.yaml', BROKEN_YAML],
      ['pipelines/slow.yaml', SLOW_YAML],
      ['pipelines/invalid.yaml', INVALID_YAML],
    ] as const) {
      const loaded = loadPipelineText(file, text, { registry: this.registry });
      const name = /^name: (\S+)/m.exec(text)![1]!;
      this.entries.push({ file, name, plan: loaded.plan, diagnostics: loaded.diagnostics, source: text });
    }
  }

  plan(name: string): Plan {
    const plan = this.entries.find((e) => e.name === name)?.plan;
    if (!plan) throw new Error(`no valid plan ${name}`);
    return plan;
  }

  nextTime(): number {
    this.#clock += 60_000;
    return this.#clock;
  }

  async create(
    name: string,
    options: { params?: JsonObject; scheduledFor?: string } = {},
  ): Promise<RunRecord> {
    const now = this.nextTime();
    return createRun(this.store, {
      plan: this.plan(name),
      params: options.params ?? {},
      trigger: options.scheduledFor ? 'schedule' : 'manual',
      now,
      id: newRunId(now),
      ...(options.scheduledFor ? { scheduledFor: options.scheduledFor } : {}),
    });
  }

  /** The engine runs with an empty env, so the secret reaches the store unmasked: the server must mask it. */
  execute(runId: string): Promise<RunRecord> {
    return executeRun(runId, {
      store: this.store,
      registry: this.registry,
      owner: 'test-host:1',
      env: {},
      random: () => 0.5,
      heartbeatMs: 60_000,
      cancelPollMs: 20,
      cancelGraceMs: 200,
    });
  }

  async run(name: string, options: { params?: JsonObject; scheduledFor?: string } = {}): Promise<RunRecord> {
    const run = await this.create(name, options);
    return this.execute(run.id);
  }

  /** A minimal stand-in for the scheduler: claims run requests and executes them with the engine. */
  async serveRequests(): Promise<string[]> {
    const claimed = await this.store.claimRunRequests(10, 'test-host:1', new Date().toISOString());
    const ids: string[] = [];
    for (const request of claimed) {
      const run = await this.create(request.pipeline, { params: request.params });
      await this.store.completeRunRequest(request.id, run.id, null, new Date().toISOString());
      ids.push(run.id);
      void this.execute(run.id);
    }
    return ids;
  }

  async cleanup(): Promise<void> {
    await this.store.close();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

export function memoryFixture(): Fixture {
  return new Fixture(createMemoryStore());
}

export function sqliteFixture(): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'weft-server-'));
  const fixture = new Fixture(createSqliteStore(join(dir, 'weft.db')));
  fixture.dir = dir;
  return fixture;
}

export interface Served {
  server: HttpServer;
  url: string;
  close(): Promise<void>;
}

export async function serve(fixture: Fixture, options: Partial<HttpServerOptions> = {}): Promise<Served> {
  const server = createHttpServer({
    store: fixture.store,
    pipelines: () => fixture.entries,
    env: { API_KEY: SECRET },
    logger: { error: () => undefined },
    streamPollMs: 20,
    ...options,
  });
  const { url } = await server.listen(0, '127.0.0.1');
  return { server, url, close: () => server.close() };
}

/** Waits until `check` holds, polling; fails the test with `what` after `ms`. */
export async function until(check: () => Promise<boolean> | boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
