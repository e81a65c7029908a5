import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { HandlerRegistry } from '../../handlers/registry.js';
import type { AnyHandler } from '../../handlers/types.js';
import { createDefaultHandlers } from '../../project/default-handlers.js';
import { VERSION } from '../../version.js';
import type { CliContext } from '../context.js';
import { writePipelineSchema } from './schema.js';
import type { CommandDeps } from './types.js';

/** The scaffold, resolved from src/cli/commands/ and from dist/cli/commands/ alike. */
export const TEMPLATE_DIR = fileURLToPath(new URL('../../../templates/project/', import.meta.url));

/**
 * Files that are created when missing but never overwritten, even with --force: a project that
 * already has a package.json keeps it (the README says to add weft to it).
 */
const CREATE_ONLY = new Set(['package.json', '.gitignore']);

/**
 * The schema the scaffold's modeline and editor settings point at: the language plus the
 * project's own handlers' arguments, as `weft schema --write` gives it. Committed with the
 * project (`.weft/` is store space and ignored by git).
 */
export const PROJECT_SCHEMA_PATH = 'schema/weft.schema.json';

/** This running weft's entry point, which the scaffold's `import … from 'weft'` is mapped to. */
const WEFT_ENTRY = ['../../index.js', '../../index.ts']
  .map((path) => fileURLToPath(new URL(path, import.meta.url)))
  .find((path) => existsSync(path));

export interface InitOptions {
  force?: boolean;
}

export interface ScaffoldFile {
  /** Path inside the project, with `/`. */
  path: string;
  text: string;
}

/**
 * The files `weft init` writes. Templates are stored as `*.tmpl` with `_` for a leading dot, so
 * that neither the repository's linters nor npm's packing rules treat them as real files.
 */
export function scaffoldFiles(projectName: string): ScaffoldFile[] {
  return walk(TEMPLATE_DIR)
    .sort()
    .map((file) => {
      const path = relative(TEMPLATE_DIR, file)
        .split(/[\\/]/)
        .map((part) => part.replace(/^_/, '.'))
        .join('/')
        .replace(/\.tmpl$/, '');
      const text = readFileSync(file, 'utf8')
        .replaceAll('{{name}}', projectName)
        .replaceAll('{{version}}', VERSION);
      return { path, text };
    });
}

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

/** A package name from a folder name: lowercase, with `-` between words. */
export function projectNameFor(dir: string): string {
  const name = basename(resolve(dir))
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[._-]+|[-_.]+$/g, '');
  return name || 'weft-project';
}

/** `weft init [DIR]`: a project that validates, tests and runs as it is. */
export async function initCommand(
  ctx: CliContext,
  dir: string | undefined,
  options: InitOptions,
): Promise<number> {
  const target = resolve(ctx.cwd, dir ?? '.');
  if (existsSync(target) && !statSync(target).isDirectory())
    throw new UsageError(`${dir} exists and is not a folder`);
  const files = scaffoldFiles(projectNameFor(target));
  const exists = (path: string) => existsSync(join(target, path));
  const conflicts = [...files.map((f) => f.path), PROJECT_SCHEMA_PATH]
    .filter((path) => exists(path) && !CREATE_ONLY.has(path))
    .sort();
  if (conflicts.length > 0 && !options.force) {
    throw new UsageError(`refusing to overwrite ${conflicts.join(', ')}`, {
      hint: 'pass --force to overwrite them (package.json and .gitignore are never overwritten)',
    });
  }
  const c = ctx.io.colors;
  const shown = relative(ctx.cwd, target) || '.';
  const wrote = (path: string, existed: boolean) =>
    ctx.io.stdout(`  ${existed ? c.yellow('overwrote') : c.green('created')}   ${path}\n`);
  for (const file of files) {
    const existed = exists(file.path);
    if (existed && CREATE_ONLY.has(file.path)) {
      ctx.io.stdout(`  ${c.dim('kept')}        ${file.path} ${c.dim('(exists)')}\n`);
      continue;
    }
    mkdirSync(dirname(join(target, file.path)), { recursive: true });
    writeFileSync(join(target, file.path), file.text);
    wrote(file.path, existed);
  }

  // Generated after the config is written, from it, so the editor knows the scaffold's handlers.
  const schemaExisted = exists(PROJECT_SCHEMA_PATH);
  const registry = new HandlerRegistry(createDefaultHandlers());
  let problem: string | null = null;
  try {
    for (const handler of await loadScaffoldHandlers(join(target, 'weft.config.ts')))
      registry.register(handler);
  } catch (error) {
    problem = error instanceof Error ? error.message : String(error);
  }
  writePipelineSchema(join(target, PROJECT_SCHEMA_PATH), registry);
  wrote(PROJECT_SCHEMA_PATH, schemaExisted);
  if (problem !== null) {
    ctx.io.stderr(
      `${c.yellow('note:')} ${PROJECT_SCHEMA_PATH} lists the built-in handlers only: weft.config.ts did not load (${problem.split('\n')[0]})\n`,
    );
  }

  const installed = existsSync(join(target, 'node_modules', 'weft'));
  const cd = shown === '.' ? '' : `cd ${shown} && `;
  ctx.io.stdout(
    `\n${c.bold('next:')}\n` +
      (installed
        ? ''
        : `  ${cd}npm install            ${c.dim('# installs weft (package.json lists it)')}\n`) +
      `  ${cd}npx weft validate\n  ${cd}npx weft test\n  ${cd}npx weft run pipelines/example.yaml --param who=ada\n`,
  );
  return 0;
}

/**
 * The handlers of the config just written. weft is usually not installed in the project yet, so
 * its `import … from 'weft'` is mapped to this weft.
 */
async function loadScaffoldHandlers(configFile: string): Promise<AnyHandler[]> {
  const { createJiti } = await import('jiti');
  const jiti = createJiti(import.meta.url, {
    interopDefault: false,
    moduleCache: false,
    ...(WEFT_ENTRY ? { alias: { weft: WEFT_ENTRY } } : {}),
  });
  const module = await jiti.import<{ default?: { handlers?: unknown } }>(configFile);
  const handlers = module.default?.handlers;
  if (!Array.isArray(handlers)) throw new Error('its default export has no `handlers` array');
  return handlers as AnyHandler[];
}

export function registerInitCommand(program: Command, deps: CommandDeps): void {
  program
    .command('init')
    .description('create a project: weft.config.ts, an example pipeline and its test, CI and editor settings')
    .argument('[dir]', 'the project folder (default: the current folder; created when missing)')
    .option('--force', 'overwrite files that exist')
    .action(async (dir: string | undefined, options: InitOptions) => {
      deps.setExitCode(await initCommand(deps.context({}), dir, options));
    });
}
