import { hostname } from 'node:os';
import { assertRunTransition } from '../core/states.js';
import type { ErrorInfo } from '../errors.js';
import type { AttemptRecord, RunRecord, RunStore } from '../store/run-store.js';
import { fromIso, toIso } from './time.js';

/** "host:pid" of this process: the owner the CLI records for runs it executes. */
export function localOwner(): string {
  return `${hostname()}:${process.pid}`;
}

function parseOwner(owner: string): { host: string; pid: number } | null {
  const at = owner.lastIndexOf(':');
  if (at <= 0) return null;
  const pid = Number(owner.slice(at + 1));
  return Number.isInteger(pid) && pid > 0 ? { host: owner.slice(0, at), pid } : null;
}

/** Whether `owner` names a process on this host. */
export function isLocalOwner(owner: string): boolean {
  return parseOwner(owner)?.host === hostname();
}

/**
 * Whether a "host:pid" owner is alive, as far as this host can tell: a process on this host is
 * asked with signal 0; an owner on another host cannot be asked, so it counts as alive (its
 * heartbeat decides, see markInterruptedRuns). An owner that is not "host:pid" counts as dead.
 */
export function isLocalOwnerAlive(owner: string): boolean {
  const parsed = parseOwner(owner);
  if (!parsed) return false;
  if (parsed.host !== hostname()) return true;
  try {
    process.kill(parsed.pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface MarkInterruptedOptions {
  isOwnerAlive?: (owner: string) => boolean;
  now: number;
  /** A run whose owner is on another host is interrupted when its heartbeat is older. Default 60 s. */
  staleHeartbeatMs?: number;
}

export const DEFAULT_STALE_HEARTBEAT_MS = 60_000;

/**
 * Runs left `running` or `retrying` (or `queued` with an owner: created, never started) by an
 * owner that is gone become `interrupted` (then `weft
 * resume` or `resume_interrupted` continues them). Fenced on the state and owner seen, so a run
 * that its owner finished meanwhile is left alone. Returns the runs it marked.
 */
export async function markInterruptedRuns(
  store: RunStore,
  options: MarkInterruptedOptions,
): Promise<RunRecord[]> {
  const isOwnerAlive = options.isOwnerAlive ?? isLocalOwnerAlive;
  const staleMs = options.staleHeartbeatMs ?? DEFAULT_STALE_HEARTBEAT_MS;
  const marked: RunRecord[] = [];
  const candidates: RunRecord[] = [];
  const page = 500;
  for (let offset = 0; ; offset += page) {
    const runs = await store.listRuns({ states: ['running', 'retrying', 'queued'], limit: page, offset });
    // A queued run without an owner waits for a worker; one with an owner was created by a process
    // that meant to execute it at once, and is stuck if that process died before it started it.
    candidates.push(...runs.filter((r) => r.state !== 'queued' || r.owner !== null));
    if (runs.length < page) break;
  }
  for (const run of candidates) {
    if (!isDead(run, isOwnerAlive, staleMs, options.now)) continue;
    assertRunTransition(run.id, run.state, 'interrupted');
    const ok = await store.updateRun(
      run.id,
      { state: 'interrupted' },
      { states: [run.state], owner: run.owner },
    );
    if (!ok) continue;
    await markOpenAttemptsLost(store, run, options.now);
    marked.push({ ...run, state: 'interrupted' });
  }
  return marked;
}

/** The error of an attempt whose process died before it could record how the attempt ended. */
export function lostAttemptError(worker: string | null): ErrorInfo {
  return {
    code: 'TASK_LOST',
    message: `the process running this attempt${worker ? ` (${worker})` : ''} died before the attempt ended; it was lost with its process`,
  };
}

/**
 * IMPORTANT: every started attempt reaches exactly one terminal state. An interrupted run's open
 * attempts end `lost` now, with a reason, rather than staying `running` (and blank) until someone
 * resumes the run. Their task runs stay as they are: resume moves them back to pending.
 */
async function markOpenAttemptsLost(store: RunStore, run: RunRecord, now: number): Promise<void> {
  const finishedAt = toIso(now);
  const taskRuns = await store.getTaskRuns(run.id);
  for (const taskRun of taskRuns) {
    if (taskRun.state !== 'running' && taskRun.state !== 'retrying') continue;
    for (const attempt of await store.getAttempts(run.id, taskRun.task)) {
      if (attempt.state !== 'running') continue;
      // Lost with its process: what the attempt started (a shell command's group) stops too.
      stopOrphanGroup(attempt);
      await store.updateAttempt(
        run.id,
        attempt.task,
        attempt.attempt,
        { state: 'lost', finishedAt, error: lostAttemptError(attempt.worker ?? run.owner) },
        { states: ['running'] },
      );
    }
  }
}

function isDead(
  run: RunRecord,
  isOwnerAlive: (owner: string) => boolean,
  staleMs: number,
  now: number,
): boolean {
  if (run.owner === null) return true;
  // Runs executed by workers belong to the task queue: its reaper recovers their lost tasks
  // through leases. Calling such a run interrupted would send `weft resume` around the queue.
  if (isQueueOwner(run.owner)) return false;
  if (!isOwnerAlive(run.owner)) return true;
  if (isLocalOwner(run.owner)) return false;
  const beat = run.heartbeatAt ?? run.startedAt ?? (run.state === 'queued' ? run.createdAt : null);
  return beat === null || now - fromIso(beat) > staleMs;
}

/**
 * A lost attempt's child process group (a shell command) may have outlived weft's process, and
 * would go on doing its work while the resumed run does it again. Stop it — only when the attempt
 * ran on this host, in a process that is gone (a live owner is still responsible for its own
 * children). Process group ids are reused only after the whole group has exited, so a group that
 * still exists is the one the attempt started or, rarely, a new one whose leader took the same id
 * after it; the window is small and the alternative is an orphan repeating side effects.
 */
export function stopOrphanGroup(attempt: Pick<AttemptRecord, 'pid' | 'worker'>): boolean {
  if (attempt.pid === null || attempt.pid <= 1 || attempt.worker === null) return false;
  if (!isLocalOwner(attempt.worker) || isLocalOwnerAlive(attempt.worker)) return false;
  try {
    process.kill(-attempt.pid, 'SIGKILL');
    return true;
  } catch {
    return false; // already gone
  }
}

/**
 * The owner the PostgreSQL task queue gives the runs it executes ("weft-queue:N", see
 * src/worker/queue-port.ts). Matched by prefix so the engine need not import the worker.
 */
export function isQueueOwner(owner: string | null): boolean {
  return owner !== null && owner.startsWith('weft-queue:');
}
