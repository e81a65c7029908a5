import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../testing/support.js';

const REPO = resolve(import.meta.dirname, '..', '..');
const BIN = join(REPO, 'bin', 'weft.js');

/** The built CLI, as a user runs it (npm test builds dist/ first). */
function weft(args: string[], cwd: string) {
  const result = spawnSync(process.execPath, [BIN, ...args], {
    cwd,
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: undefined, WEFT_STORE: undefined },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

let cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups) cleanup();
  cleanups = [];
});

function emptyDir(files: Record<string, string> = {}): string {
  const temp = tempDir(files);
  cleanups.push(temp.cleanup);
  return temp.dir;
}

const EXPECTED_FILES = [
  '.github/workflows/weft.yml',
  '.gitignore',
  '.vscode/settings.json',
  'README.md',
  'package.json',
  'pipelines/example.test.yaml',
  'pipelines/example.yaml',
  'schema/weft.schema.json',
  'weft.config.ts',
];

/** The `with` schema the generated schema gives tasks whose handler is `name`, or undefined. */
function withSchemaFor(schemaFile: string, name: string): unknown {
  const schema = JSON.parse(readFileSync(schemaFile, 'utf8')) as {
    $defs: { task: { allOf?: { if: unknown; then: { properties: { with: unknown } } }[] } };
  };
  const rule = schema.$defs.task.allOf?.find(
    (r) =>
      JSON.stringify(r.if) ===
      JSON.stringify({ properties: { handler: { const: name } }, required: ['handler'] }),
  );
  return rule?.then.properties.with;
}

describe('weft init', () => {
  it('scaffolds a project that validates, tests and runs as it is (weft linked into node_modules)', async () => {
    const root = emptyDir();
    const init = await runCli(['init', 'my project'], root);
    expect(init.code).toBe(0);
    const dir = join(root, 'my project');
    for (const file of EXPECTED_FILES) expect(existsSync(join(dir, file)), file).toBe(true);

    // weft as an installed dependency: node_modules/weft is the package (this repository).
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(REPO, join(dir, 'node_modules', 'weft'), 'dir');

    const pipeline = readFileSync(join(dir, 'pipelines/example.yaml'), 'utf8');
    const modeline = /^# yaml-language-server: \$schema=(\S+)$/m.exec(pipeline);
    expect(modeline).not.toBeNull();
    expect(existsSync(resolve(dir, 'pipelines', modeline![1]!))).toBe(true);
    const settings = JSON.parse(readFileSync(join(dir, '.vscode/settings.json'), 'utf8')) as {
      'yaml.schemas': Record<string, string[]>;
    };
    const [schemaPath] = Object.keys(settings['yaml.schemas']);
    expect(existsSync(resolve(dir, schemaPath!))).toBe(true);
    // Both point at the project's own schema, which knows the scaffold's handler and the built-ins.
    expect(resolve(dir, 'pipelines', modeline![1]!)).toBe(join(dir, 'schema/weft.schema.json'));
    expect(resolve(dir, schemaPath!)).toBe(join(dir, 'schema/weft.schema.json'));
    expect(withSchemaFor(join(dir, 'schema/weft.schema.json'), 'example.greet')).toMatchObject({
      required: ['name'],
      properties: { excited: { type: 'boolean' } },
    });
    expect(withSchemaFor(join(dir, 'schema/weft.schema.json'), 'shell')).toBeDefined();
    expect(init.stderr).toBe('');
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).toContain(
      'npx weft schema --write schema/weft.schema.json',
    );
    const workflow = parse(readFileSync(join(dir, '.github/workflows/weft.yml'), 'utf8')) as {
      jobs: { pipelines: { steps: { run?: string }[] } };
    };
    expect(workflow.jobs.pipelines.steps.map((s) => s.run).filter(Boolean)).toEqual([
      'npm ci',
      'npx weft validate --format github',
      'npx weft test',
    ]);
    expect(JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))).toMatchObject({
      name: 'my-project',
      type: 'module',
      dependencies: { weft: expect.stringMatching(/^\^\d+\.\d+\.\d+/) as unknown },
    });

    const validate = weft(['validate'], dir);
    expect(validate.stderr).toBe('');
    expect(validate.stdout).toContain('1 pipeline file valid');
    expect(validate.code).toBe(0);

    const test = weft(['test'], dir);
    expect(test.stdout).toMatch(/2 cases: 2 passed, 0 failed/);
    expect(test.code).toBe(0);

    const run = weft(['run', 'pipelines/example.yaml', '--param', 'who=ada', '--format', 'json'], dir);
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout) as { state: string; tasks: { task: string; output: unknown }[] };
    expect(result.state).toBe('succeeded');
    expect(result.tasks.find((t) => t.task === 'greet')?.output).toEqual({ greeting: 'Hello, ada!' });
  });

  it('refuses to overwrite files (exit 2, naming them) unless --force, and never overwrites package.json', async () => {
    const dir = emptyDir({
      'weft.config.ts': 'export default {};\n',
      'pipelines/example.yaml': 'mine\n',
      'package.json': '{"name":"keep-me"}\n',
    });
    const refused = await runCli(['init'], dir);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('refusing to overwrite pipelines/example.yaml, weft.config.ts');
    expect(readFileSync(join(dir, 'weft.config.ts'), 'utf8')).toBe('export default {};\n');
    expect(existsSync(join(dir, 'README.md'))).toBe(false);

    const again = await runCli(['init'], emptyDir({ 'schema/weft.schema.json': '{}\n' }));
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('refusing to overwrite schema/weft.schema.json');

    const forced = await runCli(['init', '--force'], dir);
    expect(forced.code).toBe(0);
    expect(readFileSync(join(dir, 'weft.config.ts'), 'utf8')).toContain('defineHandler');
    expect(readFileSync(join(dir, 'package.json'), 'utf8')).toBe('{"name":"keep-me"}\n');
    expect(forced.stdout).toContain('kept        package.json (exists)');
    expect(forced.stdout).toContain('created   schema/weft.schema.json');
    expect(withSchemaFor(join(dir, 'schema/weft.schema.json'), 'example.greet')).toBeDefined();
  });

  it('refuses a target that is a file', async () => {
    const dir = emptyDir({ taken: 'x' });
    writeFileSync(join(dir, 'taken'), 'x');
    const result = await runCli(['init', 'taken'], dir);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('taken exists and is not a folder');
  });
});
