import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { tempProject, weft } from './helpers.js';

describe('weft fires', () => {
  it('shows what happened to each schedule tick, newest first, with the reason', async () => {
    const project = tempProject({ 'pipelines/p.yaml': 'name: p\ntasks:\n  a: { handler: noop }\n' });
    try {
      const store = createSqliteStore(join(project.dir, '.weft', 'weft.db'));
      const at = (m: number) => new Date(Date.UTC(2026, 0, 1, 0, m)).toISOString();
      await store.recordFire({
        pipeline: 'p',
        scheduledFor: at(0),
        outcome: 'ran',
        reason: null,
        runId: 'r_1',
        recordedAt: at(0),
      });
      await store.recordFire({
        pipeline: 'p',
        scheduledFor: at(5),
        outcome: 'skipped',
        reason: 'run r_1 still running (overlap: skip)',
        runId: null,
        recordedAt: at(5),
      });
      await store.close();
      const json = weft(['fires', '--format', 'json'], { cwd: project.dir });
      expect(json.code).toBe(0);
      expect(JSON.parse(json.stdout)).toEqual([
        expect.objectContaining({
          scheduled_for: at(5),
          outcome: 'skipped',
          reason: 'run r_1 still running (overlap: skip)',
        }),
        expect.objectContaining({ scheduled_for: at(0), outcome: 'ran', run_id: 'r_1' }),
      ]);
      const text = weft(['fires'], { cwd: project.dir });
      expect(text.stdout).toMatch(/skipped\s+-\s+run r_1 still running/);
    } finally {
      project.cleanup();
    }
  });
});
