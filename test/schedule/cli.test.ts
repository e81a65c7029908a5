import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { spawnWeft, tempProject, weft } from '../cli/helpers.js';

/** End-to-end: the built CLI (npm test builds dist/ first), as a user runs it. */

const TICK =
  'name: tick\nschedule:\n  cron: "0 */6 * * *"\n  timezone: Europe/Berlin\ntasks:\n  a:\n    handler: noop\n';
const NAP =
  'name: nap\nparams:\n  secs:\n    type: string\n    default: "100ms"\ntasks:\n  a:\n    handler: sleep\n    with: { duration: "${{ params.secs }}" }\n';

let cleanup: (() => void) | undefined;
afterEach(() => {
  cleanup?.();
  cleanup = undefined;
});

function project(files: Record<string, string>): string {
  const p = tempProject(files);
  cleanup = p.cleanup;
  return p.dir;
}

describe('weft list', () => {
  it('lists each pipeline with its schedule, next fires and validity', () => {
    const dir = project({
      'pipelines/tick.yaml': TICK,
      'pipelines/nap.yaml': NAP,
      'pipelines/bad.yaml': 'name: bad\nschedule: "61 * * * *"\ntasks:\n  a:\n    handler: noop\n',
    });
    const result = weft(['list', '--format', 'json'], { cwd: dir });
    expect(result.code).toBe(0);
    const { pipelines } = JSON.parse(result.stdout) as {
      pipelines: {
        pipeline: string;
        valid: boolean;
        error: string | null;
        schedule: { description: string; timezone: string; next_fires: string[] } | null;
      }[];
    };
    expect(pipelines.map((p) => [p.pipeline, p.valid])).toEqual([
      ['bad', false],
      ['nap', true],
      ['tick', true],
    ]);
    expect(pipelines[0]!.error).toMatch(/^pipelines\/bad\.yaml:2:11 CRON_INVALID /);
    const tick = pipelines[2]!.schedule!;
    expect(tick.description).toBe('every 6 hours at minute 0');
    expect(tick.timezone).toBe('Europe/Berlin');
    expect(tick.next_fires).toHaveLength(3);
    expect(Date.parse(tick.next_fires[1]!) - Date.parse(tick.next_fires[0]!)).toBe(6 * 3_600_000);
    const text = weft(['list'], { cwd: dir });
    expect(text.stdout).toContain('every 6 hours at minute 0 (0 */6 * * *)');
  });
});

describe('weft serve', () => {
  it('refuses to start when a pipeline is invalid, printing the validation report', () => {
    const dir = project({
      'pipelines/tick.yaml': TICK,
      'pipelines/bad.yaml': 'name: bad\ntasks:\n  a:\n    handler: nope\n',
    });
    const result = weft(['serve'], { cwd: dir });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('pipelines/bad.yaml:4:14');
    expect(result.stderr).toContain('HANDLER_UNKNOWN');
    expect(result.stderr).toContain('weft serve did not start');
  });

  it('says which setting names a port in use, and exits instead of running on without a store', async () => {
    const dir = project({ 'pipelines/tick.yaml': TICK });
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    try {
      const port = String((holder.address() as AddressInfo).port);
      writeFileSync(join(dir, 'weft.config.ts'), `export default { serve: { port: ${port} } };\n`);
      const result = weft(['serve'], { cwd: dir });
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(
        `cannot listen on 127.0.0.1:${port} (weft.config.ts (serve.port)): it is in use`,
      );
      expect(result.stderr).not.toMatch(/internal error|\n\s+at /);
    } finally {
      holder.close();
    }
  });

  it('runs triggered runs; on SIGTERM cancels what is still running after the grace and exits 0', async () => {
    const dir = project({ 'pipelines/tick.yaml': TICK, 'pipelines/nap.yaml': NAP });
    const server = spawnWeft(['serve', '--log-format', 'json', '--grace', '300ms', '--port', '0'], {
      cwd: dir,
    });
    let out = '';
    server.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    // 'close', not 'exit': the last lines (scheduler:stopped) may still be in the pipe at exit.
    const exited = new Promise<number | null>((resolve) => server.on('close', (code) => resolve(code)));
    const until = async (text: string) => {
      // Starting node and loading the pipelines takes seconds on a busy machine.
      const deadline = Date.now() + 30_000;
      while (!out.includes(text)) {
        if (Date.now() > deadline) throw new Error(`serve never printed ${text}; got:\n${out}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    };
    try {
      await until('"event":"scheduler:started"');
      const waited = weft(['trigger', 'nap', '--wait'], { cwd: dir });
      expect(waited.code).toBe(0);
      const [requestId, runLine] = waited.stdout.trim().split('\n');
      expect(requestId).toMatch(/^request q_[0-9A-Z]{18}$/);
      expect(runLine).toMatch(/^run r_[0-9A-Z]{18}$/);

      const long = weft(['trigger', 'nap', '--param', 'secs=30s'], { cwd: dir });
      expect(long.code).toBe(0);
      const [longRequest, longRun] = long.stdout.trim().split('\n');
      const longRequestId = longRequest!.replace('request ', '');
      await until(`"requestId":"${longRequestId}"`);
      const longRunId = new RegExp(`"runId":"(r_[0-9A-Z]{18})"[^\n]*"requestId":"${longRequestId}"`).exec(
        out,
      )![1]!;
      // Without --wait it still prints the run id when the server takes the request within the
      // trigger's 2 s; a starved server may take longer, and then the trigger says so instead.
      expect([
        `run ${longRunId}`,
        `(not started yet: 'weft runs ${longRequestId}' shows the run once it exists)`,
      ]).toContain(longRun);
      // The request id leads to the run too.
      const shown = weft(['runs', longRequestId, '--format', 'json'], { cwd: dir });
      expect(JSON.parse(shown.stdout)).toMatchObject({ id: longRunId });
      expect(weft(['trigger', 'nap', '--param', 'nope=1'], { cwd: dir }).code).toBe(2);
      // The long run itself, not the first one: SIGTERM must find it running.
      await until(`"event":"run:started","runId":"${longRunId}"`);
      server.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      server.kill('SIGKILL');
    }
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; state?: string });
    expect(lines.filter((l) => l.event === 'run:finished').map((l) => l.state)).toEqual([
      'succeeded',
      'cancelled',
    ]);
    expect(lines.at(-1)).toMatchObject({ event: 'scheduler:stopped', cancelled: 1 });
    const store = createSqliteStore(join(dir, '.weft', 'weft.db'));
    try {
      const runs = await store.listRuns();
      expect(runs.map((r) => r.state).sort()).toEqual(['cancelled', 'succeeded']);
      expect(await store.listRuns({ states: ['running', 'retrying', 'queued'] })).toEqual([]);
    } finally {
      await store.close();
    }
  });
});
