// Causal Organism figures (printed, not asserted). Needs Redis and PostgreSQL, and `npm run build`.
//   node bench/organism.mjs [--interactions 100000] [--batch 5000] [--people 1000]
//                           [--analysis-people 5000] [--analysis-interactions 200000] [--skip-analysis]
//
// Both pipelines run through the engine exactly as `weft run` runs them: the real YAML, loaded and
// compiled with the default registry, createRun + executeRun, a SQLite run store (task outputs,
// logs and state written for every task). Each figure is printed with the load average measured
// around it, because on a 2-core machine shared with other work the load moves the figures a lot.
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { createRun, executeRun, localOwner } from '../dist/engine/index.js';
import { closeOrganismConnections, emitInteractions } from '../dist/organism/index.js';
import { createDefaultRegistry } from '../dist/project/default-handlers.js';
import { loadPipeline } from '../dist/project/load-pipeline.js';
import { createSqliteStore } from '../dist/store/sqlite/sqlite-store.js';

const { values } = parseArgs({
  options: {
    interactions: { type: 'string', default: '100000' },
    batch: { type: 'string', default: '5000' },
    people: { type: 'string', default: '1000' },
    'analysis-people': { type: 'string', default: '5000' },
    'analysis-interactions': { type: 'string', default: '200000' },
    'skip-analysis': { type: 'boolean', default: false },
  },
});
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const suffix = randomBytes(4).toString('hex');
const prefix = `weft-bench-${suffix}:`;
const mb = (bytes) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;
const load = () => loadavg()[0].toFixed(2);
let peakRss = 0;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 25);

const registry = createDefaultRegistry();
const pipelineFile = (name) => new URL(`../pipelines/${name}`, import.meta.url).pathname;
async function planOf(name) {
  const loaded = await loadPipeline(pipelineFile(name), { registry });
  if (!loaded.plan) throw new Error(`${name}: ${JSON.stringify(loaded.diagnostics)}`);
  return loaded.plan;
}

const admin = new pg.Client({ connectionString: ADMIN_URL });
await admin.connect();
const databases = [];
async function createDatabase(tag) {
  const name = `weft_bench_${tag}_${suffix}`;
  await admin.query(`CREATE DATABASE ${name}`);
  databases.push(name);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}
const dir = mkdtempSync(join(tmpdir(), 'weft-bench-organism-'));
const store = createSqliteStore(join(dir, 'weft.db'));
const redis = new Redis(REDIS_URL);

/** One run of a plan through the engine; throws unless it succeeded. */
async function runOnce(plan, params, env) {
  const run = await createRun(store, { plan, params, trigger: 'manual', now: Date.now() });
  const final = await executeRun(run.id, { store, registry, owner: localOwner(), env });
  if (final.state !== 'succeeded') {
    const tasks = await store.getTaskRuns(run.id);
    throw new Error(
      `run ${run.id} ${final.state}: ${JSON.stringify(tasks.map((t) => [t.task, t.state, t.error]))}`,
    );
  }
  return run.id;
}

/** Runs the incremental pipeline until a run fetches nothing; returns the runs and entries applied. */
let taskMs = {};
async function drain(plan, params, env) {
  let runs = 0;
  let applied = 0;
  for (;;) {
    const runId = await runOnce(plan, params, env);
    runs++;
    const tasks = await store.getTaskRuns(runId);
    for (const task of tasks)
      taskMs[task.task] = (taskMs[task.task] ?? 0) + Date.parse(task.finishedAt) - Date.parse(task.startedAt);
    const n = tasks.find((t) => t.task === 'update_graph_incremental')?.output?.applied ?? 0;
    applied += n;
    if (n === 0) return { runs, applied };
  }
}

