import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..', '..');
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const temp = mkdtempSync(join(tmpdir(), 'weft-pack-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

interface PackResult {
  filename: string;
  files: { path: string }[];
}

/**
 * The package as npm would publish it. `--ignore-scripts`: dist/ is already built (npm test builds
 * first), and rebuilding it here would rewrite files other test files are running.
 */
function pack(destination: string): PackResult {
  const out = execFileSync(NPM, ['pack', '--json', '--ignore-scripts', '--pack-destination', destination], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return (JSON.parse(out) as PackResult[])[0]!;
}

describe('the npm package', () => {
  const packed = pack(temp);
  const paths = packed.files.map((f) => f.path);

  it('ships built code, the schema, docs, templates, bin and README', () => {
    for (const path of [
      'package.json',
      'README.md',
      'bin/weft.js',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/cli/main.js',
      'schema/pipeline.schema.json',
      'docs/language.md',
      'docs/cli.md',
      'docs/handlers.md',
      'templates/project/weft.config.ts.tmpl',
      'templates/project/_github/workflows/weft.yml.tmpl',
    ]) {
      expect(paths, path).toContain(path);
    }
  });

  it('ships no tests, fixtures, benchmarks or TypeScript sources', () => {
    const unwanted = paths.filter(
      (p) =>
        /^(test|src|bench|scripts|deploy|pipelines|\.ci)\//.test(p) ||
        /\.test\.(js|d\.ts)$/.test(p) ||
        (p.endsWith('.ts') && !p.endsWith('.d.ts')) ||
        /^(Dockerfile|compose\.yaml|tsconfig.*\.json|vitest\.config\.ts)$/.test(p),
    );
    expect(unwanted).toEqual([]);
  });

  it('installs into an empty project where `weft --help`, `weft init`, `weft validate` and `weft test` work', () => {
    const project = join(temp, 'project');
    execFileSync('mkdir', ['-p', project]);
    writeFileSync(
      join(project, 'package.json'),
      '{ "name": "consumer", "private": true, "type": "module" }\n',
    );
    // --ignore-scripts: no native build of better-sqlite3 (none of these commands opens a store);
    // --prefer-offline: the npm cache that `npm ci` filled answers, the registry only when it must.
    execFileSync(
      NPM,
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        '--ignore-scripts',
        join(temp, packed.filename),
      ],
      { cwd: project, stdio: 'ignore', timeout: 110_000 },
    );
    const weft = (...args: string[]) =>
      spawnSync(join(project, 'node_modules', '.bin', 'weft'), args, {
        cwd: project,
        encoding: 'utf8',
        env: { ...process.env, NO_COLOR: '1' },
        timeout: 30_000,
      });

    const help = weft('--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('Usage: weft');

    expect(weft('init').status).toBe(0);
    expect(readFileSync(join(project, 'package.json'), 'utf8')).toContain('"consumer"');
    const validate = weft('validate');
    expect(validate.stdout).toContain('1 pipeline file valid');
    expect(validate.status).toBe(0);
    const test = weft('test');
    expect(test.stdout).toMatch(/2 cases: 2 passed, 0 failed/);
    expect(test.status).toBe(0);
  }, 120_000);
});
