#!/usr/bin/env node
// `weft validate` as a whole process: a generated 10,000-task pipeline (layered, 3 dependencies
// each, the standard workload of ../shared/bench/gen-dag.mjs) and a small file. Prints wall time
// (median of several runs) for each.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'bench', 'out');
mkdirSync(out, { recursive: true });
const gen = resolve(root, '..', 'shared', 'bench', 'gen-dag.mjs');
const layered = join(out, 'layered-10000.yaml');
if (!existsSync(layered)) execFileSync('node', [gen, '--shape', 'layered', '--n', '10000', layered]);

function timeRuns(args, runs = 5) {
  const times = [];
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    const result = spawnSync('node', [join(root, 'bin', 'weft.js'), ...args], {
      cwd: root,
      encoding: 'utf8',
    });
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
    if (result.status !== 0)
      throw new Error(`weft ${args.join(' ')} exited ${result.status}: ${result.stdout}${result.stderr}`);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

const big = timeRuns(['validate', layered]);
const small = timeRuns(['validate', 'pipelines/hello.yaml']);
console.log(
  `validate layered-10000 (10,000 tasks, 3 deps each): ${big.toFixed(0)} ms (whole process, median of 5)`,
);
console.log(
  `validate pipelines/hello.yaml:                      ${small.toFixed(0)} ms (whole process, median of 5)`,
);
