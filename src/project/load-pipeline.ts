import type { Plan } from '../compile/plan.js';
import { compilePipeline } from '../compile/compile.js';
import type { Diagnostic } from '../errors.js';
import type { HandlerRegistry } from '../handlers/registry.js';
import { parsePipelineText, readPipelineFile } from '../pipeline/load.js';
import type { SourceDocument } from '../pipeline/source.js';
import type { PipelineSpec } from '../pipeline/spec.js';
import { validatePipelineSchema } from '../pipeline/validate-schema.js';

export interface LoadedPipeline {
  file: string;
  source: SourceDocument;
  spec: PipelineSpec | null;
  /** Null when any error-level diagnostic was found. */
  plan: Plan | null;
  diagnostics: Diagnostic[];
}

/**
 * The whole static pipeline: text -> SourceDocument -> PipelineSpec -> Plan. Never throws for a
 * problem in the file: every stage's diagnostics are collected, and later stages run only on what
 * the earlier ones accepted (a file that is not YAML gets no schema errors).
 */
export async function loadPipeline(
  file: string,
  options: { registry?: HandlerRegistry } = {},
): Promise<LoadedPipeline> {
  return finishLoading(file, await readPipelineFile(file), options);
}

export function loadPipelineText(
  file: string,
  text: string,
  options: { registry?: HandlerRegistry } = {},
): LoadedPipeline {
  return finishLoading(file, parsePipelineText(file, text), options);
}

function finishLoading(
  file: string,
  parsed: { source: SourceDocument; diagnostics: Diagnostic[] },
  options: { registry?: HandlerRegistry },
): LoadedPipeline {
  const { source } = parsed;
  const diagnostics = [...parsed.diagnostics];
  if (hasErrors(diagnostics)) return { file, source, spec: null, plan: null, diagnostics };
  const validated = validatePipelineSchema(source);
  diagnostics.push(...validated.diagnostics);
  if (!validated.spec || hasErrors(diagnostics)) {
    diagnostics.push(...bestEffortCompile(source, diagnostics, options));
    return { file, source, spec: validated.spec, plan: null, diagnostics: sortDiagnostics(diagnostics) };
  }
  const compiled = compilePipeline(
    source,
    validated.spec,
    options.registry ? { registry: options.registry } : {},
  );
  diagnostics.push(...compiled.diagnostics);
  const plan = hasErrors(diagnostics) ? null : compiled.plan;
  return { file, source, spec: validated.spec, plan, diagnostics: sortDiagnostics(diagnostics) };
}

export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error');
}

export function sortDiagnostics(diagnostics: Diagnostic[]): Diagnostic[] {
  return diagnostics.sort((a, b) => a.line - b.line || a.column - b.column || a.code.localeCompare(b.code));
}

/**
 * "Every problem in one pass": a schema error in one task must not hide an unknown dependency or a
 * cycle elsewhere. When the document is shaped like a pipeline (a `tasks` map of objects), the
 * compiler's checks run on it anyway, and only their findings away from the schema errors are kept
 * (a wrong value already reported is not reported twice). The compiler was written for schema-valid
 * input, so a crash here is swallowed: the schema errors alone are still a complete answer.
 */
function bestEffortCompile(
  source: SourceDocument,
  schemaDiagnostics: readonly Diagnostic[],
  options: { registry?: HandlerRegistry },
): Diagnostic[] {
  const value = source.value as { tasks?: unknown } | null;
  if (!isObject(value) || !isObject(value.tasks)) return [];
  if (!Object.values(value.tasks).every(isObject)) return [];
  const reported = schemaDiagnostics.map((d) => d.path.join('\u0000'));
  const overlaps = (d: Diagnostic) => {
    const path = d.path.join('\u0000');
    return reported.some((p) => path.startsWith(p) || p.startsWith(path));
  };
  try {
    const compiled = compilePipeline(
      source,
      value as unknown as PipelineSpec,
      options.registry ? { registry: options.registry } : {},
    );
    return compiled.diagnostics.filter((d) => !overlaps(d));
  } catch {
    return [];
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
