import { describe, expect, it } from 'vitest';
import type { Diagnostic } from '../../src/errors.js';
import { parsePipelineText } from '../../src/pipeline/load.js';
import { loadPipelineSchema } from '../../src/pipeline/schema.js';
import { createPipelineValidator, validatePipelineSchema } from '../../src/pipeline/validate-schema.js';
import { fastestOf } from '../support/fastest.js';

function validate(text: string) {
  const loaded = parsePipelineText('p.yaml', text);
  expect(loaded.diagnostics).toEqual([]);
  return validatePipelineSchema(loaded.source);
}

function only(text: string): Diagnostic {
  const { diagnostics, spec } = validate(text);
  expect(spec).toBeNull();
  expect(diagnostics).toHaveLength(1);
  return diagnostics[0]!;
}

const task = (body: string) => `name: demo\ntasks:\n  extract:\n${body}`;

describe('validatePipelineSchema', () => {
  it('returns the typed spec when there is no error', () => {
    const { spec, diagnostics } = validate(task('    handler: shell\n    retries: 2\n'));
    expect(diagnostics).toEqual([]);
    expect(spec?.tasks.extract?.retries).toBe(2);
  });

  it('returns nothing for a source whose YAML did not parse', () => {
    const { source } = parsePipelineText('p.yaml', 'a: [');
    expect(validatePipelineSchema(source)).toEqual({ spec: null, diagnostics: [] });
  });

  it.each([
    ['retry', 'retries'],
    ['depend_on', 'depends_on'],
    ['handlr', 'handler'],
    ['time_out', 'timeout'],
  ])('unknown key `%s` is reported at the key with "did you mean `%s`?"', (key, guess) => {
    const d = only(task(`    handler: shell\n    ${key}: 1\n`));
    expect(d).toMatchObject({
      code: 'SCHEMA_UNKNOWN_KEY',
      line: 5,
      column: 5,
      path: ['tasks', 'extract', key],
    });
    expect(d.message).toBe(`task "extract": unknown key \`${key}\``);
    expect(d.hint).toBe(`did you mean \`${guess}\`?`);
  });

  it('lists the allowed keys when no guess is close', () => {
    const d = only('name: demo\nzzzzzz: 1\ntasks:\n  a: {}\n');
    expect(d).toMatchObject({ code: 'SCHEMA_UNKNOWN_KEY', line: 2, column: 1 });
    expect(d.hint).toMatch(/^allowed keys: name, description, schedule/);
  });

  it('missing required keys point at the parent', () => {
    const root = validate('description: nothing else\n');
    expect(root.diagnostics.map((d) => [d.code, d.line, d.column, d.message])).toEqual([
      ['SCHEMA_MISSING_KEY', 1, 1, 'missing required key `name`'],
      ['SCHEMA_MISSING_KEY', 1, 1, 'missing required key `tasks`'],
    ]);
    const hook = only(task('    on_failure:\n      - with: {}\n'));
    expect(hook).toMatchObject({ code: 'SCHEMA_MISSING_KEY', line: 5, column: 9 });
    expect(hook.message).toBe('task "extract": `on_failure[0]` is missing required key `handler`');
    const param = only('name: demo\nparams:\n  env: { default: x }\ntasks:\n  a: {}\n');
    expect(param).toMatchObject({
      code: 'SCHEMA_MISSING_KEY',
      line: 3,
      column: 3,
      message: 'param "env" is missing required key `type`',
    });
  });

  it('wrong types name the field, the expected type and what was given', () => {
    const d = only(task('    retries: three\n'));
    expect(d).toMatchObject({ code: 'SCHEMA_TYPE', line: 4, column: 14 });
    expect(d.message).toBe('task "extract": `retries` must be an integer, got string "three"');
    expect(only(task('    depends_on: 5\n')).message).toBe(
      'task "extract": `depends_on` must be a string or a list, got number 5',
    );
    expect(only(task('    jitter: yes\n')).code).toBe('SCHEMA_TYPE');
    expect(only('name: demo\ntasks: [a, b]\n').message).toBe('`tasks` must be a mapping, got a list');
    expect(only('just text\n').message).toMatch(/^the pipeline must be a mapping/);
  });

  it('a task with no body gets a hint', () => {
    const d = only('name: demo\ntasks:\n  a:\n');
    expect(d).toMatchObject({
      code: 'SCHEMA_TYPE',
      line: 3,
      column: 3,
      hint: 'write `a: {}` for a task with no settings',
    });
  });

  it('enums list the allowed values and guess', () => {
    const d = only(task('    backoff: exponentail\n'));
    expect(d).toMatchObject({
      code: 'SCHEMA_ENUM',
      line: 4,
      column: 14,
      hint: 'did you mean `exponential`?',
    });
    expect(d.message).toBe(
      'task "extract": `backoff` must be one of `fixed`, `exponential`, got string "exponentail"',
    );
    expect(
      only('name: demo\nschedule: { cron: "* * * * *", overlap: never }\ntasks:\n  a: {}\n').message,
    ).toContain('`schedule.overlap` must be one of `skip`, `queue`, `allow`');
  });

  it('a bad duration is DURATION_INVALID with examples; a negative one is out of range', () => {
    const d = only(task('    timeout: 5 minutes\n'));
    expect(d).toMatchObject({ code: 'DURATION_INVALID', line: 4, column: 14 });
    expect(d.message).toBe('task "extract": `timeout` is not a duration: "5 minutes"');
    expect(d.hint).toContain('"1h30m"');
    expect(only('name: demo\nretry_delay: "1h 30m"\ntasks:\n  a: {}\n').code).toBe('DURATION_INVALID');
    expect(only(task('    retry_delay: -1\n'))).toMatchObject({
      code: 'SCHEMA_RANGE',
      message: 'task "extract": `retry_delay` must be at least 0, got number -1',
    });
    expect(only(task('    timeout: true\n')).code).toBe('SCHEMA_TYPE');
    for (const ok of ['250ms', '30s', '1h30m', '2d', '1.5s', '10', '0']) {
      expect(validate(task(`    timeout: "${ok}"\n`)).diagnostics).toEqual([]);
    }
    expect(validate(task('    timeout: 90\n')).diagnostics).toEqual([]);
  });

  it('explains the naming rule for the pipeline name and task names', () => {
    const name = only('name: Nightly ETL\ntasks:\n  a: {}\n');
    expect(name).toMatchObject({ code: 'SCHEMA_PATTERN', line: 1, column: 7, hint: 'try "nightly-etl"' });
    expect(name.message).toContain('lowercase');
    const taskName = only('name: demo\ntasks:\n  load data: {}\n');
    expect(taskName).toMatchObject({ code: 'SCHEMA_PATTERN', line: 3, column: 3, hint: 'try "load_data"' });
    expect(taskName.message).toContain('task name "load data"');
  });

  it('ranges: integers >= 0 / >= 1, tasks not empty, non-empty strings', () => {
    expect(only('name: demo\nconcurrency: 0\ntasks:\n  a: {}\n')).toMatchObject({
      code: 'SCHEMA_RANGE',
      line: 2,
      column: 14,
    });
    expect(only(task('    retries: -1\n'))).toMatchObject({
      code: 'SCHEMA_RANGE',
      message: 'task "extract": `retries` must be at least 0, got number -1',
    });
    expect(only('name: demo\ntasks: {}\n')).toMatchObject({
      code: 'SCHEMA_RANGE',
      message: '`tasks` must define at least one task',
    });
    expect(only(task('    queue: ""\n')).code).toBe('SCHEMA_RANGE');
    expect(
      only('name: demo\nschedule: { cron: "* * * * *", catchup_limit: 0 }\ntasks:\n  a: {}\n').code,
    ).toBe('SCHEMA_RANGE');
  });

  it('a task listed twice in depends_on points at the repeat', () => {
    const d = only(task('    depends_on: [a, b, a]\n'));
    expect(d).toMatchObject({
      code: 'SCHEMA_INVALID',
      line: 4,
      column: 24,
      path: ['tasks', 'extract', 'depends_on', 2],
    });
  });

  it.each(['__proto__', 'constructor', 'prototype'])(
    'task name %s is TASK_NAME_RESERVED at the key',
    (name) => {
      const d = only(`name: demo\ntasks:\n  ok: {}\n  ${name}: {}\n`);
      expect(d).toMatchObject({ code: 'TASK_NAME_RESERVED', line: 4, column: 3, path: ['tasks', name] });
      expect(d.message).toContain(`"${name}"`);
    },
  );

  it('reports one error for each wrong string-or-object value, never one per branch', () => {
    expect(only('name: demo\nschedule: 5\ntasks:\n  a: {}\n').message).toBe(
      '`schedule` must be a string or a mapping, got number 5',
    );
    expect(only('name: demo\non_success: [5]\ntasks:\n  a: {}\n').message).toBe(
      '`on_success[0]` must be a string or a mapping, got number 5',
    );
    expect(only('name: demo\non_success: [{ handler: x, bad: 1 }]\ntasks:\n  a: {}\n').code).toBe(
      'SCHEMA_UNKNOWN_KEY',
    );
  });

  it('reports every problem of a file in one pass, in order', () => {
    const { diagnostics, spec } = validate(
      [
        'name: Bad Name',
        'concurency: 2',
        'tasks:',
        '  a:',
        '    retry: 2',
        '    timeout: soon',
        '    trigger_rule: always',
        '  b:',
        '    depends_on: [a, a]',
        '  __proto__: {}',
        '',
      ].join('\n'),
    );
    expect(spec).toBeNull();
    expect(diagnostics.map((d) => `${d.code} ${d.line}:${d.column}`)).toEqual([
      'SCHEMA_PATTERN 1:7',
      'SCHEMA_UNKNOWN_KEY 2:1',
      'SCHEMA_UNKNOWN_KEY 5:5',
      'DURATION_INVALID 6:14',
      'SCHEMA_ENUM 7:19',
      'SCHEMA_INVALID 9:21',
      'TASK_NAME_RESERVED 10:3',
    ]);
    expect(diagnostics.every((d) => d.file === 'p.yaml' && d.severity === 'error')).toBe(true);
  });

  it('collapses oneOf noise for schemas written with oneOf', () => {
    const schema = loadPipelineSchema() as { $defs: Record<string, unknown> };
    schema.$defs.duration = {
      description: 'duration',
      oneOf: [
        { type: 'string', pattern: '^((\\d+(\\.\\d+)?(ms|s|m|h|d))+|\\d+(\\.\\d+)?)$' },
        { type: 'number', minimum: 0 },
      ],
    };
    const hookObject: Record<string, unknown> = { ...(schema.$defs.hook as object), type: 'object' };
    delete hookObject.minLength;
    // ajv inlines a $ref's target only when it holds no $ref itself, and collapseErrors places a
    // branch's errors by the inlined schema paths: the branch keeps its duration written out.
    const properties = hookObject.properties as Record<string, unknown>;
    hookObject.properties = { ...properties, timeout: schema.$defs.duration };
    schema.$defs.hookObject = hookObject;
    schema.$defs.hook = { oneOf: [{ type: 'string', minLength: 1 }, { $ref: '#/$defs/hookObject' }] };
    const check = createPipelineValidator(schema);
    const run = (text: string) =>
      check(parsePipelineText('p.yaml', text).source).diagnostics.map(
        (d) => `${d.code} ${d.line}:${d.column} ${d.message}`,
      );
    expect(run(task('    timeout: 5 minutes\n'))).toEqual([
      'DURATION_INVALID 4:14 task "extract": `timeout` is not a duration: "5 minutes"',
    ]);
    expect(run(task('    timeout: -3\n'))).toEqual([
      'SCHEMA_RANGE 4:14 task "extract": `timeout` must be at least 0, got number -3',
    ]);
    expect(run(task('    timeout: true\n'))).toEqual([
      'SCHEMA_TYPE 4:14 task "extract": `timeout` must be a string or a number, got boolean true',
    ]);
    expect(run(task('    on_failure: [{ handlr: x }]\n'))).toEqual([
      'SCHEMA_MISSING_KEY 4:18 task "extract": `on_failure[0]` is missing required key `handler`',
      'SCHEMA_UNKNOWN_KEY 4:20 task "extract": unknown key `handlr` in `on_failure[0]`',
    ]);
    expect(run(task('    on_failure: [7]\n'))).toEqual([
      'SCHEMA_TYPE 4:18 task "extract": `on_failure[0]` must be a string or a mapping, got number 7',
    ]);
  });

  it('parses and validates a 10,000-task file quickly', () => {
    const lines = ['name: big', 'tasks:'];
    for (let i = 0; i < 10_000; i++) {
      const id = (n: number) => `t${String(n).padStart(4, '0')}`;
      const deps = i < 3 ? '' : `, depends_on: [${id(i - 1)}, ${id(i - 2)}, ${id(i - 3)}]`;
      lines.push(`  ${id(i)}: { handler: noop${deps} }`);
    }
    const text = lines.join('\n') + '\n';
    validatePipelineSchema(parsePipelineText('warm.yaml', 'name: warm\ntasks:\n  a: {}\n').source);
    const { value, ms: elapsed } = fastestOf(2, () => {
      const loaded = parsePipelineText('big.yaml', text);
      return { loaded, ...validatePipelineSchema(loaded.source) };
    });
    const { loaded, spec, diagnostics } = value;
    expect(loaded.diagnostics).toEqual([]);
    expect(diagnostics).toEqual([]);
    expect(Object.keys(spec?.tasks ?? {})).toHaveLength(10_000);
    expect(elapsed).toBeLessThan(3000);
    console.log(`10,000 tasks: parse + schema validation in ${elapsed.toFixed(0)} ms`);
  });
});
