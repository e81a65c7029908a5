import { assertRunTransition, assertTaskTransition, isRunFinished } from '../core/states.js';
import { WeftError } from '../errors.js';
import type { RunRecord, RunStore } from '../store/run-store.js';
import { toIso } from './time.js';

/**
 * Asks for a run to be cancelled. A run being executed gets `cancelRequested` and its owner, which
 * polls for it, cancels it. A run nobody executes (queued or interrupted) is cancelled here and
 * now. A finished run is returned unchanged.
 */
export async function requestCancel(
  store: RunStore,
  runId: string,
  options: { now?: number } = {},
): Promise<RunRecord> {
  const run = await store.getRun(runId);
  if (!run) throw new WeftError('RUN_NOT_FOUND', `no run with id ${runId}`, { retryable: false });
  if (isRunFinished(run.state)) return run;
  if (run.state === 'running' || run.state === 'retrying') {
    await store.updateRun(runId, { cancelRequested: true }, { states: [run.state] });
    return (await store.getRun(runId))!;
  }
  const now = toIso(options.now ?? Date.now());
  // The run first, fenced on the state seen: once it is cancelled nobody can claim it, so its
  // task runs can be closed without racing an executor.
  assertRunTransition(runId, run.state, 'cancelled');
  const ok = await store.updateRun(
    runId,
    { state: 'cancelled', cancelRequested: true, finishedAt: now, nextAttemptAt: null },
    { states: [run.state] },
  );
  if (!ok) return requestCancel(store, runId, options);
  for (const task of await store.getTaskRuns(runId)) {
    if (task.state !== 'pending' && task.state !== 'retrying' && task.state !== 'running') continue;
    assertTaskTransition(task.task, task.state, 'cancelled');
    if (task.state === 'running') {
      for (const attempt of await store.getAttempts(runId, task.task)) {
        if (attempt.state !== 'running') continue;
        await store.updateAttempt(
          runId,
          task.task,
          attempt.attempt,
          {
            state: 'lost',
            finishedAt: now,
            error: { code: 'TASK_LOST', message: 'the run was cancelled while nobody executed it' },
          },
          { states: ['running'] },
        );
      }
    }
    await store.updateTaskRun(
      runId,
      task.task,
      { state: 'cancelled', reason: 'run cancelled', finishedAt: now, nextAttemptAt: null },
      { states: [task.state] },
    );
  }
  return (await store.getRun(runId))!;
}
