#!/usr/bin/env node
// Distributed execution on PostgreSQL: throughput of the standard workloads of
// ../shared/bench/gen-dag.mjs (fanout-10000, chain-1000; real loader, built-in `noop`) drained by
// N worker processes on one PostgreSQL, beside the same runs on the embedded store (`weft run`'s
// interpreter on SQLite). For the chain it also reports the time from a task's end to its
// dependent's start (p50/p99), from the times recorded in the store.
//   node bench/workers.mjs [--workers 4] [--concurrency 64] [--workload fanout-10000|chain-1000]
// Needs `npm run build` and a PostgreSQL at $DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres);
// creates a database of its own and drops it at the end.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const arg = (name, fallback) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : fallback);
const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const { createBuiltinRegistry } = await import('../dist/handlers/builtins.js');

// ---- child: one worker process ------------------------------------------------------------------
if (argv[0] === '--child-worker') {
  const url = argv[1];
  const concurrency = Number(argv[2]);
  const { createPostgresStore } = await import('../dist/store/postgres/postgres-store.js');
  const { createPostgresTaskQueue } = await import('../dist/store/postgres/queue.js');
  const { createWorker } = await import('../dist/worker/worker.js');
  const store = await createPostgresStore(url, { migrate: false });
  const queue = await createPostgresTaskQueue(url, { migrate: false });
  const { registry, calls } = timedRegistry();
  const worker = createWorker({ store, queue, registry, concurrency, env: {} });
  await worker.start();
  process.send?.('ready');
  process.on('message', async (message) => {
    if (typeof message === 'object' && message.dump) {
      const prefix = `${message.dump}/`;
      const mine = [...calls].filter(([key]) => key.startsWith(prefix));
      process.send({ calls: mine.map(([key, at]) => [key.slice(prefix.length), at]) });
      return;
    }
    if (message !== 'stop') return;
    await worker.stop({ graceMs: 1000 });
    await queue.close();
    await store.close();
    process.exit(0);
  });
} else {
  await main();
}

