import { isScalar } from 'yaml';
import { parseDuration } from '../core/duration.js';
import type { Diagnostic, DiagnosticCode, DocPath } from '../errors.js';
import type { SourceDocument } from '../pipeline/source.js';
import type { DurationSpec, PipelineSpec } from '../pipeline/spec.js';
import type { SourcePosition } from './plan.js';

/** What every compile check shares: the input, the task numbering, and where diagnostics go. */
export interface CompileContext {
  source: SourceDocument;
  spec: PipelineSpec;
  /** Task names in declaration order; a task's number is its index here. */
  names: string[];
  indexOf: Map<string, number>;
  diagnostics: Diagnostic[];
}

export function createContext(source: SourceDocument, spec: PipelineSpec): CompileContext {
  const names = Object.keys(spec.tasks);
  return { source, spec, names, indexOf: new Map(names.map((name, i) => [name, i])), diagnostics: [] };
}

export function report(
  ctx: CompileContext,
  path: DocPath,
  code: DiagnosticCode,
  message: string,
  options: { hint?: string | undefined; key?: boolean } = {},
): Diagnostic {
  const fields = options.hint === undefined ? { code, message } : { code, message, hint: options.hint };
  const diagnostic = ctx.source.diagnosticAt(path, fields, { key: options.key === true });
  ctx.diagnostics.push(diagnostic);
  return diagnostic;
}

export function didYouMean(word: string | undefined): string | undefined {
  return word === undefined ? undefined : `did you mean \`${word}\`?`;
}

export function sourcePosition(ctx: CompileContext, path: DocPath, key = false): SourcePosition {
  const { line, column } = ctx.source.positionOf(path, { key });
  return { file: ctx.source.file, line, column };
}

/**
 * Moves a diagnostic on a string value to `offset` inside that string, when the string sits on
 * one line exactly as written (plain, or quoted without escapes); otherwise it stays at the
 * start of the value, which is still the right line.
 */
export function pointIntoString(
  ctx: CompileContext,
  diagnostic: Diagnostic,
  path: DocPath,
  offset: number,
): void {
  const node = ctx.source.doc?.getIn(path, true);
  if (!isScalar(node) || typeof node.value !== 'string' || !node.range) return;
  const start = ctx.source.lineCounter.linePos(node.range[0]);
  // Only when the node found is the one positionOf chose (not, say, the target of an alias).
  if (start.line !== diagnostic.line || start.col !== diagnostic.column) return;
  const raw = ctx.source.text.slice(node.range[0], node.range[1]);
  if (raw.includes('\n')) return;
  let shift: number | null = null;
  if (node.type === 'PLAIN' && raw === node.value) shift = 0;
  else if ((node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE') && raw.slice(1, -1) === node.value)
    shift = 1;
  if (shift === null) return;
  diagnostic.column = start.col + shift + offset;
}

/**
 * Reads a duration, reporting DURATION_INVALID at `path` when it is malformed, or zero where
 * zero means nothing (a timeout of 0 would fail every attempt at once).
 */
export function readDuration(
  ctx: CompileContext,
  value: DurationSpec | undefined,
  path: DocPath,
  options: { positive: boolean },
): number | null {
  if (value === undefined) return null;
  const ms = parseDuration(value);
  const key = String(path[path.length - 1]);
  if (ms === null) {
    report(ctx, path, 'DURATION_INVALID', `${key}: ${JSON.stringify(value)} is not a duration`, {
      hint: 'write a number of seconds or a duration such as "250ms", "30s", "5m", "1h30m", "2d"',
    });
    return null;
  }
  if (options.positive && ms <= 0) {
    report(ctx, path, 'DURATION_INVALID', `${key} must be greater than 0 (got ${JSON.stringify(value)})`, {
      hint: `leave ${key} out for no limit`,
    });
    return null;
  }
  return ms;
}
