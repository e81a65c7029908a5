import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { extname, join, relative, resolve } from 'node:path';
import { UsageError, WeftError } from '../errors.js';

const PIPELINE_EXTENSIONS = new Set(['.yaml', '.yml']);

/** `*.test.yaml` files beside the pipelines are tests of them (weft test), not pipelines. */
export function isPipelineFile(path: string): boolean {
  return PIPELINE_EXTENSIONS.has(extname(path)) && !/\.test\.ya?ml$/.test(path);
}

/**
 * Expands files and folders into the pipeline files they hold (folders recursively, sorted).
 * A path that does not exist is a usage error naming it.
 */
export function findPipelineFiles(paths: readonly string[], cwd: string): string[] {
  return findFiles(paths, cwd, isPipelineFile);
}

/**
 * Expands files and folders into the files they hold whose name `accept`s (folders recursively,
 * sorted; hidden entries and node_modules skipped; a file named directly is always kept). Paths
 * come back as `displayPath`s. A path that does not exist is a usage error naming it.
 */
export function findFiles(
  paths: readonly string[],
  cwd: string,
  accept: (name: string) => boolean,
): string[] {
  const files: string[] = [];
  for (const path of paths) {
    const absolute = resolve(cwd, path);
    if (!existsSync(absolute)) throw new UsageError(`no such file or folder: ${path}`);
    if (statSync(absolute).isDirectory()) files.push(...walk(absolute, accept));
    else files.push(absolute);
  }
  return [...new Set(files)].map((file) => displayPath(file, cwd));
}

function walk(dir: string, accept: (name: string) => boolean): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
    a.name.localeCompare(b.name),
  )) {
    if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...walk(path, accept));
    else if (accept(entry.name)) found.push(path);
  }
  return found;
}

/** Paths are shown relative to where the user stands, as they would type them. */
export function displayPath(file: string, cwd: string): string {
  const rel = relative(cwd, file);
  return rel.startsWith('..') ? file : rel;
}

/**
 * PIPELINE as the user gave it: a path to a file, or a name found in the pipelines folder (the
 * file's base name, or the `name:` inside it, matched by the caller).
 */
export function resolvePipelineArgument(
  argument: string,
  options: { cwd: string; pipelinesDir: string },
): string {
  const direct = resolve(options.cwd, argument);
  if (existsSync(direct) && statSync(direct).isFile()) return displayPath(direct, options.cwd);
  const dir = resolve(options.cwd, options.pipelinesDir);
  for (const ext of ['', '.yaml', '.yml']) {
    const candidate = join(dir, argument + ext);
    if (existsSync(candidate) && statSync(candidate).isFile()) return displayPath(candidate, options.cwd);
  }
  if (existsSync(dir)) {
    // A pipeline's `name:` often differs from its file name (incremental-update-pipeline lives in
    // incremental-update.yaml). A top-level `name:` line is enough to find it without parsing.
    for (const file of walk(dir, isPipelineFile)) {
      const match = /^name:\s*["']?([A-Za-z0-9_-]+)["']?\s*(#.*)?$/m.exec(readFileSync(file, 'utf8'));
      if (match?.[1] === argument) return displayPath(file, options.cwd);
    }
  }
  throw new WeftError('PIPELINE_NOT_FOUND', `pipeline not found: ${argument}`, {
    hint: `give a path to a .yaml file, or the name of a file in ${options.pipelinesDir}/`,
    retryable: false,
  });
}
