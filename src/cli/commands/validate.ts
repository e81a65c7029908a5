import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { UsageError } from '../../errors.js';
import { findPipelineFiles } from '../../project/discover.js';
import { loadPipeline } from '../../project/load-pipeline.js';
import type { CliContext } from '../context.js';
import { renderReports, type DiagnosticFormat, type FileReport } from '../render/diagnostics.js';

export const VALIDATE_FORMATS = ['text', 'json', 'github'] as const;

export interface ValidateOptions {
  format: DiagnosticFormat;
  /** Only the pipeline files git sees as changed (staged, unstaged or untracked). */
  changed?: boolean;
}

/** `weft validate [PATH...]`: every problem in every file, in one pass. Exit 1 when any file is invalid. */
export async function validateCommand(
  ctx: CliContext,
  paths: string[],
  options: ValidateOptions,
): Promise<number> {
  const targets = paths.length > 0 ? paths : [await ctx.pipelinesDir()];
  let files = findPipelineFiles(targets, ctx.cwd);
  if (options.changed) {
    const changed = changedFiles(ctx.cwd);
    files = files.filter((file) => changed.has(resolve(ctx.cwd, file)));
    if (files.length === 0) {
      if (options.format === 'text') ctx.io.stdout('no changed pipeline files\n');
      else ctx.io.stdout(renderReports([], options.format, ctx.io.colors));
      return 0;
    }
  }
  if (files.length === 0)
    throw new UsageError(`no pipeline files (*.yaml, *.yml) found in ${targets.join(', ')}`);
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

/**
 * Absolute paths of the files git sees as changed against HEAD (staged or not) or untracked, for
 * `--changed` in a pre-commit hook. Outside a git work tree it is a usage error, not "nothing changed".
 */
function changedFiles(cwd: string): Set<string> {
  const git = (args: string[]) => {
    try {
      return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      throw new UsageError('--changed needs a git work tree (and git on the PATH)');
    }
  };
  const top = git(['rev-parse', '--show-toplevel']).trim();
  // A repository without commits has no HEAD: then everything tracked or not counts as changed.
  let diff = '';
  try {
    diff = execFileSync('git', ['diff', '--name-only', 'HEAD'], {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    diff = git(['ls-files']);
  }
  const untracked = git(['ls-files', '--others', '--exclude-standard', '--full-name']);
  return new Set(
    `${diff}\n${untracked}`
      .split('\n')
      .filter(Boolean)
      .map((name) => resolve(top, name)),
  );
}
