import { describe, expect, it } from 'vitest';
import { normaliseOutput } from '../../src/engine/output.js';

const problem = (value: unknown): string => {
  try {
    normaliseOutput(value, 't');
  } catch (error) {
    expect(error).toMatchObject({ code: 'HANDLER_OUTPUT_INVALID', retryable: false });
    return (error as Error).message.replace('the output of task "t" is not JSON: ', '');
  }
  throw new Error('accepted');
};

describe('normaliseOutput', () => {
  it('keeps JSON as it is and turns undefined into null', () => {
    expect(normaliseOutput(undefined, 't')).toBeNull();
    expect(normaliseOutput('x', 't')).toBe('x');
    expect(normaliseOutput({ a: [1, 'b', null, { c: true }] }, 't')).toEqual({
      a: [1, 'b', null, { c: true }],
    });
  });

  it('drops object keys whose value is undefined, as JSON does', () => {
    expect(normaliseOutput({ a: 1, b: undefined }, 't')).toEqual({ a: 1 });
  });

  it('keeps a "__proto__" key as an ordinary key', () => {
    const out = normaliseOutput(JSON.parse('{"__proto__": {"x": 1}}'), 't') as Record<string, unknown>;
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(Object.keys(out)).toEqual(['__proto__']);
  });

  it('names the offending path', () => {
    expect(problem({ a: { fn: () => 1 } })).toBe('$.a.fn is a function');
    expect(problem({ n: 10n })).toBe('$.n is a BigInt');
    expect(problem([1, undefined])).toBe('$[1] is undefined');
    expect(problem({ when: new Date(0) })).toBe('$.when is a Date');
    expect(problem({ 'odd key': new Set() })).toBe('$["odd key"] is a Set');
    expect(problem(Number.NaN)).toBe('$ is NaN, which JSON cannot hold');
    expect(problem(Symbol('s'))).toBe('$ is a symbol');
  });

  it('refuses cycles but accepts the same object twice side by side', () => {
    const shared = { x: 1 };
    expect(normaliseOutput({ a: shared, b: shared }, 't')).toEqual({ a: { x: 1 }, b: { x: 1 } });
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    expect(problem(loop)).toBe('$.self refers back to itself (a cycle)');
  });
});
