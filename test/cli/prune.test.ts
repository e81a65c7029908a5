import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { RunStore } from '../../src/store/run-store.js';
import { onLines } from '../support/lines.js';
import { finishedRun } from '../store/plan-fixture.js';
import { spawnWeft, tempProject, weft } from './helpers.js';

const DAY = 86_400_000;
const daysAgo = (days: number) => new Date(Date.now() - days * DAY).toISOString();
const projects: { cleanup: () => void }[] = [];
afterAll(() => projects.forEach((p) => p.cleanup()));

/** A project whose store holds two runs of p that ended 40 days ago and one that ended yesterday. */
async function projectWithHistory(): Promise<{ dir: string; ids: string[] }> {
  const project = tempProject({ 'pipelines/p.yaml': 'name: p\ntasks:\n  a: { handler: noop }\n' });
  projects.push(project);
  const store: RunStore = createSqliteStore(join(project.dir, '.weft', 'weft.db'));
  const ids: string[] = [];
  for (const [n, age] of [
    [1, 40],
    [2, 40],
    [3, 1],
  ] as const) {
    const run = await finishedRun(store, `r_old_${n}`, daysAgo(age));
    await store.appendLogs([
      { runId: run.id, task: 'a', attempt: 1, ts: daysAgo(age), level: 'info', message: 'hello' },
    ]);
    ids.push(run.id);
  }
  await store.close();
  return { dir: project.dir, ids };
}

describe('weft prune', () => {
  it('counts with --dry-run, then deletes the history older than --older-than and keeps the rest', async () => {
    const { dir, ids } = await projectWithHistory();
    const dry = weft(['prune', '--older-than', '30d', '--dry-run', '--format', 'json'], { cwd: dir });
    expect(dry.code, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ dry_run: true, runs: 2, fires: 0, run_requests: 0 });
    expect(weft(['runs', ids[0]!], { cwd: dir }).code).toBe(0);

    const done = weft(['prune', '--older-than', '30d'], { cwd: dir });
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toMatch(/^deleted 2 run\(s\) .* that ended before \S+ \(older than 30d\)\n$/);
    expect(weft(['runs', ids[0]!], { cwd: dir }).code).not.toBe(0);
    expect(weft(['runs', ids[2]!], { cwd: dir }).code).toBe(0);
    expect(weft(['logs', ids[2]!], { cwd: dir }).stdout).toContain('hello');
    const again = weft(['prune', '--older-than', '30d', '--format', 'json'], { cwd: dir });
    expect(JSON.parse(again.stdout)).toMatchObject({ dry_run: false, runs: 0 });
  });

  it('refuses a missing, malformed or too short --older-than, naming the flag', () => {
    const project = tempProject({});
    projects.push(project);
    for (const [args, message] of [
      [[], /required option '--older-than <duration>'/],
      [['--older-than', 'soon'], /--older-than expects a duration such as 30d or 90d, got "soon"/],
      [['--older-than', '2h'], /--older-than must be at least 1d, got "2h"/],
    ] as const) {
      const result = weft(['prune', ...args], { cwd: project.dir });
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(result.stderr).not.toMatch(/\n\s+at /);
    }
  });
});

/** Starts `weft serve ARGS` in `dir`, waits for its store:pruned line, stops it; returns the line's message. */
async function prunedAtStart(dir: string, args: string[]): Promise<string> {
  const serve = spawnWeft(['serve', '--no-http', ...args], { cwd: dir });
  const closed = new Promise<number | null>((resolve) => serve.on('close', resolve));
  try {
    const pruned = await new Promise<{ message: string }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('weft serve never said store:pruned')), 30_000);
      onLines(serve.stdout, (line) => {
        if (!line.includes('"store:pruned"')) return;
        clearTimeout(timer);
        resolve(JSON.parse(line) as { message: string });
      });
    });
    return pruned.message;
  } finally {
    serve.kill('SIGTERM');
    expect(await closed).toBe(0);
  }
}

describe('weft serve --retain', () => {
  it('prunes at start and says what it deleted', async () => {
    const { dir, ids } = await projectWithHistory();
    const bad = weft(['serve', '--no-http', '--retain', '1h'], { cwd: dir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--retain must be at least 1d/);

    expect(await prunedAtStart(dir, ['--log-format', 'json', '--retain', '30d'])).toMatch(
      /^deleted 2 run\(s\)/,
    );
    expect(weft(['runs', ids[0]!], { cwd: dir }).code).not.toBe(0);
    expect(weft(['runs', ids[2]!], { cwd: dir }).code).toBe(0);
  });

  it('takes its settings from serve: in weft.config.ts, naming the key when one is wrong', async () => {
    const { dir, ids } = await projectWithHistory();
    writeFileSync(join(dir, 'weft.config.ts'), "export default { serve: { retain: '1h' } };\n");
    const bad = weft(['serve', '--no-http'], { cwd: dir });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(
      /weft\.config\.ts: `serve\.retain` must be a duration of at least "1d", such as "30d", got "1h" \[CONFIG_INVALID\]/,
    );
    expect(bad.stderr).not.toMatch(/\n\s+at /);

    writeFileSync(
      join(dir, 'weft.config.ts'),
      "export default { serve: { retain: '30d', logFormat: 'json', grace: '1s' } };\n",
    );
    // JSON lines (logFormat from the config), and a prune at start (retain from the config).
    expect(await prunedAtStart(dir, [])).toMatch(/^deleted 2 run\(s\)/);
    expect(weft(['runs', ids[0]!], { cwd: dir }).code).not.toBe(0);
  });
});