function workloadFile(name) {
  const out = join(root, 'bench', 'out');
  mkdirSync(out, { recursive: true });
  const file = join(out, `${name}.yaml`);
  if (!existsSync(file)) {
    const [shape, n] = name.split('-');
    execFileSync('node', [
      resolve(root, '..', 'shared', 'bench', 'gen-dag.mjs'),
      '--shape',
      shape,
      '--n',
      n,
      file,
    ]);
  }
  return file;
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * The built-in registry with `noop` timed: when each call happened (wall clock, sub-millisecond;
 * a noop ends where it starts), so a task's end to its dependent's start is measured as a
 * handler would see it, across processes on this machine.
 */
function timedRegistry() {
  const registry = createBuiltinRegistry();
  const noop = registry.get('noop');
  const calls = new Map();
  registry.register({
    ...noop,
    run: (args, ctx) => {
      calls.set(`${ctx.run.id}/${ctx.task}`, performance.timeOrigin + performance.now());
      return noop.run(args, ctx);
    },
  });
  return { registry, calls };
}

/** Gaps between the calls of each task and of its dependents (ms), sorted. */
function callGaps(plan, at) {
  const gaps = [];
  for (const name of plan.order)
    for (const dep of plan.tasks[name].dependsOn) gaps.push(at.get(name) - at.get(dep));
  return gaps.sort((a, b) => a - b);
}

async function main() {
  const workers = Number(arg('--workers', '4'));
  const concurrency = Number(arg('--concurrency', '64'));
  const only = arg('--workload');
  const workloads = only ? [only] : ['fanout-10000', 'chain-1000'];
  const { loadPipeline } = await import('../dist/project/load-pipeline.js');
  const { createRun, executeRun } = await import('../dist/engine/index.js');
  const { createSqliteStore } = await import('../dist/store/sqlite/sqlite-store.js');
  const { createPostgresStore } = await import('../dist/store/postgres/postgres-store.js');
  const { createPostgresTaskQueue } = await import('../dist/store/postgres/queue.js');
  const registry = createBuiltinRegistry();

  const dbName = `weft_bench_${randomBytes(4).toString('hex')}`;
  const adminClient = new pg.Client({ connectionString: ADMIN_URL });
  await adminClient.connect();
  await adminClient.query(`CREATE DATABASE ${dbName}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${dbName}`;
  const dbUrl = url.toString();
  const children = [];
  try {
    const store = await createPostgresStore(dbUrl);
    const queue = await createPostgresTaskQueue(dbUrl);
    for (let i = 0; i < workers; i++) {
      const child = spawn(
        process.execPath,
        [fileURLToPath(import.meta.url), '--child-worker', dbUrl, String(concurrency)],
        {
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        },
      );
      children.push(child);
      await new Promise((ok, fail) => {
        child.once('message', ok);
        child.once('exit', (code) => fail(new Error(`worker exited with ${code}`)));
      });
    }
    console.log(
      `PostgreSQL: ${workers} worker processes, concurrency ${concurrency} each (2-core machine, PostgreSQL on it too)`,
    );
    for (const workload of workloads) {
      const loaded = await loadPipeline(workloadFile(workload), { registry });
      if (!loaded.plan) throw new Error(`${workload} did not compile`);
      const plan = loaded.plan;
      const tasks = plan.order.length;

      // Distributed: create, hand to the queue, wait for the run to end.
      const results = [];
      for (let round = 0; round < 2; round++) {
        const run = await createRun(store, { plan, params: {}, trigger: 'manual', now: Date.now() });
        const started = performance.now();
        await queue.startRun(run.id);
        let final;
        for (;;) {
          final = await store.getRun(run.id);
          if (['succeeded', 'failed', 'cancelled'].includes(final.state)) break;
          await new Promise((r) => setTimeout(r, 10));
        }
        const ms = performance.now() - started;
        if (final.state !== 'succeeded') throw new Error(`run ${final.state}`);
        results.push({ ms, run });
      }
      const best = results[results.length - 1];
      let line = `${workload.padEnd(14)} postgres+${workers}w ${String(tasks).padStart(6)} tasks ${Math.round(
        tasks / (best.ms / 1000),
      )
        .toLocaleString('en-US')
        .padStart(7)} tasks/s (${best.ms.toFixed(0)} ms)`;
      if (workload.startsWith('chain')) {
        const at = new Map();
        for (const child of children) {
          const reply = await new Promise((done) => {
            child.once('message', done);
            child.send({ dump: best.run.id });
          });
          for (const [name, when] of reply.calls) at.set(name, when);
        }
        const gaps = callGaps(plan, at);
        line += `  end->start p50 ${percentile(gaps, 50).toFixed(2)} ms p99 ${percentile(gaps, 99).toFixed(2)} ms`;
      }
      console.log(line);

      // Embedded: the local interpreter on SQLite, as `weft run` does.
      const dir = mkdtempSync(join(tmpdir(), 'weft-bench-'));
      try {
        const sqlite = createSqliteStore(join(dir, 'weft.db'));
        const timed = timedRegistry();
        let ms = 0;
        let last;
        for (let round = 0; round < 2; round++) {
          const run = await createRun(sqlite, { plan, params: {}, trigger: 'manual', now: Date.now() });
          const started = performance.now();
          last = await executeRun(run.id, {
            store: sqlite,
            registry: timed.registry,
            owner: `bench:${process.pid}`,
            env: {},
          });
          await sqlite.flush();
          ms = performance.now() - started;
        }
        let embedded = `${workload.padEnd(14)} sqlite (weft run) ${String(tasks).padStart(6)} tasks ${Math.round(
          tasks / (ms / 1000),
        )
          .toLocaleString('en-US')
          .padStart(7)} tasks/s (${ms.toFixed(0)} ms)`;
        if (workload.startsWith('chain')) {
          const prefix = `${last.id}/`;
          const at = new Map(
            [...timed.calls]
              .filter(([key]) => key.startsWith(prefix))
              .map(([key, when]) => [key.slice(prefix.length), when]),
          );
          const gaps = callGaps(plan, at);
          embedded += `  end->start p50 ${percentile(gaps, 50).toFixed(2)} ms p99 ${percentile(gaps, 99).toFixed(2)} ms`;
        }
        console.log(embedded);
        await sqlite.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    await queue.close();
    await store.close();
  } finally {
    await Promise.all(
      children.map(
        (child) =>
          new Promise((done) => {
            if (child.exitCode !== null) return done();
            child.once('exit', done);
            child.send('stop');
            setTimeout(() => child.kill('SIGKILL'), 5000).unref();
          }),
      ),
    );
    await adminClient.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await adminClient.end();
  }
}
