import type { Redis } from 'ioredis';
import { expect } from 'vitest';
import { BEFORE_RUN_EXISTS, NAMED_POINTS, spawnWeftRun, type WeftRunOutcome } from './chaos-pipeline.js';
import { groupBacklog, NOT_TERMINAL, processesWith } from './invariants.js';
import type { Rng } from './tier.js';

/**
 * The order of a kill test's runs: `named` kills cycling through NAMED_POINTS from a random one
 * (so each point gets floor or ceil of named / points) and `random` random kills (null), shuffled —
 * except that the first is always BEFORE_RUN_EXISTS: the fresh run that follows it is one no kill
 * interrupts, and its duration times the random kills.
 */
export function chaosPlan(rng: Rng, named: number, random: number): (string | null)[] {
  if (named < NAMED_POINTS.length) throw new Error(`chaosPlan: ${named} named kills miss some points`);
  const offset = rng.int(NAMED_POINTS.length);
  const kills: (string | null)[] = Array.from(
    { length: named },
    (_, i) => NAMED_POINTS[(offset + i) % NAMED_POINTS.length]!,
  );
  kills.splice(kills.indexOf(BEFORE_RUN_EXISTS), 1);
  kills.push(...Array.from({ length: random }, () => null));
  for (let i = kills.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [kills[i], kills[j]] = [kills[j]!, kills[i]!];
  }
  return [BEFORE_RUN_EXISTS, ...kills];
}

/** The median of measured durations (ms); there is always one, the plan's first fresh run. */
export function medianOf(values: readonly number[]): number {
  if (values.length === 0) throw new Error('medianOf: no duration measured yet');
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** What the kill loop reads straight from the run store (a weft command would itself be a restart). */
export interface KillStore {
  runCount(): Promise<number> | number;
  latestRun(): Promise<{ id: string; state: string } | undefined> | { id: string; state: string } | undefined;
  hasPendingHooks(runId: string): Promise<boolean> | boolean;
  /** started_at → finished_at of a finished run, as the store recorded it. */
  runDurationMs(runId: string): Promise<number> | number;
  /** Checked after every kill and every restart (SQLite: the integrity check). */
  check?(): void;
}

export interface KillPlanResult {
  runs: number;
  tally: { resumed: number; fresh: number; hookOnly: number; randomLanded: number; randomMissed: number };
  killsAt: Map<string, number>;
  /** Durations (ms) of the runs no kill interrupted. */
  durations: number[];
}

/**
 * Runs a chaos plan: each run SIGKILLed at its named point, or at a random moment of its run drawn
 * over the median duration of the unkilled runs so far; then restarted — `weft resume` of the run
 * it left (opening the store, it finds the dead owner and marks the run interrupted) or, when
 * there is none, a fresh run. A random kill counts only when it left the run unfinished; one that
 * missed (the run finished first) is drawn again, up to `maxMisses` times (`topUp` adds entries
 * for the extra run). After every kill and restart the marked shell child must be gone.
 */
export async function executeKillPlan(options: {
  rng: Rng;
  named: number;
  random: number;
  maxMisses: number;
  marker: string;
  store: KillStore;
  /** `run PIPELINE -p … --store …` */
  runArgs: readonly string[];
  env: () => NodeJS.ProcessEnv;
  resume: (runId: string) => { code: number | null; stdout: string; stderr: string };
  topUp: () => Promise<void>;
}): Promise<KillPlanResult> {
  const { rng, store, marker, env } = options;
  const plan = chaosPlan(rng, options.named, options.random);
  const result: KillPlanResult = {
    runs: 0,
    tally: { resumed: 0, fresh: 0, hookOnly: 0, randomLanded: 0, randomMissed: 0 },
    killsAt: new Map(NAMED_POINTS.map((p) => [p, 0])),
    durations: [],
  };
  const { tally, killsAt, durations } = result;
  const describe = (label: string, o: WeftRunOutcome) =>
    `${label}: exit ${o.code ?? o.signal}${o.timedOut ? ' (timed out)' : ''}\n${o.stderr}`;
  const noOrphan = (label: string) =>
    expect(processesWith(marker), `orphan shell child after ${label}`).toEqual([]);

  while (plan.length > 0) {
    const point = plan.shift()!;
    const label = point ?? 'random';
    result.runs += 1;
    const known = await store.runCount();
    const outcome = await spawnWeftRun(
      point === null
        ? {
            args: options.runArgs,
            env: env(),
            killAfterStartMs: Math.floor(rng.next() * medianOf(durations)),
          }
        : { args: options.runArgs, env: env(), failpoint: point },
    );
    expect(outcome.timedOut, describe(label, outcome)).toBe(false);
    if (point !== null) {
      expect(outcome.signal, describe(label, outcome)).toBe('SIGKILL');
      killsAt.set(point, killsAt.get(point)! + 1);
    } else {
      expect(outcome.runId, describe(label, outcome)).not.toBeNull();
    }
    store.check?.();
    const created = (await store.runCount()) > known;
    // Every named kill leaves its run behind but the one before the run's COMMIT, which must not.
    if (point !== null) expect(created, `${point}: was the run created?`).toBe(point !== BEFORE_RUN_EXISTS);
    if (!created) {
      // Killed before its run was committed: nothing to resume, run it afresh. No kill interrupts
      // this run: its duration times the random kills (the plan starts here).
      const again = await spawnWeftRun({ args: options.runArgs, env: env() });
      expect(again.code, describe('fresh run', again)).toBe(0);
      durations.push(await store.runDurationMs(again.runId!));
      tally.fresh += 1;
      store.check?.();
      noOrphan(label);
      continue;
    }
    const latest = (await store.latestRun())!;
    const unfinished = (NOT_TERMINAL as readonly string[]).includes(latest.state);
    if (point === null) {
      if (unfinished) tally.randomLanded += 1;
      else {
        // The run finished before the kill: it tested nothing, draw another.
        tally.randomMissed += 1;
        expect(tally.randomMissed, 'random kills that missed the run').toBeLessThanOrEqual(options.maxMisses);
        await options.topUp();
        plan.push(null);
      }
    }
    if (unfinished || (latest.state === 'succeeded' && (await store.hasPendingHooks(latest.id)))) {
      const resumed = options.resume(latest.id);
      expect(resumed.code, `${label}: ${resumed.stderr}${resumed.stdout}`).toBe(0);
      if (unfinished) tally.resumed += 1;
      else tally.hookOnly += 1;
    } else {
      expect(latest.state, `${label} left run ${latest.id}`).toBe('succeeded');
    }
    store.check?.();
    // The killed run's marked child, if the kill left one: recovery must have stopped it.
    noOrphan(`${label} (run ${latest.id}, run ${result.runs} of the plan)`);
  }
  return result;
}

/**
 * Runs `run` (a `weft run … --format json` of the pipeline) until the consumer group has nothing
 * unread or pending: what the kills left behind (resumed fetches read fresh entries too). Asks
 * Redis first, so that a stream already drained costs no weft process.
 */
export async function drainStream(
  redis: Redis,
  stream: string,
  run: () => { code: number | null; stdout: string; stderr: string },
): Promise<number> {
  let runs = 0;
  while ((await groupBacklog(redis, stream, 'weft')) > 0) {
    expect(runs, 'drain runs').toBeLessThan(50);
    runs += 1;
    const drained = run();
    expect(drained.code, drained.stderr).toBe(0);
  }
  return runs;
}
