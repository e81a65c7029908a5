import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { onLines } from '../support/lines.js';

/**
 * Real `weft serve` (and `weft worker`) processes for the scheduler reliability test: spawned from
 * the built CLI with a shared WEFT_TEST_CLOCK, their JSON log read line by line, killed by SIGKILL
 * or stopped by SIGTERM.
 */

const ROOT = resolve(import.meta.dirname, '..', '..');
const WEFT_BIN = join(ROOT, 'bin', 'weft.js');

/** Why the built CLI cannot run this test (no dist/, or a dist/ older than WEFT_TEST_CLOCK), or null. */
export function distProblem(): string | null {
  const serve = join(ROOT, 'dist', 'cli', 'commands', 'serve.js');
  if (!existsSync(serve)) return 'run `npm run build` first (no dist/)';
  if (!readFileSync(serve, 'utf8').includes('TEST_CLOCK_ENV'))
    return 'dist/ is stale (its weft serve has no WEFT_TEST_CLOCK): run `npm run build`';
  return null;
}

/** A WEFT_TEST_CLOCK value: `sim` shown at real time `real` (and until then), `speed` times faster after. */
export function testClockValue(sim: number, real: number, speed: number): string {
  return `${new Date(sim).toISOString()}@${Math.round(real)}x${speed}`;
}

interface LogLine {
  ts: string;
  event: string;
  [key: string]: unknown;
}

/** A `scheduler:late` line, times in epoch ms on the process's clock. */
export interface LateLoop {
  /** When it came to the fire (the line's time). */
  at: number;
  dueAt: number;
  cause: 'overslept' | 'busy';
}

export interface WeftProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** Resolves with the `scheduler:started` (or `worker:started`) line; rejects if the process exits first. */
  readonly started: Promise<LogLine>;
  readonly exited: Promise<number | null>;
  /** Lines that tell of a problem: `scheduler:error` events and anything unparseable on stderr. */
  readonly problems: string[];
  /**
   * Each scheduled pipeline's next fire as the scheduler's start logged it (complete once
   * `started` resolved): after its downtime decisions, the first fire it would handle by waking.
   */
  readonly nextAtStart: Map<string, number>;
  /** Ids of the runs this scheduler created or resumed after an interruption: it ran them. */
  readonly executed: Set<string>;
  /** `pipeline@scheduledFor` (epoch ms) of fires it found taken by another scheduler, and when. */
  readonly taken: Map<string, number>;
  /** `pipeline@scheduledFor` (epoch ms) of the fires it recorded missed or queued (it decided them). */
  readonly decided: Set<string>;
  /** Its `scheduler:late` lines: when its tick loop came to a due fire past the late grace. */
  readonly late: LateLoop[];
  /** Real milliseconds from spawn to `scheduler:started` (once started). */
  readonly startupMs: number;
  /** How many times each event was logged. */
  readonly counts: Map<string, number>;
  stderr(): string;
  /** SIGKILL (no cleanup of any kind) or SIGTERM (graceful stop); resolves with the exit code. */
  stop(signal: 'SIGKILL' | 'SIGTERM'): Promise<number | null>;
}

/** Lines on stderr that are expected: the graceful stop's notice, and the queue's worker notices. */
const QUIET_STDERR = [/^SIG(TERM|INT): stopping/, /no weft worker is running/];

