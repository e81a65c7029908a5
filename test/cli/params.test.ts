import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempProject, weft } from './helpers.js';

/** Runs weft, expects exit 0 (showing stderr if not) and parses its JSON stdout. */
function jsonOf<T>(args: string[], cwd: string): T {
  const result = weft(args, { cwd });
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as T;
}

// `--param` as a user passes it: type-checked against the pipeline's declarations, and a value
// substituted into a shell string reaching the command as exactly one word, whatever it holds.

const project = tempProject({
  'pipelines/echo.yaml': [
    'name: echo',
    'params:',
    '  value: { type: string }',
    '  count: { type: integer, default: 1 }',
    '  loud: { type: boolean, default: false }',
    'tasks:',
    '  show:',
    '    handler: shell',
    // One line per argument printf receives: a value split into words would print several.
    `    with: { command: "printf '<%s>\\\\n' \${{ params.value }} \${{ params.count }}" }`,
    '',
  ].join('\n'),
});
afterAll(() => project.cleanup());
const cwd = project.dir;

function shownLines(stdout: string): string[] {
  return [...stdout.matchAll(/ show \| (.*)$/gm)].map((m) => m[1]!);
}

describe('weft run --param', () => {
  it('passes typed params to the run (and records them)', () => {
    const result = weft(['run', 'echo', '--param', 'value=plain', '--param', 'count=7'], { cwd });
    expect(result.code).toBe(0);
    expect(shownLines(result.stdout)).toEqual(['<plain>', '<7>']);
    const runId = /run id: (r_\w+)/.exec(result.stdout)![1]!;
    const run = jsonOf<{ params: unknown }>(['runs', runId, '--format', 'json'], cwd);
    expect(run.params).toEqual({ value: 'plain', count: 7, loud: false });
  });

  it('rejects a value of the wrong type with exit 2, naming the flag, before anything runs', () => {
    const result = weft(['run', 'echo', '--param', 'value=x', '--param', 'count=abc'], { cwd });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--param count=abc');
    expect(result.stderr).toMatch(/integer/);
    expect(result.stdout).toBe('');
    const bool = weft(['run', 'echo', '--param', 'value=x', '--param', 'loud=maybe'], { cwd });
    expect(bool.code).toBe(2);
    expect(bool.stderr).toContain('--param loud=maybe');
  });

  it('rejects an unknown param with exit 2 and a did-you-mean', () => {
    const result = weft(['run', 'echo', '--param', 'value=x', '--param', 'cuont=2'], { cwd });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/unknown param "cuont"; did you mean "count"\?/);
    expect(result.stderr).not.toMatch(/\bat .+\.js:\d+/);
  });

  it('names a required param that is missing, and a flag without "="', () => {
    const missing = weft(['run', 'echo'], { cwd });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/param "value" is required/);
    const noEquals = weft(['run', 'echo', '--param', 'value'], { cwd });
    expect(noEquals.code).toBe(2);
    expect(noEquals.stderr).toContain('--param expects NAME=VALUE');
  });

  it('records nothing when the params are wrong', () => {
    const fresh = tempProject({
      'pipelines/echo.yaml': 'name: echo\nparams:\n  n: { type: integer }\ntasks:\n  a: { handler: noop }\n',
    });
    try {
      expect(weft(['run', 'echo', '--param', 'n=1.5'], { cwd: fresh.dir }).code).toBe(2);
      expect(existsSync(join(fresh.dir, '.weft'))).toBe(false);
    } finally {
      fresh.cleanup();
    }
  });
});

describe('hostile --param values substituted into a shell command', () => {
  const hostile = [
    '$(touch canary1)',
    '; touch canary2',
    '`touch canary3`',
    '"; touch canary4; echo "',
    "'; touch canary5; echo '",
    'a b\ttouch canary6 && touch canary7 | touch canary8 > canary9',
    '$HOME ${PATH} * ? ~ !',
    'it\'s \\ "quoted"\nand\nmultiline',
  ];

  it('never run as shell syntax and each arrives as one argument', () => {
    // One run for all of them keeps the suite fast: each value is its own param and word.
    const names = hostile.map((_, i) => `v${i}`);
    const hostileProject = tempProject({
      'pipelines/hostile.yaml': [
        'name: hostile',
        'params:',
        ...names.map((name) => `  ${name}: { type: string }`),
        'tasks:',
        '  show:',
        '    handler: shell',
        `    with: { command: "printf '<%s>\\\\n' ${names.map((name) => `\${{ params.${name} }}`).join(' ')}" }`,
        '',
      ].join('\n'),
    });
    try {
      const dir = hostileProject.dir;
      const result = weft(
        ['run', 'hostile', ...hostile.flatMap((value, i) => ['--param', `v${i}=${value}`])],
        { cwd: dir },
      );
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(readdirSync(dir).filter((name) => name.startsWith('canary'))).toEqual([]);
      const runId = /run id: (r_\w+)/.exec(result.stdout)![1]!;
      const run = jsonOf<{ tasks: { output: { stdout: string } }[] }>(
        ['runs', runId, '--format', 'json'],
        dir,
      );
      // printf got exactly one argument per value, each whole.
      expect(run.tasks[0]!.output.stdout).toBe(hostile.map((value) => `<${value}>`).join('\n'));
    } finally {
      hostileProject.cleanup();
    }
  });
});
