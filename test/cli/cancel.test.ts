import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HandlerRegistry } from '../../src/handlers/registry.js';
import { loadPipelineText } from '../../src/project/load-pipeline.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { runCli, tempDir } from '../testing/support.js';

let cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups) cleanup();
  cleanups = [];
});

const YAML = 'name: waiting\ntasks:\n  a:\n    handler: noop\n  b:\n    handler: noop\n    depends_on: [a]\n';

/** A project whose store holds one queued run that no process executes. */
async function projectWithQueuedRun(): Promise<{ dir: string; runId: string }> {
  const temp = tempDir({ 'pipelines/waiting.yaml': YAML });
  cleanups.push(temp.cleanup);
  const registry = new HandlerRegistry([{ name: 'noop', run: () => null }]);
  const { plan } = loadPipelineText('pipelines/waiting.yaml', YAML, { registry });
  const store = createSqliteStore(join(temp.dir, '.weft', 'weft.db'));
  try {
    const run = await store.createRun({
      id: 'r_queued1',
      pipeline: 'waiting',
      plan: plan!,
      params: {},
      trigger: 'manual',
      scheduledFor: null,
      state: 'queued',
      owner: null,
      createdAt: new Date().toISOString(),
    });
    return { dir: temp.dir, runId: run.id };
  } finally {
    await store.close();
  }
}

describe('weft cancel --format json', () => {
  it("prints the run's final JSON, also when it was already finished", async () => {
    const { dir, runId } = await projectWithQueuedRun();
    const cancel = await runCli(['cancel', runId, '--format', 'json'], dir);
    expect(cancel.stderr).toBe('');
    expect(cancel.code).toBe(0);
    const run = JSON.parse(cancel.stdout) as {
      id: string;
      pipeline: string;
      state: string;
      finished_at: string;
    };
    expect(run).toMatchObject({ id: runId, pipeline: 'waiting', state: 'cancelled' });
    expect(Date.parse(run.finished_at)).not.toBeNaN();

    const again = await runCli(['cancel', runId, '--format', 'json'], dir);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual(run);

    const text = await runCli(['cancel', runId], dir);
    expect(text.stdout).toBe(`run ${runId} already cancelled\n`);
  });
});
