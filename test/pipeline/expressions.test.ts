import { describe, expect, it } from 'vitest';
import { createDict, type JsonValue } from '../../src/core/json.js';
import { WeftError } from '../../src/errors.js';
import { quoteShellWord } from '../../src/handlers/shell-quote.js';
import {
  collectExpressions,
  evaluateCondition,
  parseCondition,
  parseExpression,
  parseTemplate,
  referencesOf,
  resolveTemplate,
  scanTemplates,
  type ExpressionScope,
} from '../../src/pipeline/expressions.js';

function scope(overrides: Partial<ExpressionScope> = {}): ExpressionScope {
  return {
    params: { n: 3, name: 'world', flag: true, empty: '', list: [1, 2], obj: { a: 1 } },
    env: { HOME: '/home/me' },
    tasks: {
      extract: { output: { rows: [{ id: 7, 'a key': 'v' }], count: 1 }, state: 'succeeded' },
      broken: { output: null, state: 'failed' },
    },
    run: { id: 'run-1', scheduled_for: '2025-01-01T00:00:00.000Z', attempt: 2 },
    ...overrides,
  };
}

function expectFailure(fn: () => unknown, code: string, fragment: string): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(WeftError);
    expect((error as WeftError).code).toBe(code);
    expect((error as WeftError).message).toContain(fragment);
    return;
  }
  throw new Error('expected a failure');
}

describe('parseTemplate', () => {
  it('splits text and expressions, with offsets of ${{', () => {
    const { parts, errors } = parseTemplate('hello ${{ params.name }}!');
    expect(errors).toEqual([]);
    expect(parts).toMatchObject([
      { kind: 'text', text: 'hello ' },
      { kind: 'expr', source: 'params.name', offset: 6 },
      { kind: 'text', text: '!' },
    ]);
  });

  it('does not end an expression at }} inside a string literal', () => {
    const { parts, errors } = parseTemplate("${{ params.name == '}}' }}");
    expect(errors).toEqual([]);
    expect(parts).toHaveLength(1);
    expect(parts[0]).toMatchObject({ kind: 'expr', source: "params.name == '}}'" });
  });

  it.each([
    ['${{ params.n', 'unterminated expression', 0],
    ['ab ${{ }}', 'empty expression', 7],
    ['${{ params.n = 1 }}', 'use ==', 13],
    ['${{ params. }}', 'expected a name', 12],
    ['${{ (params.n }}', 'expected ")"', 14],
    ["${{ 'abc }}", 'unterminated string', 4],
    ['${{ foo() }}', 'unexpected "("', 7],
    ['${{ params.n + 1 }}', 'unexpected character "+"', 13],
    ['${{ run.nope }}', 'expected run.id', 4],
    ['${{ tasks.a }}', 'expected tasks.NAME.output', 4],
    ['${{ env.A.B }}', 'expected env.NAME', 4],
    ['${{ a == b == c }}', 'cannot be chained', 11],
    ['${{ params }}', 'expected params.NAME', 4],
  ])('reports %j: %s at offset %d', (text, message, offset) => {
    const { errors } = parseTemplate(text);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toContain(message);
    expect(errors[0]!.offset).toBe(offset);
  });

  it('refuses pathological nesting instead of overflowing the stack', () => {
    const { errors } = parseExpression('('.repeat(10_000) + '1' + ')'.repeat(10_000));
    expect(errors[0]!.message).toContain('nested too deeply');
  });
});

describe('parseExpression', () => {
  it('parses paths with dots, indexes and quoted keys', () => {
    const { expr, errors } = parseExpression('tasks.extract.output.rows[0]["a key"]');
    expect(errors).toEqual([]);
    expect(expr).toMatchObject({
      kind: 'path',
      root: 'tasks',
      segments: ['extract', 'output', 'rows', 0, 'a key'],
    });
  });

  it('gives && precedence over || and comparisons over both', () => {
    const { expr } = parseExpression('a.x || b.y && c.z == 1');
    expect(expr).toMatchObject({
      kind: 'logical',
      op: '||',
      right: { kind: 'logical', op: '&&', right: { kind: 'compare', op: '==' } },
    });
  });

  it('accepts task names with hyphens', () => {
    const { expr } = parseExpression('tasks.load-data.output');
    expect(expr).toMatchObject({ segments: ['load-data', 'output'] });
  });
});