function spawnWeft(name: string, args: string[], cwd: string, env: Record<string, string>): WeftProcess {
  const child = spawn(process.execPath, [WEFT_BIN, ...args], {
    cwd,
    env: { ...process.env, NO_COLOR: '1', WEFT_FAILPOINT: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const problems: string[] = [];
  const counts = new Map<string, number>();
  let stderrText = '';
  let resolveStarted: (line: LogLine) => void = () => undefined;
  let rejectStarted: (error: Error) => void = () => undefined;
  const started = new Promise<LogLine>((res, rej) => {
    resolveStarted = res;
    rejectStarted = rej;
  });
  // A rejection nobody awaits (a killed process that had started) must not fail the run.
  started.catch(() => undefined);
  const nextAtStart = new Map<string, number>();
  const executed = new Set<string>();
  const taken = new Map<string, number>();
  const late: LateLoop[] = [];
  const decided = new Set<string>();
  const spawnedAt = Date.now();
  let startupMs = Number.NaN;
  let isStarted = false;
  // 'close', not 'exit': the last lines it wrote (a `scheduler:late`, a fire it decided just before
  // it was stopped) are read before anyone looks at what it said.
  const exited = new Promise<number | null>((res) => {
    child.on('close', (code, signal) => {
      rejectStarted(new Error(`${name} exited (${code ?? signal}) before it started:\n${stderrText}`));
      res(code);
    });
  });
  const onLine = (line: string, isStderr: boolean) => {
    if (line.trim() === '') return;
    let parsed: LogLine | null = null;
    try {
      // The scheduler's lines name their event `event`, the worker's `type`.
      const value = JSON.parse(line) as Partial<LogLine> & { type?: string };
      const event = value.event ?? value.type;
      if (typeof event === 'string') parsed = { ...value, ts: String(value.ts), event };
    } catch {
      // not a JSON log line
    }
    if (!parsed) {
      if (isStderr && !QUIET_STDERR.some((re) => re.test(line))) problems.push(`${name}: ${line}`);
      return;
    }
    counts.set(parsed.event, (counts.get(parsed.event) ?? 0) + 1);
    if (parsed.event === 'run:created' || (parsed.event === 'run:interrupted' && parsed.resuming === true))
      executed.add(String(parsed.runId));
    if (parsed.event === 'fire:taken')
      taken.set(
        `${String(parsed.pipeline)}@${Date.parse(String(parsed.scheduledFor))}`,
        Date.parse(parsed.ts),
      );
    if (parsed.event === 'fire:missed' || parsed.event === 'fire:queued')
      decided.add(`${String(parsed.pipeline)}@${Date.parse(String(parsed.scheduledFor))}`);
    if (parsed.event === 'scheduler:late')
      late.push({
        at: Date.parse(parsed.ts),
        dueAt: Date.parse(String(parsed.dueAt)),
        cause: parsed.cause === 'overslept' ? 'overslept' : 'busy',
      });
    if (parsed.event === 'pipeline:scheduled' && !isStarted && typeof parsed.nextAt === 'string')
      nextAtStart.set(String(parsed.pipeline), Date.parse(parsed.nextAt));
    if (parsed.event === 'scheduler:started' || parsed.event === 'worker:started') {
      isStarted = true;
      startupMs = Date.now() - spawnedAt;
      resolveStarted(parsed);
    }
    if (parsed.event === 'scheduler:error' || parsed.event === 'worker:error')
      problems.push(`${name}: ${line}`);
  };
  for (const [stream, isStderr] of [
    [child.stdout, false],
    [child.stderr, true],
  ] as const) {
    onLines(stream, (line) => {
      if (isStderr && stderrText.length < 20_000) stderrText += `${line}\n`;
      onLine(line, isStderr);
    });
  }
  return {
    name,
    child,
    started,
    nextAtStart,
    executed,
    taken,
    decided,
    late,
    get startupMs() {
      return startupMs;
    },
    exited,
    problems,
    counts,
    stderr: () => stderrText,
    stop: (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** `weft serve --no-http` on `pipelines`, its store and clock given by the environment. */
export function spawnServe(
  name: string,
  options: { cwd: string; pipelines: string; store: string; clock: string },
): WeftProcess {
  return spawnWeft(
    name,
    ['serve', '--no-http', '--log-format', 'json', '--grace', '10s', options.pipelines],
    options.cwd,
    { WEFT_STORE: options.store, WEFT_TEST_CLOCK: options.clock },
  );
}

/** `weft worker` on a PostgreSQL store (real time: its leases measure real liveness). */
export function spawnWorker(name: string, options: { cwd: string; store: string }): WeftProcess {
  return spawnWeft(name, ['worker', '--log-format', 'json', '--concurrency', '8'], options.cwd, {
    WEFT_STORE: options.store,
  });
}
