#!/usr/bin/env node
// Writes the generated documents (docs/language.md, docs/cli.md, docs/builtin-handlers.md) from
// their sources. `--check` writes nothing and exits 1 when a file is out of date.
// Runs the TypeScript sources through jiti, so no build is needed; formats with Prettier (a dev dependency).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createJiti } from 'jiti';
import * as prettier from 'prettier';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const jiti = createJiti(import.meta.url);
const { generateDocs } = await jiti.import(join(root, 'src', 'docs', 'index.ts'));
const check = process.argv.includes('--check');
let stale = 0;
for (const [path, raw] of Object.entries(generateDocs())) {
  const file = join(root, path);
  // Formatted as `npm run format` expects; the drift test formats the same way.
  const text = await prettier.format(raw, { ...(await prettier.resolveConfig(file)), filepath: file });
  let current = null;
  try {
    current = readFileSync(file, 'utf8');
  } catch {
    // a missing file is out of date
  }
  if (current === text) continue;
  if (check) {
    console.error(`${path} is out of date: run node scripts/gen-docs.mjs`);
    stale++;
  } else {
    writeFileSync(file, text);
    console.log(`wrote ${path}`);
  }
}
process.exitCode = stale > 0 ? 1 : 0;
