import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../src/core/duration.js';

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['60s', 60_000],
    ['5m', 300_000],
    ['1h30m', 5_400_000],
    ['2d', 172_800_000],
    ['1.5s', 1500],
    ['10', 10_000],
    [120, 120_000],
    [0.25, 250],
  ] as const)('%s is %d ms', (input, expected) => {
    expect(parseDuration(input)).toBe(expected);
  });

  it.each(['', 'abc', '5 minutes', '1h 30m', '-5s', '5x', 'm5'])('rejects %j', (input) => {
    expect(parseDuration(input)).toBeNull();
  });

  it('rejects negative and infinite numbers', () => {
    expect(parseDuration(-1)).toBeNull();
    expect(parseDuration(Infinity)).toBeNull();
  });
});

describe('formatDuration', () => {
  it.each([
    [250, '250ms'],
    [60_000, '1m'],
    [5_400_000, '1h30m'],
    [1500, '1.5s'],
  ])('%d ms is %s', (input, expected) => {
    expect(formatDuration(input)).toBe(expected);
  });
});
