import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempProject, weft } from './helpers.js';

const project = tempProject({
  'pipelines/good.yaml':
    'name: good\ntasks:\n  a: { handler: noop }\n  b: { handler: noop, depends_on: a }\n',
  'pipelines/bad.yaml': [
    'name: bad',
    'tasks:',
    '  a:',
    '    handler: noop',
    '    retry: 3',
    '  b:',
    '    handler: noop',
    '    depends_on: [c]',
    '',
  ].join('\n'),
  'pipelines/cycle.yaml':
    'name: cycle\ntasks:\n  a: { handler: noop, depends_on: b }\n  b: { handler: noop, depends_on: a }\n',
  'only-good/good.yaml': 'name: good\ntasks:\n  a: { handler: noop }\n',
});
afterAll(() => project.cleanup());

describe('weft validate', () => {
  it('exits 0 for valid files', () => {
    const result = weft(['validate', 'only-good'], { cwd: project.dir });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('1 pipeline file valid');
  });

  it('reports every problem of every file with file:line:column and exits 1', () => {
    const result = weft(['validate'], { cwd: project.dir });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('pipelines/bad.yaml:5:5');
    expect(result.stdout).toMatch(/did you mean .retries/);
    expect(result.stdout).toContain('pipelines/bad.yaml:8:18');
    expect(result.stdout).toMatch(/a -> b -> a|b -> a -> b/);
    expect(result.stderr).not.toMatch(/\bat .+\.js:\d+/); // no stack trace
  });

  it('gives a stable JSON shape', () => {
    const result = weft(['validate', '--format', 'json', 'pipelines/bad.yaml'], { cwd: project.dir });
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as {
      valid: boolean;
      files: {
        file: string;
        errors: { code: string; line: number; column: number; path: string; message: string }[];
      }[];
    };
    expect(report.valid).toBe(false);
    const codes = report.files[0]!.errors.map((e) => `${e.code} ${e.line}:${e.column}`);
    expect(codes).toEqual(['SCHEMA_UNKNOWN_KEY 5:5', 'DEPENDENCY_UNKNOWN 8:18']);
    expect(report.files[0]!.errors[0]!.path).toBe('tasks.a.retry');
  });

  it('writes GitHub annotations', () => {
    const result = weft(['validate', '--format', 'github', 'pipelines/cycle.yaml'], { cwd: project.dir });
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /^::error file=pipelines\/cycle\.yaml,line=\d+,col=\d+,title=DEPENDENCY_CYCLE::/m,
    );
  });

  it('exits 2 for a usage error, naming the flag or path', () => {
    const unknownFlag = weft(['validate', '--nope'], { cwd: project.dir });
    expect(unknownFlag.code).toBe(2);
    expect(unknownFlag.stderr).toContain('--nope');
    const missing = weft(['validate', 'no/such/file.yaml'], { cwd: project.dir });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('no/such/file.yaml');
    const badFormat = weft(['validate', '--format', 'xml'], { cwd: project.dir });
    expect(badFormat.code).toBe(2);
    expect(badFormat.stderr).toContain('xml');
  });

  it('never colours output when NO_COLOR is set or stdout is not a terminal', () => {
    const result = weft(['validate'], { cwd: project.dir });
    expect(result.stdout).not.toContain('\u001b[');
  });
});

describe('weft validate --changed', () => {
  it('checks only the pipeline files git sees as changed or new', () => {
    const repo = tempProject({
      'pipelines/kept.yaml': 'name: kept\ntasks:\n  a: { handler: noop, depends_on: zz }\n',
      'pipelines/edited.yaml': 'name: edited\ntasks:\n  a: { handler: noop }\n',
    });
    try {
      const git = (...args: string[]) =>
        spawnSync('git', args, {
          cwd: repo.dir,
          encoding: 'utf8',
          env: {
            ...process.env,
            GIT_AUTHOR_NAME: 't',
            GIT_AUTHOR_EMAIL: 't@t',
            GIT_COMMITTER_NAME: 't',
            GIT_COMMITTER_EMAIL: 't@t',
          },
        });
      git('init', '-q');
      git('add', '.');
      git('commit', '-qm', 'init');
      // Nothing changed: the invalid committed file is not looked at.
      const none = weft(['validate', '--changed'], { cwd: repo.dir });
      expect(none.code).toBe(0);
      expect(none.stdout).toContain('no changed pipeline files');
      writeFileSync(
        join(repo.dir, 'pipelines', 'edited.yaml'),
        'name: edited\ntasks:\n  a: { handler: nope }\n',
      );
      writeFileSync(join(repo.dir, 'pipelines', 'new.yaml'), 'name: new\ntasks:\n  a: { handler: noop }\n');
      const some = weft(['validate', '--changed', '--format', 'json'], { cwd: repo.dir });
      expect(some.code).toBe(1);
      const files = (JSON.parse(some.stdout) as { files: { file: string; valid: boolean }[] }).files;
      expect(files.map((f) => [f.file, f.valid])).toEqual([
        ['pipelines/edited.yaml', false],
        ['pipelines/new.yaml', true],
      ]);
    } finally {
      repo.cleanup();
    }
  });
});
