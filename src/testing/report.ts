import type { Colors } from '../cli/io.js';
import { toGithubAnnotation } from '../cli/render/diagnostics.js';
import type { TestFileResult } from './run-test-file.js';

export const TEST_FORMATS = ['text', 'json', 'github'] as const;
export type TestFormat = (typeof TEST_FORMATS)[number];

/** Said once per report: a passing test proves the wiring, not the outside world. */
export const STUB_NOTE =
  'handlers not mocked were replaced by stubs returning null: no command, request or database was touched';

export function renderTestResults(results: readonly TestFileResult[], format: TestFormat, c: Colors): string {
  switch (format) {
    case 'json':
      return JSON.stringify(toJson(results), null, 2) + '\n';
    case 'github':
      return renderGithub(results);
    case 'text':
      return renderText(results, c);
  }
}

function totals(results: readonly TestFileResult[]) {
  const cases = results.flatMap((r) => r.cases);
  return {
    files: results.length,
    invalidFiles: results.filter((r) => r.diagnostics.some((d) => d.severity === 'error')).length,
    cases: cases.length,
    passed: cases.filter((c) => c.passed).length,
    failed: cases.filter((c) => !c.passed).length,
  };
}

function toJson(results: readonly TestFileResult[]) {
  return {
    ok: results.every((r) => r.passed),
    ...totals(results),
    note: STUB_NOTE,
    files: results.map((r) => ({
      file: r.file,
      pipeline: r.pipelineFile,
      passed: r.passed,
      errors: r.diagnostics.map((d) => ({
        code: d.code,
        message: d.message,
        line: d.line,
        column: d.column,
        ...(d.hint ? { hint: d.hint } : {}),
      })),
      cases: r.cases.map((c) => ({
        name: c.name,
        passed: c.passed,
        failures: c.failures,
        line: c.position.line,
        column: c.position.column,
        durationMs: c.durationMs,
      })),
    })),
  };
}

function escapeData(text: string): string {
  return text.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

function escapeProperty(text: string): string {
  return escapeData(text).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

/** GitHub Actions annotations: each failed case shows on its line of the test file. */
function renderGithub(results: readonly TestFileResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    lines.push(...r.diagnostics.map(toGithubAnnotation));
    for (const c of r.cases.filter((x) => !x.passed)) {
      lines.push(
        `::error file=${escapeProperty(r.file)},line=${c.position.line},col=${c.position.column},title=${escapeProperty(`weft test: ${c.name}`)}::${escapeData(c.failures.join('\n'))}`,
      );
    }
  }
  const t = totals(results);
  lines.push(
    `${t.passed} of ${t.cases} case(s) passed${t.invalidFiles ? `, ${t.invalidFiles} invalid test file(s)` : ''}`,
  );
  return lines.join('\n') + '\n';
}

function renderText(results: readonly TestFileResult[], c: Colors): string {
  const lines: string[] = [];
  for (const r of results) {
    lines.push(`${c.bold(r.file)}${r.pipelineFile ? c.dim(` → ${r.pipelineFile}`) : ''}`);
    for (const d of r.diagnostics) {
      lines.push(
        `  ${c.bold(`${d.file}:${d.line}:${d.column}`)} ${d.severity === 'error' ? c.red('error') : c.yellow('warning')} ${d.message} ${c.dim(`[${d.code}]`)}`,
      );
      if (d.hint) lines.push(`    ${c.cyan('hint:')} ${d.hint}`);
    }
    for (const k of r.cases) {
      lines.push(`  ${k.passed ? c.green('✓') : c.red('✗')} ${k.name} ${c.dim(`(${k.durationMs}ms)`)}`);
      for (const failure of k.failures) lines.push(`      ${c.red('-')} ${failure}`);
    }
  }
  const t = totals(results);
  lines.push('');
  lines.push(c.dim(STUB_NOTE));
  const summary =
    `${t.cases} case${t.cases === 1 ? '' : 's'}: ${t.passed} passed, ${t.failed} failed` +
    (t.invalidFiles ? `; ${t.invalidFiles} invalid test file${t.invalidFiles === 1 ? '' : 's'}` : '');
  lines.push(t.failed === 0 && t.invalidFiles === 0 ? c.green(summary) : c.red(summary));
  return lines.join('\n') + '\n';
}
