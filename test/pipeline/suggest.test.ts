import { describe, expect, it } from 'vitest';
import { editDistance, suggest } from '../../src/pipeline/suggest.js';

const TASK_KEYS = [
  'handler',
  'with',
  'depends_on',
  'retries',
  'retry_delay',
  'backoff',
  'max_retry_delay',
  'jitter',
  'timeout',
  'trigger_rule',
  'continue_on_error',
  'queue',
  'on_failure',
  'when',
  'description',
];

describe('suggest', () => {
  it.each([
    ['retry', 'retries'],
    ['depend_on', 'depends_on'],
    ['dependson', 'depends_on'],
    ['depends-on', 'depends_on'],
    ['Depends_On', 'depends_on'],
    ['handlr', 'handler'],
    ['hanlder', 'handler'],
    ['timeuot', 'timeout'],
    ['desc', 'description'],
    ['trigger', 'trigger_rule'],
    ['retry_dealy', 'retry_delay'],
  ])('%s -> %s', (word, expected) => {
    expect(suggest(word, TASK_KEYS)).toBe(expected);
  });

  it.each(['xyz', 'name', 'schedule', 'foo', ''])('has no guess for %j', (word) => {
    expect(suggest(word, TASK_KEYS)).toBeUndefined();
  });

  it('finds misspelled task names and never suggests the word itself', () => {
    expect(suggest('extrct', ['extract', 'transform', 'load'])).toBe('extract');
    expect(suggest('laod', ['extract', 'transform', 'load'])).toBe('load');
    expect(suggest('load', ['load'])).toBeUndefined();
  });

  it('editDistance counts a transposition as one edit', () => {
    expect(editDistance('ab', 'ba')).toBe(1);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('same', 'same')).toBe(0);
  });
});