describe('referencesOf', () => {
  it('lists every path in source order with absolute offsets', () => {
    const { parts } = parseTemplate('x ${{ params.a == tasks.b.output.c || !env.D }}');
    const expr = parts.find((p) => p.kind === 'expr')!;
    if (expr.kind !== 'expr' || !expr.expr) throw new Error('no expression');
    expect(referencesOf(expr.expr)).toEqual([
      { root: 'params', name: 'a', field: null, text: 'params.a', offset: 6 },
      { root: 'tasks', name: 'b', field: 'output', text: 'tasks.b.output.c', offset: 18 },
      { root: 'env', name: 'D', field: null, text: 'env.D', offset: 39 },
    ]);
  });
});

describe('collectExpressions and scanTemplates', () => {
  it('walks objects and arrays, not keys', () => {
    const value: JsonValue = {
      '${{ params.k }}': 1,
      a: ['x', 'y ${{ params.n }}'],
      b: { c: '${{ env.HOME }}' },
    };
    const found = collectExpressions(value).map((site) => [site.path, site.text, site.offset]);
    expect(found).toEqual([
      [['a', 1], 'params.n', 2],
      [['b', 'c'], 'env.HOME', 0],
    ]);
  });

  it('reports syntax errors with their path', () => {
    const { errors } = scanTemplates({ a: [1, '${{ params. }}'] });
    expect(errors).toEqual([
      { path: ['a', 1], message: expect.stringContaining('expected a name') as string, offset: 12 },
    ]);
  });
});

