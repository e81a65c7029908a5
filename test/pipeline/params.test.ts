import { describe, expect, it } from 'vitest';
import type { ParamSpec } from '../../src/pipeline/spec.js';
import { checkParamValue, coerceParam, resolveParams } from '../../src/pipeline/params.js';

const declared: Record<string, ParamSpec> = {
  limit: { type: 'integer', default: 10 },
  ratio: { type: 'number' },
  dry_run: { type: 'boolean', default: false },
  env: { type: 'string', enum: ['dev', 'prod'], default: 'dev' },
  filter: { type: 'object', default: {} },
  ids: { type: 'array', default: [] },
};

describe('resolveParams', () => {
  it('applies defaults and coerces CLI strings by declared type', () => {
    const { params, errors } = resolveParams(
      declared,
      { limit: '25', ratio: '0.5', dry_run: 'true', env: 'prod', filter: '{"a":1}', ids: '[1,2]' },
      'cli',
    );
    expect(errors).toEqual([]);
    expect({ ...params }).toEqual({
      limit: 25,
      ratio: 0.5,
      dry_run: true,
      env: 'prod',
      filter: { a: 1 },
      ids: [1, 2],
    });
    expect(Object.getPrototypeOf(params)).toBeNull();
  });

  it('uses defaults for what is not given', () => {
    const { params, errors } = resolveParams(declared, { ratio: '1' }, 'cli');
    expect(errors).toEqual([]);
    expect({ ...params }).toEqual({ limit: 10, ratio: 1, dry_run: false, env: 'dev', filter: {}, ids: [] });
  });

  it.each([
    [{ ratio: '1', limit: 'ten' }, '--param limit=ten: expected an integer, got "ten"'],
    [{ ratio: '1', limit: '1.5' }, '--param limit=1.5: expected an integer'],
    [{ ratio: 'x' }, '--param ratio=x: expected a number'],
    [{ ratio: '' }, '--param ratio=: expected a number'],
    [{ ratio: '1', dry_run: 'yes' }, '--param dry_run=yes: expected true or false'],
    [{ ratio: '1', env: 'staging' }, '--param env=staging: expected one of "dev", "prod", got "staging"'],
    [{ ratio: '1', filter: '[1]' }, '--param filter=[1]: expected a JSON object'],
    [{ ratio: '1', ids: '{' }, '--param ids={: expected a JSON array (JSON)'],
  ])('CLI %j -> %s', (given, message) => {
    const { errors } = resolveParams(declared, given, 'cli');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain(message);
  });

  it('reports a missing required param and unknown names with did-you-mean', () => {
    const { errors } = resolveParams(declared, { limt: '3' }, 'cli');
    expect(errors).toEqual([
      '--param limt=3: unknown param "limt"; did you mean "limit"?',
      'param "ratio" is required (a number): pass --param ratio=…',
    ]);
  });

  it('lists the declared params when nothing is close', () => {
    const { errors } = resolveParams({ a: { type: 'string', default: 'x' } }, { zzzzzz: 'v' }, 'cli');
    expect(errors).toEqual(['--param zzzzzz=v: unknown param "zzzzzz" (declared: a)']);
  });

  it('takes JSON values as they are, without coercion', () => {
    const ok = resolveParams(declared, { ratio: 2, limit: 3, dry_run: true }, 'json');
    expect(ok.errors).toEqual([]);
    expect(ok.params.limit).toBe(3);
    const bad = resolveParams(declared, { ratio: '2', limit: 1.5 }, 'json');
    expect(bad.errors).toEqual([
      'param "limit": expected an integer, got number 1.5',
      'param "ratio": expected a number, got string "2"',
    ]);
  });

  it('treats __proto__ as a plain (unknown) name', () => {
    const given = JSON.parse('{"__proto__": "x", "ratio": 1}') as Record<string, string>;
    const { params, errors } = resolveParams(declared, given, 'json');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain('unknown param "__proto__"');
    expect(Object.getPrototypeOf(params)).toBeNull();
  });
});

describe('checkParamValue and coerceParam', () => {
  it('checks types and enums', () => {
    expect(checkParamValue({ type: 'integer' }, 3)).toBeNull();
    expect(checkParamValue({ type: 'integer' }, '3')).toBe('expected an integer, got string "3"');
    expect(checkParamValue({ type: 'array', enum: [[1]] }, [1])).toBeNull();
    expect(checkParamValue({ type: 'object' }, null)).toBe('expected a JSON object, got null');
  });

  it('coerces integers strictly', () => {
    expect(coerceParam('integer', '-7')).toEqual({ value: -7 });
    expect(coerceParam('integer', '99999999999999999999')).toHaveProperty('error');
    expect(coerceParam('string', ' x ')).toEqual({ value: ' x ' });
  });
});
