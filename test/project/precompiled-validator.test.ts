import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePipelineText } from '../../src/pipeline/load.js';
import { createPipelineValidator } from '../../src/pipeline/validate-schema.js';
import { loadPipelineSchema } from '../../src/pipeline/schema.js';

/**
 * `npm run build` compiles the schema ahead of time (scripts/build-validators.mjs); the CLI uses
 * that code. It must report exactly what the run-time compiled validator reports.
 */
const generatedPath = join(
  import.meta.dirname,
  '..',
  '..',
  'dist',
  'pipeline',
  'pipeline-validator.generated.cjs',
);

describe.skipIf(!existsSync(generatedPath))('the precompiled pipeline validator', () => {
  it('agrees with the run-time validator on every fixture', () => {
    const generated = createRequire(import.meta.url)(generatedPath) as ((value: unknown) => boolean) & {
      errors?: unknown[];
    };
    const runtime = createPipelineValidator(loadPipelineSchema());
    const dirs = ['valid', 'invalid'].map((d) => join(import.meta.dirname, '..', 'fixtures', d));
    let compared = 0;
    for (const dir of dirs) {
      for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml'))) {
        const { source } = parsePipelineText(file, readFileSync(join(dir, file), 'utf8'));
        if (source.value === undefined) continue;
        const expected = runtime(source);
        const ok = generated(source.value);
        expect(ok, file).toBe(
          expected.diagnostics.filter((d) => d.code !== 'TASK_NAME_RESERVED').length === 0,
        );
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(20);
  });
});
