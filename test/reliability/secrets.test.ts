import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Plan } from '../../src/compile/plan.js';
import type { JsonObject } from '../../src/core/json.js';
import { createRun } from '../../src/engine/create-run.js';
import type { EngineEvent } from '../../src/engine/events.js';
import { executeRun } from '../../src/engine/execute-run.js';
import { createMasker, MASK, MIN_SECRET_LENGTH, secretForms } from '../../src/engine/mask.js';
import { prepareResume } from '../../src/engine/resume.js';
import { SECRET_TEXT_TAG } from '../../src/engine/secret-params.js';
import { createBuiltinHandlers } from '../../src/handlers/builtins.js';
import { HandlerRegistry } from '../../src/handlers/registry.js';
import { resolveParams } from '../../src/pipeline/params.js';
import { loadPipelineText } from '../../src/project/load-pipeline.js';
import { createScheduler } from '../../src/schedule/scheduler.js';
import type { SchedulerEvent } from '../../src/schedule/events.js';
import { createHttpServer } from '../../src/server/index.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { RunRecord, RunStore } from '../../src/store/run-store.js';
import { createWorker } from '../../src/worker/worker.js';
import { spawnWeft, tempProject, weft } from '../cli/helpers.js';
import { useTestDatabase, waitFor } from '../worker/pg-support.js';
import {
  dumpPostgres,
  dumpSqlite,
  envFor,
  generateSecret,
  leaksIn,
  paramsFor,
  PIPELINE,
  registryFor,
  startReceiver,
  TRIGGERED,
  type Probe,
  type Receiver,
  type Secrets,
} from './secret-support.js';
import { count, seededRng } from './tier.js';

/**
 * Item 13: the values of a pipeline's `secrets:` never appear — as they are, base64, base64url,
 * URL-encoded or JSON-escaped — in log lines (handler logs, shell stdout and stderr), the store
 * (every table of the SQLite file and its raw bytes; every table of the PostgreSQL database, the
 * task queue's included), errors, task outputs, engine and scheduler events, webhook bodies, API
 * responses, the dashboard's HTML, or `weft plan` — also when they arrive in run params (given to
 * createRun, posted to the API, passed to `weft trigger`): params are stored sealed, and every
 * handler (after a resume, a run retry, on a worker) still receives the real values.
 */

const db = await useTestDatabase('test/reliability/secrets.test.ts');

let receiver: Receiver;
beforeAll(async () => {
  receiver = await startReceiver();
});
afterAll(async () => {
  await receiver.close();
});

