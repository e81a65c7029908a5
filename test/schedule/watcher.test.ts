import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createDefaultHandlers } from '../../src/project/default-handlers.js';
import { HandlerRegistry } from '../../src/handlers/registry.js';
import type { SchedulerEvent } from '../../src/schedule/events.js';
import { createPipelineWatcher, type PipelineWatcher } from '../../src/schedule/pipeline-watcher.js';
import { createFixture, waitUntil } from './harness.js';

const pipeline = (cron: string) => `name: tick\nschedule: "${cron}"\ntasks:\n  a:\n    handler: noop\n`;

let dir: string;
let watcher: PipelineWatcher | undefined;
afterEach(() => {
  watcher?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('pipeline files changed on disk', () => {
  it('reloads a valid edit, keeps the old version on an invalid one, unschedules a removed file', async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-watch-'));
    const file = join(dir, 'tick.yaml');
    writeFileSync(file, pipeline('*/5 * * * *'));
    const events: SchedulerEvent[] = [];
    const registry = new HandlerRegistry(createDefaultHandlers());
    watcher = createPipelineWatcher({
      paths: [dir],
      cwd: dir,
      registry,
      debounceMs: 20,
      onLog: (e) => events.push(e),
    });
    const loads = await watcher.load();
    expect(loads.map((l) => [l.file, l.plan?.name])).toEqual([['tick.yaml', 'tick']]);
    const f = createFixture({
      start: Date.parse('2025-01-01T10:01:00Z'),
      pipelines: watcher,
      registry,
      onLog: (e) => events.push(e),
    });
    await f.scheduler.start();
    watcher.watch();
    expect(f.scheduler.nextFires()).toEqual([{ pipeline: 'tick', at: Date.parse('2025-01-01T10:05:00Z') }]);

    writeFileSync(file, pipeline('not a cron'));
    await waitUntil(() => events.some((e) => e.type === 'file:invalid'));
    const invalid = events.find((e) => e.type === 'file:invalid') as Extract<
      SchedulerEvent,
      { type: 'file:invalid' }
    >;
    expect(invalid.kept).toBe(true);
    expect(invalid.diagnostics.map((d) => [d.code, d.line])).toEqual([['CRON_INVALID', 2]]);
    expect(watcher.current()[0]!.schedule!.cron).toBe('*/5 * * * *');
    expect(f.scheduler.nextFires()[0]!.at).toBe(Date.parse('2025-01-01T10:05:00Z'));

    writeFileSync(file, pipeline('0 * * * *'));
    await waitUntil(() => f.scheduler.nextFires()[0]?.at === Date.parse('2025-01-01T11:00:00Z'));
    expect(events.some((e) => e.type === 'file:reloaded')).toBe(true);

    unlinkSync(file);
    await waitUntil(() => f.scheduler.nextFires().length === 0);
    expect(events.some((e) => e.type === 'pipeline:unscheduled' && e.pipeline === 'tick')).toBe(true);
    await f.scheduler.stop();
  });
});
