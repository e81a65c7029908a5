/**
 * Migration 4: the run limits of distributed execution (src/store/postgres/queue.ts). NEVER edit
 * once released (see 001-initial.ts).
 *
 *  - queue_runs.running: the run's leased tasks, kept exact by every transaction that leases or
 *    ends a lease under the run's queue_runs lock; max_running the pipeline's `concurrency` (null:
 *    no limit). A claim skips runs at their limit.
 *  - queue_runs.deadline_at: when the run's pipeline `timeout` ends the current run attempt (null:
 *    none); timed_out: the timeout was applied (its tasks cancelled, workers told on heartbeat).
 *  - queue_tasks_run_ready: a claim takes the oldest ready tasks of each run it may take from.
 */
export const migration004 = `
ALTER TABLE queue_runs
  ADD COLUMN running integer NOT NULL DEFAULT 0,
  ADD COLUMN max_running integer,
  ADD COLUMN deadline_at timestamptz,
  ADD COLUMN timed_out boolean NOT NULL DEFAULT false;

CREATE INDEX queue_tasks_run_ready ON queue_tasks (run_id, available_at, seq) WHERE state = 'ready';
CREATE INDEX queue_runs_deadline ON queue_runs (deadline_at) WHERE NOT timed_out AND deadline_at IS NOT NULL;
`;
