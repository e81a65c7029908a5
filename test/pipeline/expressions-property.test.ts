import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { JsonValue } from '../../src/core/json.js';
import { WeftError } from '../../src/errors.js';
import {
  evaluateCondition,
  parseExpression,
  parseTemplate,
  resolveTemplate,
  type ExpressionScope,
} from '../../src/pipeline/expressions.js';

const alphabet = fc.constantFrom(
  ...'${}()[].\'"\\!=<>&|-_ abcxyz019'.split(''),
  '${{',
  '}}',
  'params',
  'tasks',
  'env',
  'run',
  '__proto__',
  'constructor',
  'prototype',
  '.output',
  '.toString',
);
const exprText = fc.array(alphabet, { maxLength: 30 }).map((parts) => parts.join(''));

function scope(): ExpressionScope {
  return {
    params: { a: 1, obj: { x: [1, 2] } },
    env: {},
    tasks: { t: { output: { rows: [{ id: 1 }] }, state: 'succeeded' } },
    run: { id: 'r', scheduled_for: null, attempt: 1 },
  };
}

/** Evaluating may fail, but only ever with EXPRESSION_FAILED. */
function evaluateSafely(run: () => unknown): unknown {
  try {
    return run();
  } catch (error) {
    expect(error).toBeInstanceOf(WeftError);
    expect((error as WeftError).code).toBe('EXPRESSION_FAILED');
    return undefined;
  }
}

const isJson = (value: unknown): boolean =>
  value === null ||
  ['string', 'number', 'boolean'].includes(typeof value) ||
  (Array.isArray(value) && value.every(isJson)) ||
  (typeof value === 'object' &&
    Object.getPrototypeOf(value) === Object.prototype &&
    Object.values(value).every(isJson));

describe('expressions (properties)', () => {
  it('parsing any text never throws; errors have offsets inside the text', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), exprText), (text) => {
        const template = parseTemplate(text);
        for (const error of template.errors) expect(error.offset).toBeGreaterThanOrEqual(0);
        for (const error of template.errors) expect(error.offset).toBeLessThanOrEqual(text.length);
        const expr = parseExpression(text);
        expect(expr.expr === null).toBe(expr.errors.length > 0);
      }),
      { numRuns: 2000 },
    );
  });

  it('evaluation returns JSON or fails with EXPRESSION_FAILED, and never touches Object.prototype', () => {
    const before = Object.getOwnPropertyNames(Object.prototype).sort();
    fc.assert(
      fc.property(exprText, (text) => {
        const value = evaluateSafely(() => resolveTemplate(`\${{ ${text} }}`, scope()));
        if (value !== undefined) expect(isJson(value)).toBe(true);
        const inText = evaluateSafely(() => resolveTemplate(`x \${{ ${text} }} y`, scope()));
        if (inText !== undefined) expect(typeof inText).toBe('string');
        evaluateSafely(() => evaluateCondition(text, scope()));
      }),
      { numRuns: 2000 },
    );
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(before);
  });

  it('no path reaches a prototype member', () => {
    const names = [
      '__proto__',
      'constructor',
      'prototype',
      'toString',
      'hasOwnProperty',
      'valueOf',
      'length',
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(
          'params.obj',
          'params.obj.x',
          'tasks.t.output',
          'tasks.t.output.rows',
          'tasks.t.output.rows[0]',
        ),
        fc.array(fc.constantFrom(...names), { minLength: 1, maxLength: 3 }),
        fc.boolean(),
        (base, path, bracket) => {
          const suffix = path.map((name) => (bracket ? `["${name}"]` : `.${name}`)).join('');
          expect(() => resolveTemplate(`\${{ ${base}${suffix} }}`, scope())).toThrow(/does not exist/);
        },
      ),
    );
  });

  it('substituted text round-trips strings unchanged', () => {
    fc.assert(
      fc.property(fc.string(), (value) => {
        const s: ExpressionScope = { ...scope(), params: { v: value } };
        expect(resolveTemplate('${{ params.v }}', s)).toBe(value);
        expect(resolveTemplate('<${{ params.v }}>', s)).toBe(`<${value}>`);
        expect(resolveTemplate({ k: ['${{ params.v }}'] } as JsonValue, s)).toEqual({ k: [value] });
      }),
    );
  });
});
