import { afterAll, describe, expect, it } from 'vitest';
import { tempProject, weft } from './helpers.js';

/** Runs weft, expects exit 0 (showing stderr if not) and parses its JSON stdout. */
function jsonOf<T>(args: string[], cwd: string): T {
  const result = weft(args, { cwd });
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as T;
}

// A project's own TypeScript handlers, loaded without a build step: from weft.config.ts and
// from `--handlers MODULE`.

const project = tempProject({
  'weft.config.ts': [
    '// TypeScript syntax on purpose: an interface and parameter types, which plain Node cannot load.',
    'interface GreetArgs { who: string }',
    'export default {',
    '  handlers: [',
    '    {',
    "      name: 'greet',",
    "      args: { type: 'object', properties: { who: { type: 'string' } }, required: ['who'], additionalProperties: false },",
    '      run: async (args: GreetArgs) => ({ hello: args.who }),',
    '    },',
    '  ],',
    '};',
    '',
  ].join('\n'),
  'more-handlers.ts': [
    'type ShoutArgs = { text: string };',
    'export const handlers = [',
    '  {',
    "    name: 'shout',",
    "    args: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] },",
    '    run: async (args: ShoutArgs) => ({ loud: args.text.toUpperCase() }),',
    '  },',
    '];',
    '',
  ].join('\n'),
  'pipelines/hello.yaml': [
    'name: hello',
    'tasks:',
    '  greet:',
    '    handler: greet',
    '    with: { who: ada }',
    '  show:',
    '    handler: shell',
    '    depends_on: greet',
    '    with: { command: "echo got ${{ tasks.greet.output.hello }}" }',
    '',
  ].join('\n'),
  'pipelines/bad-with.yaml': [
    'name: bad-with',
    'tasks:',
    '  greet:',
    '    handler: greet',
    '    with:',
    '      whom: ada',
    '',
  ].join('\n'),
  'extra/shout.yaml': [
    'name: shout',
    'tasks:',
    '  s:',
    '    handler: shout',
    '    with: { text: hey }',
    '  e:',
    '    handler: shell',
    '    depends_on: s',
    '    with: { command: "echo ${{ tasks.s.output.loud }}" }',
    '',
  ].join('\n'),
});
afterAll(() => project.cleanup());
const cwd = project.dir;

describe('handlers from weft.config.ts', () => {
  it('weft validate accepts a pipeline using a project handler', () => {
    const result = weft(['validate', 'pipelines/hello.yaml'], { cwd });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('1 pipeline file valid');
  });

  it('weft validate checks `with` against the handler’s args schema, with line:column', () => {
    const result = weft(['validate', '--format', 'json', 'pipelines/bad-with.yaml'], { cwd });
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as {
      files: { errors: { code: string; line: number; column: number; message: string }[] }[];
    };
    const errors = report.files[0]!.errors.map((e) => `${e.code} ${e.line}:${e.column}`);
    // The missing `who` points at the `with` mapping; the unknown `whom` at its key.
    expect(errors).toEqual(['HANDLER_ARGS 5:5', 'HANDLER_ARGS 6:7']);
    expect(report.files[0]!.errors[1]!.message).toMatch(/whom.*did you mean `who`/);
    const text = weft(['validate', 'pipelines/bad-with.yaml'], { cwd });
    expect(text.stdout).toContain('pipelines/bad-with.yaml:6:7');
  });

  it('weft run runs it and its output reaches a downstream task', () => {
    const result = weft(['run', 'hello'], { cwd });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/ show \| got ada$/m);
    const runId = /run id: (r_\w+)/.exec(result.stdout)![1]!;
    const run = jsonOf<{ tasks: { task: string; output: unknown }[] }>(
      ['runs', runId, '--format', 'json'],
      cwd,
    );
    expect(run.tasks.find((t) => t.task === 'greet')?.output).toEqual({ hello: 'ada' });
  });

  it('weft run refuses a pipeline whose `with` does not fit, running nothing', () => {
    const result = weft(['run', 'bad-with'], { cwd });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('pipelines/bad-with.yaml:6:7');
    expect(result.stderr).toContain('[HANDLER_ARGS]');
  });
});

describe('--handlers MODULE', () => {
  it('adds the module’s handlers (TypeScript, no build step) to run and validate', () => {
    const result = weft(['run', 'extra/shout.yaml', '--handlers', './more-handlers.ts'], { cwd });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/ e \| HEY$/m);
    expect(weft(['validate', 'extra/shout.yaml', '--handlers', './more-handlers.ts'], { cwd }).code).toBe(0);
  });

  it('without it the handler is unknown, with the registered ones listed', () => {
    const result = weft(['validate', 'extra/shout.yaml'], { cwd });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('extra/shout.yaml:4:14');
    expect(result.stdout).toContain('[HANDLER_UNKNOWN]');
    expect(result.stdout).toMatch(/registered handlers: .*greet/);
  });

  it('a module that does not exist is a clear error, not a stack', () => {
    const result = weft(['run', 'extra/shout.yaml', '--handlers', './nope.ts'], { cwd });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('module not found');
    expect(result.stderr).toContain('nope.ts');
    expect(result.stderr).not.toMatch(/\bat .+\.(js|ts):\d+/);
  });
});
