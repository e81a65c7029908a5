import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../worker/pg-support.js';
import { weft } from './helpers.js';

const db = await useTestDatabase('test/cli/db-migrate.test.ts');

describe.skipIf(!db.available)('weft db migrate', () => {
  it('migrates the PostgreSQL run store up front when --store names one, and only once', async () => {
    const args = ['db', 'migrate', '--store', db.url(), '--database-url', db.url(), '--format', 'json'];
    const first = weft(args);
    expect(first.code).toBe(0);
    const steps = (JSON.parse(first.stdout) as { steps: { step: string; applied: { version: number }[] }[] })
      .steps;
    expect(steps.map((s) => s.step)).toEqual(['organism', 'run store']);
    expect(steps[1]!.applied.map((m) => m.version)).toEqual([1, 2, 3, 4, 5, 6]);
    const tables = await db.query<{ name: string }>("SELECT to_regclass('runs')::text AS name");
    expect(tables[0]!.name).toBe('runs');
    const again = JSON.parse(weft(args).stdout) as { steps: { applied: unknown[] }[] };
    expect(again.steps.map((s) => s.applied.length)).toEqual([0, 0]);
  });
});