function loadPlan(file: string, yaml: string, registry: HandlerRegistry): Plan {
  const loaded = loadPipelineText(file, yaml, { registry });
  expect(loaded.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return loaded.plan!;
}

function withDefaults(plan: Plan, given: JsonObject): JsonObject {
  const resolved = resolveParams(plan.params, given, 'json');
  expect(resolved.errors).toEqual([]);
  return resolved.params;
}

/** The params a handler must have received: the real values, and the default as written. */
function expectReal(probe: Probe | undefined, params: JsonObject): void {
  expect(probe, 'the handler ran').toBeDefined();
  expect(probe!.params).toEqual({ ...params, note: '${{ env.API_TOKEN }}' });
}

/** How the `header` param (`Bearer <token>`) is stored, and how that looks in a dump of the store. */
const SEALED_HEADER = { [SECRET_TEXT_TAG]: ['Bearer ', { secret: 'API_TOKEN' }] };
const SEALED_IN_DUMP = /"\$weft:secret-text": ?\["Bearer ", ?\{"secret": ?"API_TOKEN"\}\]/;

interface Round {
  secrets: Secrets;
  runIds: string[];
}

/**
 * One round on `store`: a run created with params, executed, resumed (refused first without the
 * secret); then a run requested through the API and taken by a scheduler. Checks what each
 * handler received, and that nothing read back from the store, the API or the dashboard, no
 * event and no webhook body holds a secret. The caller dumps the store.
 */
async function exerciseStore(store: RunStore, secrets: Secrets): Promise<Round> {
  const all = [secrets.token, secrets.password];
  const env = envFor(secrets);
  const probes: Probe[] = [];
  const registry = registryFor(secrets, probes);
  const yaml = PIPELINE(receiver.url);
  const plan = loadPlan('secretive.yaml', yaml, registry);
  const given = paramsFor(secrets);
  const params = withDefaults(plan, given);
  const events: EngineEvent[] = [];
  receiver.bodies.length = 0;

  // A run with params: stored sealed, the handlers get the real values.
  const run = await createRun(store, { plan, params, trigger: 'manual', now: Date.now(), env });
  expect(run.params.header).toEqual(SEALED_HEADER);
  const engine = { store, registry, owner: 'test:1', env, onEvent: (e: EngineEvent) => events.push(e) };
  const done = await executeRun(run.id, engine);
  expect(done.state).toBe('failed');
  expect(done.attempt).toBe(2);
  const probe = probes.find((p) => p.task === 'with_params' && p.runId === run.id);
  expectReal(probe, params);
  expect(probe!.args).toEqual({ header: given.header, config: given.config, note: '${{ env.API_TOKEN }}' });
  // Both passes of the run (a run-level retry) read them.
  expect(probes.filter((p) => p.task === 'throws' && p.runId === run.id)).toHaveLength(4);
  for (const p of probes.filter((p) => p.task === 'throws')) expectReal(p, params);

  const logs = await store.getLogs(run.id);
  const text = logs.map((l) => l.message).join('\n');
  // Positive controls: the lines are there, masked.
  expect(logs.filter((l) => l.message.includes(MASK)).length).toBeGreaterThanOrEqual(10);
  expect(text).toContain(`header Bearer ${MASK}`);
  expect(leaksIn(text, all)).toEqual([]);
  const tasks = await store.getTaskRuns(run.id);
  expect(tasks.find((t) => t.task === 'leaky')!.output).toMatchObject({ token: MASK });
  expect(tasks.find((t) => t.task === 'with_params')!.output).toEqual({
    header: `Bearer ${MASK}`,
    note: '${{ env.API_TOKEN }}',
  });
  expect(leaksIn(JSON.stringify(tasks), all)).toEqual([]);
  const attempts = (await Promise.all(tasks.map((t) => store.getAttempts(run.id, t.task)))).flat();
  expect(attempts.some((a) => a.error?.message.includes(MASK))).toBe(true);
  expect(leaksIn(JSON.stringify(attempts), all)).toEqual([]);
  expect(leaksIn(JSON.stringify(await store.getRun(run.id)), all)).toEqual([]);
  expect(leaksIn(JSON.stringify(await store.getHooks(run.id)), all)).toEqual([]);

  // Resume: refused, changing nothing, where the secret is not set; then the handlers that run
  // again get the real values once more.
  const without = { ...env, API_TOKEN: undefined };
  const refused = await prepareResume(store, run.id, { now: Date.now(), env: without }).then(
    () => null,
    (error: unknown) => error,
  );
  expect(refused).toMatchObject({ code: 'SECRET_MISSING' });
  expect((refused as Error).message).toContain('API_TOKEN');
  expect((refused as Error).message).toContain('"header"');
  expect((await store.getRun(run.id))!.state).toBe('failed');
  probes.length = 0;
  await prepareResume(store, run.id, { now: Date.now(), env });
  const resumed = await executeRun(run.id, engine);
  expect(resumed.state).toBe('failed');
  expect(probes.map((p) => p.task)).toContain('throws');
  expect(probes.map((p) => p.task)).not.toContain('with_params');
  for (const p of probes) expectReal(p, params);

  // Requested through the API, taken by a scheduler: the request is stored sealed too.
  const schedulerLog: SchedulerEvent[] = [];
  const scheduler = createScheduler({
    store,
    registry,
    pipelines: () => [plan],
    owner: 'test:2',
    isOwnerAlive: () => true,
    pollMs: 60_000,
    engine: { env, cancelPollMs: 50 },
    onLog: (event) => schedulerLog.push(event),
  });
  const server = createHttpServer({
    store,
    pipelines: () => [{ file: 'secretive.yaml', name: 'secretive', plan, diagnostics: [], source: yaml }],
    env,
    logger: { error: () => undefined },
  });
  const { url } = await server.listen(0, '127.0.0.1');
  let requested: RunRecord;
  try {
    const response = await fetch(`${url}/api/pipelines/secretive/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ params: given }),
    });
    const body = await response.text();
    expect(response.status, body).toBe(202);
    expect(leaksIn(body, all)).toEqual([]);
    const requestId = (JSON.parse(body) as { request: { id: string } }).request.id;
    const stored = (await store.getRunRequest(requestId))!;
    expect(stored.params.header).toEqual(SEALED_HEADER);
    expect(leaksIn(JSON.stringify(stored), all)).toEqual([]);

    await scheduler.start();
    probes.length = 0;
    expect(await scheduler.pollRequests()).toBe(1);
    await scheduler.whenIdle();
    const request = (await store.getRunRequest(requestId))!;
    expect(request).toMatchObject({ state: 'done', error: null });
    requested = (await store.getRun(request.runId!))!;
    expect(requested.state).toBe('failed');
    expect(requested.params.header).toEqual(SEALED_HEADER);
    expectReal(
      probes.find((p) => p.task === 'with_params' && p.runId === requested.id),
      params,
    );

    // The API and the dashboard, for both runs and the request.
    for (const path of [
      '/api/runs',
      `/api/runs/${run.id}`,
      `/api/runs/${run.id}/logs`,
      `/api/runs/${requested.id}`,
      `/api/runs/${requested.id}/logs`,
      `/api/requests/${requestId}`,
      '/api/pipelines',
      '/api/pipelines/secretive',
      '/',
      `/runs/${run.id}`,
      '/pipelines/secretive',
      '/ui/home',
      `/ui/runs/${run.id}`,
      `/ui/runs/${requested.id}`,
      '/metrics',
    ]) {
      const page = await fetch(`${url}${path}`);
      const text = await page.text();
      expect(page.status, path).toBeLessThan(400);
      expect(leaksIn(text, all), path).toEqual([]);
    }
  } finally {
    await server.close();
    await scheduler.stop({ graceMs: 1000 });
  }

  expect(leaksIn(JSON.stringify(events), all)).toEqual([]);
  expect(leaksIn(JSON.stringify(schedulerLog), all)).toEqual([]);
  // Webhooks: task posts, task and default failure hooks, run hooks — all there, all masked.
  const paths = new Set(receiver.bodies.map((b) => b.path));
  expect([...paths].sort()).toEqual(['/default-hook', '/run-failed', '/task', '/task-failed']);
  // Hooks read the params too (unsealed, then masked on the way out).
  for (const path of ['/default-hook', '/run-failed', '/task']) {
    for (const { body } of receiver.bodies.filter((b) => b.path === path)) {
      expect(body, path).toContain(`Bearer ${MASK}`);
    }
  }
  const bodies = receiver.bodies.map((b) => b.body).join('\n');
  expect(leaksIn(bodies, all)).toEqual([]);
  return { secrets, runIds: [run.id, requested.id] };
}

describe('secrets never leak', () => {
  it(
    `SQLite store: ${count(2, 20)} rounds with generated secrets in env and params`,
    async () => {
      const rng = seededRng('secrets-sqlite');
      for (let round = 0; round < count(2, 20); round++) {
        const dir = mkdtempSync(join(tmpdir(), 'weft-secrets-'));
        try {
          const store = createSqliteStore(join(dir, 'weft.db'));
          let result: Round;
          try {
            result = await exerciseStore(store, {
              token: generateSecret(rng),
              password: generateSecret(rng),
            });
          } finally {
            await store.close();
          }
          const dump = dumpSqlite(dir, 'weft.db');
          expect(dump.tables).toBeGreaterThanOrEqual(4);
          for (const id of result.runIds) expect(dump.text).toContain(id);
          expect(dump.text).toMatch(SEALED_IN_DUMP);
          expect(leaksIn(dump.text, [result.secrets.token, result.secrets.password])).toEqual([]);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
    },
    count(30_000, 300_000),
  );

  describe.skipIf(!db.available)('PostgreSQL store', () => {
    it(
      `${count(1, 10)} rounds with generated secrets in env and params; every table dumped`,
      async () => {
        const rng = seededRng('secrets-postgres');
        const store = await db.openStore();
        const used: string[] = [];
        const runIds: string[] = [];
        for (let round = 0; round < count(1, 10); round++) {
          const result = await exerciseStore(store, {
            token: generateSecret(rng),
            password: generateSecret(rng),
          });
          used.push(result.secrets.token, result.secrets.password);
          runIds.push(...result.runIds);
        }
        await store.flush();
        const dump = await dumpPostgres(db);
        expect(dump.tables).toBeGreaterThanOrEqual(5);
        for (const id of runIds) expect(dump.text).toContain(id);
        expect(dump.text).toMatch(SEALED_IN_DUMP);
        expect(leaksIn(dump.text, used)).toEqual([]);
      },
      count(30_000, 300_000),
    );

    it('workers expand sealed params; a worker without the secret fails the task, naming it', async () => {
      const rng = seededRng('secrets-workers');
      const secrets = { token: generateSecret(rng), password: generateSecret(rng) };
      const all = [secrets.token, secrets.password];
      const probes: Probe[] = [];
      const registry = registryFor(secrets, probes);
      const plan = loadPlan('secretive.yaml', PIPELINE(receiver.url), registry);
      const params = withDefaults(plan, paramsFor(secrets));
      const store = await db.openStore();
      const queue = await db.openQueue();
      receiver.bodies.length = 0;

      const runOnWorker = async (env: Record<string, string | undefined>): Promise<RunRecord> => {
        const worker = createWorker({
          store,
          queue,
          registry,
          env,
          concurrency: 8,
          leaseMs: 5000,
          reapIntervalMs: 100,
          pollMs: 100,
          cancelGraceMs: 200,
        });
        await worker.start();
        try {
          const run = await createRun(store, {
            plan,
            params,
            trigger: 'manual',
            now: Date.now(),
            env: envFor(secrets),
          });
          expect(await queue.startRun(run.id)).toBe(true);
          return await waitFor(
            async () => {
              const r = await store.getRun(run.id);
              return r && ['succeeded', 'failed', 'cancelled'].includes(r.state) ? r : undefined;
            },
            30_000,
            `run ${run.id} to finish on a worker`,
          );
        } finally {
          await worker.stop({ graceMs: 1000 });
        }
      };

      const done = await runOnWorker(envFor(secrets));
      expect(done.state).toBe('failed');
      expectReal(
        probes.find((p) => p.task === 'with_params' && p.runId === done.id),
        params,
      );
      for (const p of probes.filter((p) => p.task === 'throws')) expectReal(p, params);
      expect(probes.filter((p) => p.task === 'throws').length).toBeGreaterThanOrEqual(2);
      const logs = (await store.getLogs(done.id)).map((l) => l.message).join('\n');
      expect(logs).toContain(`header Bearer ${MASK}`);

      probes.length = 0;
      const refused = await runOnWorker({ PATH: process.env.PATH, DB_PASSWORD: secrets.password });
      expect(refused.state).toBe('failed');
      expect(probes).toEqual([]);
      const probeTask = (await store.getTaskRuns(refused.id)).find((t) => t.task === 'with_params')!;
      expect(probeTask.error).toMatchObject({ code: 'SECRET_MISSING' });
      expect(probeTask.error!.message).toContain('API_TOKEN');

      await store.flush();
      const dump = await dumpPostgres(db);
      expect(dump.text).toContain(done.id);
      expect(leaksIn(dump.text, all)).toEqual([]);
      expect(leaksIn(receiver.bodies.map((b) => b.body).join('\n'), all)).toEqual([]);
    }, 90_000);
  });

  it('weft trigger stores the request sealed; the scheduler that takes it expands it', async () => {
    const rng = seededRng('secrets-trigger');
    const secrets = { token: generateSecret(rng), password: generateSecret(rng) };
    const all = [secrets.token, secrets.password];
    const env = envFor(secrets);
    const given = paramsFor(secrets);
    const header = `Bearer ${secrets.token}`;
    const project = tempProject({ 'pipelines/triggered.yaml': TRIGGERED(receiver.url) });
    const storeFile = join(project.dir, 'weft.db');
    const store = createSqliteStore(storeFile);
    const registry = new HandlerRegistry(createBuiltinHandlers());
    const plan = loadPlan('triggered.yaml', TRIGGERED(receiver.url), registry);
    const scheduler = createScheduler({
      store,
      registry,
      pipelines: () => [plan],
      owner: 'test:3',
      isOwnerAlive: () => true,
      pollMs: 25,
      engine: { env },
    });
    receiver.bodies.length = 0;
    try {
      await scheduler.start();
      const child = spawnWeft(
        [
          'trigger',
          'triggered',
          '--wait',
          '--param',
          `header=${header}`,
          '--param',
          `config=${JSON.stringify(given.config)}`,
        ],
        { cwd: project.dir, env: { ...env, WEFT_STORE: storeFile } },
      );
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
      child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      expect(code, out).toBe(0);
      expect(leaksIn(out, all)).toEqual([]);
      const requestId = /request (q_\S+)/.exec(out)?.[1];
      const runId = /run (r_\S+)/.exec(out)?.[1];
      expect(requestId, out).toBeDefined();
      expect(runId, out).toBeDefined();
      await scheduler.whenIdle();

      const request = (await store.getRunRequest(requestId!))!;
      expect(request).toMatchObject({ state: 'done', runId });
      expect(request.params.header).toEqual(SEALED_HEADER);
      const run = (await store.getRun(runId!))!;
      expect(run.state).toBe('succeeded');
      // The shell task hashed the header it was given: the real one, not the sealed form.
      const logs = (await store.getLogs(run.id)).map((l) => l.message).join('\n');
      const sha = createHash('sha256').update(header).digest('hex');
      expect(logs).toContain(sha);
      expect(logs).toContain(`header Bearer ${MASK}`);
      expect(receiver.bodies.map((b) => b.path)).toEqual(['/triggered']);
      expect(leaksIn(receiver.bodies[0]!.body, all)).toEqual([]);
    } finally {
      await scheduler.stop({ graceMs: 1000 });
      await store.close();
    }
    try {
      const dump = dumpSqlite(project.dir, 'weft.db');
      expect(dump.text).toMatch(SEALED_IN_DUMP);
      expect(leaksIn(dump.text, all)).toEqual([]);
    } finally {
      project.cleanup();
    }
  }, 60_000);

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

  it(`masks values of ${MIN_SECRET_LENGTH} characters and more, not shorter ones (documented)`, () => {
    expect(MIN_SECRET_LENGTH).toBe(3);
    for (const secret of ['a', 'ab', '', undefined]) {
      expect(createMasker([secret])('a ab abc')).toBe('a ab abc');
    }
    expect(createMasker(['abc'])('a ab abc')).toBe(`a ab ${MASK}`);
    expect(createMasker(['a"c'])('x a\\"c y')).toBe(`x ${MASK} y`);
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
