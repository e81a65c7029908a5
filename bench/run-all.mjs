#!/usr/bin/env node
// `npm run bench`: builds nothing itself (run `npm run build` first, which `npm install` does) and
// prints every figure the README reports.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const scripts = [
  ['validate', 'validate.mjs'],
  ['engine (DAG throughput)', 'engine.mjs'],
];
for (const [title, script] of scripts) {
  console.log(`\n== ${title} ==`);
  const result = spawnSync(process.execPath, [join(here, script)], { stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}
