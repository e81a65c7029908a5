/**
 * Migration 2: what the scheduler records. NEVER edit once released (see 001-initial.ts). Mirrors
 * the SQLite store's 002-schedule.
 *
 *  - fires: one row per schedule time of a pipeline that a scheduler handled. The primary key is
 *    the fire's identity: inserting it is how a scheduler takes a fire, so two schedulers sharing
 *    this database never both act on one. run_id has no foreign key: a queued fire names the run it
 *    will become before that run exists, and pruning runs must not need to touch fires.
 *  - run_requests: `weft trigger` asks a running scheduler for a run through the store; a
 *    scheduler claims pending ones atomically (FOR UPDATE SKIP LOCKED).
 */
export const migration002 = `
CREATE TABLE fires (
  pipeline text COLLATE "C" NOT NULL,
  scheduled_for timestamptz NOT NULL,
  outcome text NOT NULL,
  reason text,
  run_id text COLLATE "C",
  recorded_at timestamptz NOT NULL,
  PRIMARY KEY (pipeline, scheduled_for)
);
CREATE INDEX fires_scheduled ON fires (scheduled_for DESC, pipeline);

CREATE TABLE run_requests (
  id text COLLATE "C" PRIMARY KEY,
  pipeline text COLLATE "C" NOT NULL,
  params json NOT NULL,
  state text NOT NULL,
  requested_at timestamptz NOT NULL,
  claimed_by text,
  claimed_at timestamptz,
  run_id text COLLATE "C",
  error json,
  completed_at timestamptz
);
CREATE INDEX run_requests_pending ON run_requests (requested_at, id) WHERE state = 'pending';
`;
