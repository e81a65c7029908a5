#!/usr/bin/env node
// DAG throughput of `weft run` on the standard workloads of ../shared/bench/gen-dag.mjs (the same
// DAGs the peers were measured on), through the real loader, compiler, built-in `noop` handler and
// store. One workload and store per process, so peak RSS is that run's own.
//   node bench/engine.mjs --workload fanout-10000|chain-1000|layered-10000 --store memory|sqlite [--repeat 3]
// Without --workload: every workload on both stores, each in a child process.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const arg = (name, fallback) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : fallback);
const WORKLOADS = ['fanout-10000', 'chain-1000', 'layered-10000'];

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

if (!argv.includes('--workload')) {
  for (const store of ['memory', 'sqlite']) {
    for (const workload of WORKLOADS) {
      const child = spawnSync(
        process.execPath,
        [fileURLToPath(import.meta.url), '--workload', workload, '--store', store],
        {
          stdio: 'inherit',
        },
      );
      if (child.status !== 0) process.exit(child.status ?? 1);
    }
  }
  process.exit(0);
}

const { loadPipeline } = await import('../dist/project/load-pipeline.js');
const { createBuiltinRegistry } = await import('../dist/handlers/builtins.js');
const { createRun, executeRun } = await import('../dist/engine/index.js');
const { createMemoryStore } = await import('../dist/store/memory/memory-store.js');
const { createSqliteStore } = await import('../dist/store/sqlite/sqlite-store.js');

const workload = arg('--workload');
const storeKind = arg('--store', 'memory');
const repeat = Number(arg('--repeat', '3'));
const registry = createBuiltinRegistry();
const loaded = await loadPipeline(workloadFile(workload), { registry });
if (!loaded.plan)
  throw new Error(`${workload} did not compile: ${JSON.stringify(loaded.diagnostics.slice(0, 3))}`);
const plan = loaded.plan;

let peakRss = process.memoryUsage().rss;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 5);
const dirs = [];
function openStore() {
  if (storeKind === 'memory') return createMemoryStore();
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-'));
  dirs.push(dir);
  return createSqliteStore(join(dir, 'weft.db'));
}

async function once() {
  const store = openStore();
  const started = performance.now();
  const run = await createRun(store, { plan, params: {}, trigger: 'manual', now: Date.now() });
  const final = await executeRun(run.id, { store, registry, owner: `bench:${process.pid}`, env: {} });
  await store.flush();
  const ms = performance.now() - started;
  if (final.state !== 'succeeded') throw new Error(`run ${final.state}`);
  await store.close();
  return ms;
}

await once(); // warm-up (JIT)
const times = [];
for (let i = 0; i < repeat; i++) times.push(await once());
clearInterval(sampler);
for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
const tasks = plan.order.length;
console.log(
  `${workload.padEnd(14)} ${storeKind.padEnd(7)} ${String(tasks).padStart(6)} tasks  ` +
    `${Math.round(tasks / (median / 1000))
      .toLocaleString('en-US')
      .padStart(8)} tasks/s  ` +
    `(median of ${repeat}: ${median.toFixed(0)} ms, incl. createRun and final flush; concurrency ${plan.concurrency})  ` +
    `peak RSS ${Math.round(peakRss / 1048576)} MB`,
);
