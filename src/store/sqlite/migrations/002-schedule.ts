/**
 * Migration 2: what the scheduler records. NEVER edit once released (see 001-initial.ts).
 *
 *  - fires: one row per schedule time of a pipeline that a scheduler handled. The primary key is
 *    the fire's identity: inserting it is how a scheduler takes a fire, so two schedulers sharing
 *    this file never both act on one. run_id has no foreign key: a queued fire names the run it
 *    will become before that run exists, and pruning runs must not need to touch fires.
 *  - run_requests: `weft trigger` asks a running scheduler for a run through the store, so no
 *    second channel (socket, HTTP) is needed; a scheduler claims pending ones atomically.
 */
export const migration002 = `
CREATE TABLE fires (
  pipeline TEXT NOT NULL,
  scheduled_for TEXT NOT NULL,
  outcome TEXT NOT NULL,
  reason TEXT,
  run_id TEXT,
  recorded_at TEXT NOT NULL,
  PRIMARY KEY (pipeline, scheduled_for)
) STRICT;
CREATE INDEX fires_scheduled ON fires (scheduled_for DESC, pipeline);

CREATE TABLE run_requests (
  id TEXT PRIMARY KEY,
  pipeline TEXT NOT NULL,
  params TEXT NOT NULL,
  state TEXT NOT NULL,
  requested_at TEXT NOT NULL,
  claimed_by TEXT,
  claimed_at TEXT,
  run_id TEXT,
  error TEXT,
  completed_at TEXT
) STRICT;
CREATE INDEX run_requests_pending ON run_requests (state, requested_at, id);
`;
