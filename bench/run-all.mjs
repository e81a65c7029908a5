#!/usr/bin/env node
// `npm run bench`: prints every figure the README reports. Run `npm run build` first (npm install
// does). The scheduler, worker and organism benchmarks need PostgreSQL and Redis on loopback and
// take several minutes; `--quick` runs only validate and the engine.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes('--quick');
const scripts = [
  ['validate (whole process)', ['validate.mjs']],
  ['engine: DAG throughput on the standard workloads', ['engine.mjs']],
  ...(quick
    ? []
    : [
        ['workers: distributed execution on PostgreSQL', ['workers.mjs', '--workload', 'fanout-10000']],
        ['workers: chain', ['workers.mjs', '--workload', 'chain-1000']],
        ['scheduler: 100 pipelines every minute', ['--expose-gc', 'scheduler.mjs']],
        ['reference pipelines', ['organism.mjs']],
        ['retention: weft prune', ['prune.mjs']],
      ]),
];
for (const [title, args] of scripts) {
  console.log(`\n== ${title} ==`);
  const [first, ...rest] = args;
  const argv = first.startsWith('--')
    ? [first, join(here, rest[0]), ...rest.slice(1)]
    : [join(here, first), ...rest];
  const result = spawnSync(process.execPath, argv, { stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}
