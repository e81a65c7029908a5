import { describe, expect, it } from 'vitest';
import { matchSubset } from '../../src/testing/match.js';
import { isTestFile } from '../../src/testing/find-test-files.js';
import { isPipelineFile } from '../../src/project/discover.js';

describe('matchSubset', () => {
  it('matches objects as subsets, recursively', () => {
    expect(matchSubset({ a: 1 }, { a: 1, b: 2 }, 'out')).toEqual([]);
    expect(matchSubset({ a: { b: 'x' } }, { a: { b: 'x', c: 1 } }, 'out')).toEqual([]);
    expect(matchSubset({ a: { b: 'x' } }, { a: { b: 'y' } }, 'out')).toEqual([
      'out.a.b: expected "x", got "y"',
    ]);
    expect(matchSubset({ missing: 1 }, {}, 'out')).toEqual([
      'out.missing: expected 1, but there is no such key',
    ]);
  });

  it('matches arrays by length and element', () => {
    expect(matchSubset([1, { a: 1 }], [1, { a: 1, b: 2 }], 'o')).toEqual([]);
    expect(matchSubset([1], [1, 2], 'o')).toEqual(['o: expected 1 item(s), got 2: [1,2]']);
    expect(matchSubset([1, 2], [1, 3], 'o')).toEqual(['o[1]: expected 2, got 3']);
  });

  it('compares scalars and types strictly', () => {
    expect(matchSubset('1', 1, 'o')).toEqual(['o: expected "1", got 1']);
    expect(matchSubset(null, null, 'o')).toEqual([]);
    expect(matchSubset({ a: 1 }, null, 'o')).toEqual(['o: expected {"a":1}, got null']);
  });
});

describe('test files are not pipelines', () => {
  it('tells them apart by name', () => {
    expect(isTestFile('pipelines/hello.test.yaml')).toBe(true);
    expect(isTestFile('pipelines/hello.test.yml')).toBe(true);
    expect(isTestFile('pipelines/hello.yaml')).toBe(false);
    expect(isPipelineFile('pipelines/hello.test.yaml')).toBe(false);
    expect(isPipelineFile('pipelines/hello.test.yml')).toBe(false);
    expect(isPipelineFile('pipelines/test.yaml')).toBe(true);
    expect(isPipelineFile('pipelines/hello.yaml')).toBe(true);
  });
});