describe('resolveTemplate', () => {
  it('keeps the JSON type of a whole-value expression', () => {
    expect(resolveTemplate('${{ params.n }}', scope())).toBe(3);
    expect(resolveTemplate('${{ params.flag }}', scope())).toBe(true);
    expect(resolveTemplate('${{ params.obj }}', scope())).toEqual({ a: 1 });
    expect(resolveTemplate('${{ tasks.extract.output.rows[0].id }}', scope())).toBe(7);
    expect(resolveTemplate('${{ tasks.extract.output.rows[0]["a key"] }}', scope())).toBe('v');
    expect(resolveTemplate('${{ run.attempt }}', scope())).toBe(2);
    expect(resolveTemplate('${{ tasks.broken.state }}', scope())).toBe('failed');
  });

  it('turns values into text inside a longer string', () => {
    expect(
      resolveTemplate(
        'n=${{ params.n }} f=${{ params.flag }} l=${{ params.list }} o=${{ params.obj }}',
        scope(),
      ),
    ).toBe('n=3 f=true l=[1,2] o={"a":1}');
  });

  it('gives null for an unset env var as a whole value, and nothing inside text', () => {
    expect(resolveTemplate('${{ env.NOPE }}', scope())).toBeNull();
    expect(resolveTemplate('[${{ env.NOPE }}]', scope())).toBe('[]');
    expect(resolveTemplate('${{ env.HOME }}/x', scope())).toBe('/home/me/x');
  });

  it('applies recursively through objects and arrays and leaves keys alone', () => {
    const result = resolveTemplate(
      { '${{ params.n }}': ['${{ params.n }}', { deep: 'a${{ params.name }}' }], k: 5 },
      scope(),
    );
    expect(result).toEqual({ '${{ params.n }}': [3, { deep: 'aworld' }], k: 5 });
  });

  it('keeps a __proto__ key as plain data', () => {
    const input = JSON.parse('{"__proto__": {"polluted": "${{ params.n }}"}}') as JsonValue;
    const result = resolveTemplate(input, scope()) as Record<string, unknown>;
    expect(Object.getPrototypeOf(result)).toBe(Object.prototype);
    expect(Object.hasOwn(result, '__proto__')).toBe(true);
    expect((result as { polluted?: unknown }).polluted).toBeUndefined();
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
  });

  it('quotes expressions substituted inside strings at the quoted keys only', () => {
    const evil = scope({ params: { file: "a b; rm -rf / 'x'", cmd: 'ls -l' } });
    const result = resolveTemplate(
      {
        command: 'cat ${{ params.file }}',
        whole: '${{ params.file }}',
        other: 'cat ${{ params.file }}',
        nested: { command: 'x ${{ params.cmd }}' },
      },
      evil,
      { quoteKeys: ['command', 'whole'], quote: quoteShellWord },
    );
    expect(result).toEqual({
      command: `cat 'a b; rm -rf / '\\''x'\\'''`,
      // A whole-value expression is not inside a longer string: it keeps its value.
      whole: "a b; rm -rf / 'x'",
      other: "cat a b; rm -rf / 'x'",
      nested: { command: 'x ls -l' },
    });
  });

  it('evaluates logic with JavaScript-like operands', () => {
    expect(resolveTemplate("${{ params.empty || 'fallback' }}", scope())).toBe('fallback');
    expect(resolveTemplate('${{ params.n && params.name }}', scope())).toBe('world');
    expect(resolveTemplate('${{ !params.flag }}', scope())).toBe(false);
    expect(resolveTemplate('${{ params.obj == params.obj }}', scope())).toBe(true);
    expect(resolveTemplate('${{ params.list != params.list }}', scope())).toBe(false);
    expect(resolveTemplate("${{ 'b' > 'a' }}", scope())).toBe(true);
    expect(resolveTemplate('${{ -1.5e1 < 0 }}', scope())).toBe(true);
    expect(resolveTemplate('${{ params.name == "wor\\"ld" }}', scope())).toBe(false);
  });

  it.each([
    ['${{ tasks.extract.output.rows[3].id }}', 'tasks.extract.output.rows[3] does not exist'],
    ['${{ tasks.broken.output.x }}', 'task "broken" has no output'],
    ['${{ tasks.other.output }}', 'task "other" has not finished'],
    ['${{ params.missing }}', 'param "missing" is not defined'],
    ['${{ params.n < "a" }}', 'cannot compare'],
    ['${{ nope.x }}', 'unknown root'],
    ['${{ params.n.toString }}', 'params.n.toString does not exist'],
    ['${{ params.obj.constructor }}', 'params.obj.constructor does not exist'],
    ['${{ params.list.length }}', 'params.list.length does not exist'],
    ['${{ params.obj.__proto__ }}', 'params.obj.__proto__ does not exist'],
    ['${{ params. }}', 'invalid expression'],
  ])('%s fails with EXPRESSION_FAILED naming the problem', (text, fragment) => {
    expectFailure(() => resolveTemplate(text, scope()), 'EXPRESSION_FAILED', fragment);
  });

  it('names the expression in the error', () => {
    expectFailure(
      () => resolveTemplate('x ${{ tasks.broken.output.x }}', scope()),
      'EXPRESSION_FAILED',
      '`tasks.broken.output.x`',
    );
  });

  it('reads params from a prototype-free dict', () => {
    const params = createDict<JsonValue>();
    params.x = 'y';
    expect(resolveTemplate('${{ params.x }}', scope({ params }))).toBe('y');
    expectFailure(
      () => resolveTemplate('${{ params.toString }}', scope({ params })),
      'EXPRESSION_FAILED',
      'not defined',
    );
  });
});

describe('evaluateCondition', () => {
  it.each([
    [true, true],
    [false, false],
    ['${{ params.n > 2 }}', true],
    ['params.n > 3', false],
    ['  ${{ params.flag }}  ', true],
    ["tasks.extract.state == 'succeeded'", true],
    ['params.empty', false],
    ['params.list', true],
    ['env.NOPE', false],
    ['run.scheduled_for != null', true],
  ] as const)('%j is %s', (when, expected) => {
    expect(evaluateCondition(when, scope())).toBe(expected);
  });

  it('rejects text around the expression', () => {
    expect(parseCondition('x ${{ params.n }}').errors[0]!.message).toContain('single expression');
    expectFailure(
      () => evaluateCondition('${{ a }} ${{ b }}', scope()),
      'EXPRESSION_FAILED',
      'single expression',
    );
  });
});
