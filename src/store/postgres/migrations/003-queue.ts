/**
 * Migration 3: distributed execution (src/worker/, src/store/postgres/queue.ts). NEVER edit once
 * released (see 001-initial.ts).
 *
 *  - queue_runs: runs the queue executes, one row each, holding the run's coordination states
 *    (one character per task in plan order, see src/worker/advance.ts). Locking this row is how
 *    the results of one run are serialised across workers; its task runs stay the record.
 *  - queue_tasks: a task in the queue from the moment it is ready until it finishes: `ready`
 *    (claimable at available_at) or `leased` (a worker runs it until lease_expires_at, renewed by
 *    heartbeat). lease_id is the fencing token; base counts the attempts that do not count as
 *    retries (started before, or lost); lost counts lost attempts (capped).
 *  - queue_hooks: pending hook records waiting for a worker (at least once, leased the same way).
 *  - queue_workers: workers with their queues and a heartbeat, for "tasks ready, no live worker".
 *
 * No foreign keys to the store's tables: rows are only ever written for runs, task runs and hooks
 * that exist (the statements join them), the queue deletes its rows when it lets go of a run, and
 * the store's tables stay truncatable on their own. Whatever deletes runs must delete these too.
 */
export const migration003 = `
CREATE TABLE queue_runs (
  run_id text COLLATE "C" PRIMARY KEY,
  states text NOT NULL,
  first_attempt integer NOT NULL,
  cancel_seen boolean NOT NULL DEFAULT false
);

CREATE SEQUENCE queue_lease_seq;

CREATE TABLE queue_tasks (
  run_id text COLLATE "C" NOT NULL,
  task text COLLATE "C" NOT NULL,
  queue text NOT NULL,
  state text NOT NULL,
  available_at timestamptz NOT NULL,
  seq bigserial NOT NULL,
  has_when boolean NOT NULL DEFAULT false,
  delay_ms bigint NOT NULL DEFAULT 0,
  base integer NOT NULL DEFAULT 0,
  lost integer NOT NULL DEFAULT 0,
  attempt integer,
  lease_id bigint,
  lease_owner text,
  lease_expires_at timestamptz,
  PRIMARY KEY (run_id, task)
);
CREATE INDEX queue_tasks_ready ON queue_tasks (queue, available_at, seq) WHERE state = 'ready';
CREATE INDEX queue_tasks_leases ON queue_tasks (lease_expires_at) WHERE state = 'leased';
CREATE INDEX queue_tasks_owner ON queue_tasks (lease_owner) WHERE state = 'leased';

CREATE TABLE queue_hooks (
  run_id text COLLATE "C" NOT NULL,
  key text COLLATE "C" NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  lease_owner text,
  lease_expires_at timestamptz,
  PRIMARY KEY (run_id, key)
);

CREATE TABLE queue_workers (
  id text COLLATE "C" PRIMARY KEY,
  queues text[] NOT NULL,
  concurrency integer NOT NULL,
  host text NOT NULL,
  pid integer NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now()
);
`;
