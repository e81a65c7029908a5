import { UsageError } from '../../errors.js';
import { findPipelineFiles } from '../../project/discover.js';
import { loadPipeline } from '../../project/load-pipeline.js';
import type { CliContext } from '../context.js';
import { renderReports, type DiagnosticFormat, type FileReport } from '../render/diagnostics.js';

export const VALIDATE_FORMATS = ['text', 'json', 'github'] as const;

export interface ValidateOptions {
  format: DiagnosticFormat;
}

/** `weft validate [PATH...]`: every problem in every file, in one pass. Exit 1 when any file is invalid. */
export async function validateCommand(ctx: CliContext, paths: string[], options: ValidateOptions): Promise<number> {
  const targets = paths.length > 0 ? paths : [await ctx.pipelinesDir()];
  const files = findPipelineFiles(targets, ctx.cwd);
  if (files.length === 0) throw new UsageError(`no pipeline files (*.yaml, *.yml) found in ${targets.join(', ')}`);
  const registry = await ctx.registry();
  const reports: FileReport[] = [];
  for (const file of files) {
    const loaded = await loadPipeline(file, { registry });
    reports.push({
      file,
      valid: loaded.plan !== null,
      pipeline: loaded.spec?.name ?? null,
      diagnostics: loaded.diagnostics,
    });
  }
  ctx.io.stdout(renderReports(reports, options.format, ctx.io.colors));
  return reports.every((r) => r.valid) ? 0 : 1;
}
