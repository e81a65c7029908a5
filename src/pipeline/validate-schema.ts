import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import type { Diagnostic } from '../errors.js';
import { collapseErrors } from './collapse-errors.js';
import { loadPipelineSchema, PIPELINE_SCHEMA_URL, type JsonSchema } from './schema.js';
import { toDiagnostic } from './schema-messages.js';
import type { SourceDocument } from './source.js';
import type { PipelineSpec } from './spec.js';

export interface SchemaValidation {
  /** The validated value, typed; null when any error was found. */
  spec: PipelineSpec | null;
  diagnostics: Diagnostic[];
}

/** Keys that would mean something to JavaScript objects; refused as task names. */
export const RESERVED_TASK_NAMES: readonly string[] = ['__proto__', 'constructor', 'prototype'];

let defaultValidator: ((source: SourceDocument) => SchemaValidation) | undefined;

/**
 * Checks a loaded pipeline against schema/pipeline.schema.json and reports every problem, each
 * once, in plain words, at the place in the YAML it is about. A source whose YAML did not parse
 * (`value` undefined) gets no diagnostics here: the loader already reported why.
 */
export function validatePipelineSchema(source: SourceDocument): SchemaValidation {
  defaultValidator ??= precompiledValidator() ?? createPipelineValidator(loadPipelineSchema());
  return defaultValidator(source);
}

/**
 * The validator `npm run build` compiled ahead of time (scripts/build-validators.mjs), when it was
 * made from the schema on disk now; null otherwise (running from src/, or a stale build).
 */
function precompiledValidator(): ((source: SourceDocument) => SchemaValidation) | null {
  try {
    const require = createRequire(import.meta.url);
    const generated = require('./pipeline-validator.generated.cjs') as ValidateFunction & {
      schemaHash?: string;
    };
    const text = readFileSync(PIPELINE_SCHEMA_URL, 'utf8');
    if (generated.schemaHash !== createHash('sha256').update(text).digest('hex')) return null;
    return (source) => runValidation(generated, source);
  } catch {
    return null;
  }
}

/** A validator for a given pipeline schema (e.g. one merged with handler argument schemas). */
export function createPipelineValidator(schema: JsonSchema): (source: SourceDocument) => SchemaValidation {
  // allowUnionTypes: durations, hooks, schedules and depends_on are `type: [a, b]` rather than
  // oneOf, which gives one clear error instead of one per branch. Strict otherwise.
  const ajv = new Ajv2020({ strict: true, allErrors: true, verbose: true, allowUnionTypes: true });
  const validate = ajv.compile(schema);
  return (source) => runValidation(validate, source);
}

function runValidation(validate: ValidateFunction, source: SourceDocument): SchemaValidation {
  if (source.value === undefined) return { spec: null, diagnostics: [] };
  const diagnostics: Diagnostic[] = [];
  if (!validate(source.value)) {
    for (const error of collapseErrors(validate.errors ?? [])) {
      diagnostics.push(toDiagnostic(error, source));
    }
  }
  diagnostics.push(...reservedTaskNames(source));
  const unique = dedupe(diagnostics).sort((a, b) => a.line - b.line || a.column - b.column);
  const failed = unique.some((d) => d.severity === 'error');
  return { spec: failed ? null : (source.value as PipelineSpec), diagnostics: unique };
}

function reservedTaskNames(source: SourceDocument): Diagnostic[] {
  const value = source.value as { tasks?: unknown } | null;
  const tasks = typeof value === 'object' && value !== null ? value.tasks : undefined;
  if (typeof tasks !== 'object' || tasks === null || Array.isArray(tasks)) return [];
  return Object.keys(tasks)
    .filter((name) => RESERVED_TASK_NAMES.includes(name))
    .map((name) =>
      source.diagnosticAt(
        ['tasks', name],
        {
          code: 'TASK_NAME_RESERVED',
          message: `task name "${name}" is reserved (it has a special meaning for JavaScript objects)`,
          hint: 'choose another name for this task',
        },
        { key: true },
      ),
    );
}

function dedupe(diagnostics: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return diagnostics.filter((d) => {
    const key = `${d.code}|${d.line}|${d.column}|${d.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
