#!/usr/bin/env node
// Part of `npm run build`: compiles the pipeline JSON Schema into standalone validation code, so
// `weft validate` does not spend ~100 ms compiling the schema at every start. The module records
// the sha256 of the schema it was made from; src/pipeline/validate-schema.ts uses it only when
// that matches the schema it loads, and compiles at run time otherwise (e.g. under vitest).
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import standaloneCode from 'ajv/dist/standalone/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const text = readFileSync(join(root, 'schema', 'pipeline.schema.json'), 'utf8');
// Must match createPipelineValidator's options in src/pipeline/validate-schema.ts.
const ajv = new Ajv2020({
  strict: true,
  allErrors: true,
  verbose: true,
  allowUnionTypes: true,
  code: { source: true },
});
const validate = ajv.compile(JSON.parse(text));
const hash = createHash('sha256').update(text).digest('hex');
const code = `${standaloneCode.default ? standaloneCode.default(ajv, validate) : standaloneCode(ajv, validate)}\nmodule.exports.schemaHash = ${JSON.stringify(hash)};\n`;
const out = join(root, 'dist', 'pipeline', 'pipeline-validator.generated.cjs');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, code);
