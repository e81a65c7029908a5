import { afterEach, describe, expect, it } from 'vitest';
import { tempProject, weft } from './helpers.js';

/** The built CLI (npm test builds dist/ first): it reads pipelines relative to its own cwd. */

let cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups) cleanup();
  cleanups = [];
});

function project(files: Record<string, string>): string {
  const temp = tempProject(files);
  cleanups.push(temp.cleanup);
  return temp.dir;
}

const BERLIN =
  'name: berlin\nschedule:\n  cron: "30 9 * * *"\n  timezone: Europe/Berlin\ntasks:\n  a:\n    handler: noop\n';
const ZULU = 'name: zulu\nschedule: "15 6 * * *"\ntasks:\n  a:\n    handler: noop\n';
const BROKEN = 'name: [broken\ntasks:\n';

describe('weft list', () => {
  it("shows next fires on the schedule's own clock and in UTC; JSON gives both", () => {
    const dir = project({ 'pipelines/berlin.yaml': BERLIN, 'pipelines/zulu.yaml': ZULU });
    const json = weft(['list', '--format', 'json'], { cwd: dir, env: { WEFT_STORE: ':memory:' } });
    expect(json.stderr).toBe('');
    expect(json.code).toBe(0);
    const { pipelines } = JSON.parse(json.stdout) as {
      pipelines: { pipeline: string; schedule: { next_fires: string[]; next_fires_local: string[] } }[];
    };
    const berlin = pipelines.find((p) => p.pipeline === 'berlin')!.schedule;
    expect(berlin.next_fires_local).toHaveLength(3);
    berlin.next_fires_local.forEach((local, i) => {
      expect(local).toMatch(/^\d{4}-\d\d-\d\dT09:30:00\+0[12]:00$/);
      expect(Date.parse(local)).toBe(Date.parse(berlin.next_fires[i]!));
    });

    const text = weft(['list'], { cwd: dir, env: { WEFT_STORE: ':memory:' } });
    expect(text.code).toBe(0);
    const berlinRow = text.stdout.split('\n').find((line) => line.startsWith('berlin'))!;
    expect(berlinRow).toMatch(/\d{4}-\d\d-\d\d 09:30 CES?T \(0[78]:30Z\)/);
    const zuluRow = text.stdout.split('\n').find((line) => line.startsWith('zulu'))!;
    expect(zuluRow).toMatch(/\d{4}-\d\d-\d\d 06:15Z, /);
    expect(zuluRow).not.toMatch(/06:15Z \(/);
  });

  it('names a file too broken to name its pipeline by its file name', () => {
    const dir = project({ 'pipelines/broken.yaml': BROKEN, 'pipelines/zulu.yaml': ZULU });
    const text = weft(['list'], { cwd: dir, env: { WEFT_STORE: ':memory:' } });
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^broken\.yaml\s+invalid\s/m);
    expect(text.stdout).not.toMatch(/^\?\s/m);
  });
});