try {
  const incremental = await planOf('incremental-update.yaml');

  // 1. Ingest through the engine: fetch + update runs until the stream is drained.
  {
    const total = Number(values.interactions);
    const batchSize = Number(values.batch);
    const stream = `${prefix}ingest`;
    const env = { REDIS_URL, DATABASE_URL: await createDatabase('ingest') };
    let t = performance.now();
    await emitInteractions({ redis, stream, count: total, people: Number(values.people), seed: 1, days: 28 });
    const emitS = (performance.now() - t) / 1000;
    console.log(`emit: ${total} interactions in ${emitS.toFixed(2)} s (${Math.round(total / emitS)}/s)`);
    // Warm-up on another stream, untimed: the first handler call migrates the schema.
    await emitInteractions({ redis, stream: `${prefix}warm`, count: 10, people: 10, seed: 2 });
    await drain(incremental, { batch_size: batchSize, stream: `${prefix}warm` }, env);

    const loadBefore = load();
    taskMs = {};
    t = performance.now();
    const { runs, applied } = await drain(incremental, { batch_size: batchSize, stream }, env);
    const ingestS = (performance.now() - t) / 1000;
    if (applied !== total) throw new Error(`applied ${applied} of ${total}`);
    console.log(
      `ingest (incremental-update-pipeline through the engine, SQLite run store): ${applied} interactions in ` +
        `${ingestS.toFixed(2)} s over ${runs} runs with batch_size ${batchSize} — ` +
        `${Math.round(applied / ingestS)} interactions/s end to end (load average ${loadBefore} -> ${load()})`,
    );
    const s = (ms) => `${((ms ?? 0) / 1000).toFixed(2)} s`;
    const inTasks = (taskMs.fetch_interactions ?? 0) + (taskMs.update_graph_incremental ?? 0);
    console.log(
      `  of which fetch_interactions ${s(taskMs.fetch_interactions)}, update_graph_incremental ${s(taskMs.update_graph_incremental)}, ` +
        `engine and run store ${s(ingestS * 1000 - inTasks)}`,
    );
  }

  // 2. Full analysis of a large organisation through the engine (ingested first, untimed).
  if (!values['skip-analysis']) {
    const people = Number(values['analysis-people']);
    const total = Number(values['analysis-interactions']);
    const stream = `${prefix}analysis`;
    const env = { REDIS_URL, DATABASE_URL: await createDatabase('analysis') };
    await emitInteractions({ redis, stream, count: total, people, seed: 3, days: 28 });
    let t = performance.now();
    await drain(incremental, { batch_size: 10_000, stream }, env);
    console.log(
      `analysis setup: ${total} interactions among ${people} people ingested in ${((performance.now() - t) / 1000).toFixed(2)} s`,
    );

    const full = await planOf('full-analysis.yaml');
    global.gc?.();
    peakRss = process.memoryUsage().rss;
    const rssBefore = peakRss;
    const loadBefore = load();
    t = performance.now();
    const runId = await runOnce(full, {}, env);
    const analysisS = (performance.now() - t) / 1000;
    const tasks = await store.getTaskRuns(runId);
    const took = tasks
      .map(
        (task) =>
          `${task.task} ${((Date.parse(task.finishedAt) - Date.parse(task.startedAt)) / 1000).toFixed(2)} s`,
      )
      .join(', ');
    const analysis = tasks.find((task) => task.task === 'run_causal_analysis')?.output;
    const interventions = tasks.find((task) => task.task === 'evaluate_interventions')?.output;
    console.log(
      `full-analysis-pipeline through the engine: ${analysis.people} people, ${analysis.pairs} influence pairs, ` +
        `${analysis.metrics} metric rows, ${analysis.communities} communities, ${interventions.proposed} interventions ` +
        `in ${analysisS.toFixed(2)} s (${took}); RSS ${mb(rssBefore)} before, peak ${mb(peakRss)} ` +
        `(load average ${loadBefore} -> ${load()})`,
    );
  }
} finally {
  clearInterval(sampler);
  await closeOrganismConnections();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 100);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== '0');
  await redis.quit();
  for (const name of databases) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}
