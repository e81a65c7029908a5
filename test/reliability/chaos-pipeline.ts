import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { Rng } from './tier.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const WEFT_BIN = join(ROOT, 'bin', 'weft.js');

/** The named failpoints of the reference pipeline's path (src/core/failpoint.ts lists them all). */
export const NAMED_POINTS = [
  'before-run-insert-commit',
  'after-run-insert',
  'after-task-running',
  'shell-child-started',
  'after-stream-read',
  'before-graph-commit',
  'after-graph-commit',
  'after-hook-recorded',
] as const;

/** The one named point whose kill leaves no run behind: the run's INSERT never committed. */
export const BEFORE_RUN_EXISTS: (typeof NAMED_POINTS)[number] = 'before-run-insert-commit';

/** The named failpoints of `weft worker` (the PostgreSQL queue): a claim, a completion's claim. */
export const WORKER_POINTS = ['after-claim', 'after-completion-claim'] as const;

/** How long the marked shell child lives in a run whose weft stays alive. */
const MARK_MS = 200;

/**
 * The reference pipeline plus what the crash windows need: a shell task `mark` whose child carries
 * a marker (below), an on_success shell hook writing the run id to a file (hooks run at least
 * once), a short claim_idle (a resumed run reclaims what its killed predecessor read) and short
 * retries.
 *
 * `mark` starts `sleep $CHAOS_SLEEP` (a long, unique duration: the marker the orphan check looks
 * for in the process table) and stops it after MARK_MS — but only while its weft is alive. So every
 * run holds a marked child for a moment, a kill at any moment can land inside it, and a child whose
 * weft was killed lives on, as a real long command would, until recovery stops its process group;
 * one left alive is an orphan the test can see.
 */
export function chaosPipeline(hooksLog: string): string {
  const doc = parseDocument(readFileSync(join(ROOT, 'pipelines', 'incremental-update.yaml'), 'utf8'));
  doc.setIn(['retry_delay'], '200ms');
  doc.setIn(['tasks', 'fetch_interactions', 'retry_delay'], '200ms');
  doc.setIn(['tasks', 'fetch_interactions', 'with', 'claim_idle'], '100ms');
  doc.setIn(['tasks', 'update_graph_incremental', 'retry_delay'], '200ms');
  doc.setIn(['tasks', 'mark'], {
    handler: 'shell',
    depends_on: 'update_graph_incremental',
    with: {
      command:
        `sleep "\${CHAOS_SLEEP:-0}" & s=$!; sleep ${MARK_MS / 1000}; ` +
        `if kill -0 "$PPID" 2>/dev/null; then kill "$s"; wait "$s"; fi; exit 0`,
    },
  });
  doc.setIn(['on_success'], [{ handler: 'shell', with: { command: `echo \${{ run.id }} >> ${hooksLog}` } }]);
  return doc.toString();
}

/**
 * A unique `sleep` duration for the marked child: long (well past any test) so that an orphan is
 * still there to be found, and with random decimals so that no other process matches it.
 */
export function chaosMarker(rng: Rng): string {
  return `${3000 + rng.int(600)}.${String(100_000 + rng.int(900_000))}`;
}

export interface WeftRunOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  /** From the progress line weft prints when the run starts; null when it never got there. */
  runId: string | null;
  /** When the run-started line arrived (ms since the epoch), null when it never did. */
  startedAt: number | null;
  /** Killed by the guard after `timeoutMs`: hung, not killed by the test's plan. */
  timedOut: boolean;
}

/**
 * A `weft run` in text mode (not a TTY: one progress line per event on stdout, the run-started
 * line first) that is SIGKILLed by its own failpoint when `failpoint` is set, or by the test
 * `killAfterStartMs` after that line — a random kill timed from the run's start, not the spawn,
 * so that CLI start-up cannot swallow it. Neither set: a plain run.
 */
export function spawnWeftRun(options: {
  args: readonly string[];
  env: NodeJS.ProcessEnv;
  failpoint?: string;
  killAfterStartMs?: number;
  timeoutMs?: number;
}): Promise<WeftRunOutcome> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [WEFT_BIN, ...options.args], {
      cwd: ROOT,
      env: { ...options.env, WEFT_FAILPOINT: options.failpoint ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let runId: string | null = null;
    let startedAt: number | null = null;
    let killTimer: NodeJS.Timeout | undefined;
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      if (runId !== null) return;
      stdout += chunk.toString();
      const started = / run (\S+) of .* started: /.exec(stdout);
      if (started === null) return;
      runId = started[1]!;
      startedAt = Date.now();
      stdout = '';
      if (options.killAfterStartMs !== undefined)
        killTimer = setTimeout(() => child.kill('SIGKILL'), options.killAfterStartMs);
    });
    // A hung run (or a failpoint never reached) fails the test rather than the whole file.
    let timedOut = false;
    const guard = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 120_000);
    // 'close', not 'exit': the run-started line must have been read.
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      clearTimeout(killTimer);
      done({ code, signal, stderr, runId, startedAt, timedOut });
    });
  });
}
