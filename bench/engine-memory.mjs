#!/usr/bin/env node
// Interpreter overhead: runs noop DAGs through executeRun with the in-memory store and prints
// tasks/s and peak RSS. Build first (npm run build): this imports the compiled dist/.
//   node bench/engine-memory.mjs [--n 10000] [--chain 1000] [--concurrency 64] [--repeat 3] [--sqlite]
// --sqlite: the same against the SQLite store (a fresh file in the OS temp dir per run), to see
// what group commit gives when every task write is durable.
// Shapes are those of ../shared/bench/gen-dag.mjs: fanout 1 -> n -> 1, chain t0 -> t1 -> ... ,
// built in code (no YAML compiler involved).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createRun, executeRun } from '../dist/engine/index.js';
import { HandlerRegistry } from '../dist/handlers/registry.js';
import { createMemoryStore } from '../dist/store/memory/memory-store.js';

const argv = process.argv.slice(2);
const flag = (name, fallback) => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : fallback);
const N = flag('--n', 10_000);
const CHAIN = flag('--chain', 1000);
const REPEAT = flag('--repeat', 3);
const CONCURRENCIES = argv.includes('--concurrency') ? [flag('--concurrency', 64)] : [16, 64, 1024];
const SQLITE = argv.includes('--sqlite');
const { createSqliteStore } = SQLITE ? await import('../dist/store/sqlite/sqlite-store.js') : {};
const dirs = [];
function openStore() {
  if (!SQLITE) return createMemoryStore();
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-'));
  dirs.push(dir);
  return createSqliteStore(join(dir, 'weft.db'));
}

const POSITION = { file: 'bench.yaml', line: 1, column: 1 };
const RETRY = { retries: 0, delayMs: 0, backoff: 'fixed', maxDelayMs: null, jitter: false };

function buildPlan(name, deps) {
  const names = deps.map((_, i) => `t${String(i).padStart(String(deps.length - 1).length, '0')}`);
  const tasks = Object.create(null);
  names.forEach((taskName, i) => {
    tasks[taskName] = {
      name: taskName,
      handler: 'noop',
      with: null,
      dependsOn: deps[i].map((d) => names[d]),
      dependents: [],
      retry: RETRY,
      timeoutMs: null,
      when: null,
      triggerRule: 'all_success',
      continueOnError: false,
      onFailure: [],
      queue: 'default',
      description: null,
      stage: 0,
      position: POSITION,
    };
  });
  for (const task of Object.values(tasks))
    for (const dep of task.dependsOn) tasks[dep].dependents.push(task.name);
  // Declaration order is topological for both shapes.
  return {
    version: 1,
    name,
    description: null,
    file: 'bench.yaml',
    hash: name,
    schedule: null,
    params: Object.create(null),
    concurrency: 16,
    retry: RETRY,
    timeoutMs: null,
    onFailure: [],
    onSuccess: [],
    onRecovery: [],
    secrets: [],
    resumeInterrupted: false,
    tasks,
    order: names,
    stages: [],
  };
}

const fanout = (n) => [
  [],
  ...Array.from({ length: n }, () => [0]),
  Array.from({ length: n }, (_, i) => i + 1),
];
const chain = (n) => Array.from({ length: n }, (_, i) => (i === 0 ? [] : [i - 1]));

const registry = new HandlerRegistry([{ name: 'noop', run: () => null }]);
let peakRss = process.memoryUsage().rss;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 10);

async function once(plan, concurrency) {
  const store = openStore();
  const run = await createRun(store, { plan, params: {}, trigger: 'manual', now: Date.now() });
  const cpu = process.cpuUsage();
  const started = performance.now();
  const final = await executeRun(run.id, { store, registry, owner: 'bench:1', concurrency, env: {} });
  const ms = performance.now() - started;
  const used = process.cpuUsage(cpu);
  if (final.state !== 'succeeded') throw new Error(`${plan.name}: run ${final.state}`);
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  await store.close();
  return { ms, cpuMs: (used.user + used.system) / 1000 };
}

// Best of REPEAT after one warm-up run (JIT). CPU time is shown too: on a shared machine it is a
// steadier measure of the interpreter's own cost than wall time.
async function measure(label, plan, concurrency) {
  await once(plan, concurrency);
  const results = [];
  for (let i = 0; i < REPEAT; i++) results.push(await once(plan, concurrency));
  const best = results.reduce((a, b) => (b.ms < a.ms ? b : a));
  const tasks = plan.order.length;
  const rate = (ms) => Math.round(tasks / (ms / 1000)).toLocaleString('en-US');
  console.log(
    `${label.padEnd(16)} concurrency ${String(concurrency).padStart(5)}  ${String(tasks).padStart(6)} tasks  ` +
      `best ${best.ms.toFixed(1).padStart(7)} ms wall = ${rate(best.ms).padStart(9)} tasks/s  ` +
      `(${best.cpuMs.toFixed(0)} ms CPU = ${rate(best.cpuMs)} tasks/CPU-s; all runs ${results.map((r) => r.ms.toFixed(0)).join(', ')} ms)`,
  );
}

console.log(
  `weft engine, ${SQLITE ? 'sqlite' : 'memory'} store, node ${process.version}, ${REPEAT} runs each after a warm-up (best shown)`,
);
const fanPlan = buildPlan(`fanout-${N}`, fanout(N));
const chainPlan = buildPlan(`chain-${CHAIN}`, chain(CHAIN));
for (const c of CONCURRENCIES) await measure(`fanout-${N}`, fanPlan, c);
await measure(`chain-${CHAIN}`, chainPlan, 16);
clearInterval(sampler);
console.log(`peak RSS ${(peakRss / 1024 / 1024).toFixed(0)} MB`);
for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
