import type { Diagnostic } from '../../errors.js';
import type { Colors } from '../io.js';

export interface FileReport {
  file: string;
  valid: boolean;
  /** The pipeline's name when it could be read. */
  pipeline: string | null;
  diagnostics: Diagnostic[];
}

export type DiagnosticFormat = 'text' | 'json' | 'github';

export function renderReports(
  reports: readonly FileReport[],
  format: DiagnosticFormat,
  colors: Colors,
): string {
  switch (format) {
    case 'json':
      return JSON.stringify(toJsonReport(reports), null, 2) + '\n';
    case 'github':
      return (
        reports.flatMap((r) => r.diagnostics.map(toGithubAnnotation)).join('\n') +
        (hasAny(reports) ? '\n' : '')
      );
    case 'text':
      return renderText(reports, colors);
  }
}

function hasAny(reports: readonly FileReport[]): boolean {
  return reports.some((r) => r.diagnostics.length > 0);
}

/** The stable JSON shape of `weft validate --format json`. */
export function toJsonReport(reports: readonly FileReport[]) {
  return {
    valid: reports.every((r) => r.valid),
    files: reports.map((r) => ({
      file: r.file,
      pipeline: r.pipeline,
      valid: r.valid,
      errors: r.diagnostics.filter((d) => d.severity === 'error').map(toJsonDiagnostic),
      warnings: r.diagnostics.filter((d) => d.severity === 'warning').map(toJsonDiagnostic),
    })),
  };
}

function toJsonDiagnostic(d: Diagnostic) {
  return {
    code: d.code,
    message: d.message,
    line: d.line,
    column: d.column,
    path: d.path.join('.'),
    ...(d.hint ? { hint: d.hint } : {}),
  };
}

/** GitHub Actions workflow command: the annotation shows on the line in the pull request. */
export function toGithubAnnotation(d: Diagnostic): string {
  const level = d.severity === 'error' ? 'error' : 'warning';
  const message = d.hint ? `${d.message} (${d.hint})` : d.message;
  return `::${level} file=${escapeProperty(d.file)},line=${d.line},col=${d.column},title=${d.code}::${escapeData(message)}`;
}

function escapeData(text: string): string {
  return text.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

function escapeProperty(text: string): string {
  return escapeData(text).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

function renderText(reports: readonly FileReport[], c: Colors): string {
  const lines: string[] = [];
  let errors = 0;
  let warnings = 0;
  for (const report of reports) {
    if (report.diagnostics.length === 0) {
      lines.push(`${c.green('✓')} ${report.file}${report.pipeline ? c.dim(` (${report.pipeline})`) : ''}`);
      continue;
    }
    for (const d of report.diagnostics) {
      const label = d.severity === 'error' ? c.red('error') : c.yellow('warning');
      if (d.severity === 'error') errors++;
      else warnings++;
      lines.push(
        `${c.bold(`${d.file}:${d.line}:${d.column}`)} ${label} ${d.message} ${c.dim(`[${d.code}]`)}`,
      );
      if (d.hint) lines.push(`  ${c.cyan('hint:')} ${d.hint}`);
    }
  }
  const invalid = reports.filter((r) => !r.valid).length;
  const summary =
    invalid === 0
      ? c.green(`${reports.length} pipeline file${reports.length === 1 ? '' : 's'} valid`)
      : c.red(
          `${invalid} of ${reports.length} pipeline file${reports.length === 1 ? '' : 's'} invalid: ${errors} error${errors === 1 ? '' : 's'}`,
        ) + (warnings ? `, ${warnings} warning${warnings === 1 ? '' : 's'}` : '');
  lines.push(summary);
  return lines.join('\n') + '\n';
}
