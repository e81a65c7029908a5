import { describe, expect, it } from 'vitest';
import { newRunId, RUN_ID_PATTERN, runIdTime } from '../../src/store/ids.js';

describe('newRunId', () => {
  const t = Date.parse('2025-03-01T10:00:00.000Z');

  it('is short, prefixed and in Crockford base32', () => {
    const id = newRunId(t);
    expect(id).toMatch(RUN_ID_PATTERN);
    expect(id).toHaveLength(20);
    expect(id.slice(2)).not.toMatch(/[ILOU]/);
  });

  it('encodes its creation time', () => {
    expect(runIdTime(newRunId(t))).toBe(t);
    expect(runIdTime(newRunId(0))).toBeGreaterThanOrEqual(0);
    expect(runIdTime('not-an-id')).toBeNull();
  });

  it('sorts as plain strings in creation order, across and within milliseconds', () => {
    const ids = [
      newRunId(t + 10),
      newRunId(t + 10),
      newRunId(t + 10),
      newRunId(t + 11),
      newRunId(t + 1000),
      newRunId(t + 86_400_000),
    ];
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('stays unique and increasing when the clock goes backwards', () => {
    const a = newRunId(t + 5_000_000);
    const b = newRunId(t);
    expect(b > a).toBe(true);
  });

  it('produces no duplicates in a burst', () => {
    const ids = Array.from({ length: 10_000 }, () => newRunId(t + 9_000_000));
    expect(new Set(ids).size).toBe(10_000);
  });
});
