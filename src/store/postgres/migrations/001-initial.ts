/**
 * Migration 1: the first PostgreSQL schema. NEVER edit this file once released: a change is a new
 * numbered migration (002-…), because databases already at version 1 will not run this one again.
 *
 * It mirrors the SQLite schema (src/store/sqlite/migrations/001-initial.ts), with these choices:
 *  - JSON columns are `json`, not `jsonb`: jsonb reorders object keys (shortest first) and drops
 *    duplicates, and the port returns params, plans and outputs with their keys in the order they
 *    were written, as every other adapter does. `json` also keeps a `\u0000` escape, which jsonb
 *    refuses.
 *  - Times are `timestamptz` (microseconds, so the port's millisecond ISO strings round-trip exactly);
 *    the adapter turns them back into ISO strings.
 *  - Ids, task names and keys are `COLLATE "C"`: sorting by them is byte order, the order the other
 *    adapters use, whatever the database's default collation.
 *  - Log messages are `bytea`: `text` cannot hold NUL, which a child process may well print.
 *  - Plans are stored once per distinct plan, keyed by the sha256 of their JSON.
 */
export const migration001 = `
CREATE TABLE plans (
  hash text COLLATE "C" PRIMARY KEY,
  plan json NOT NULL
);

CREATE TABLE runs (
  id text COLLATE "C" PRIMARY KEY,
  pipeline text COLLATE "C" NOT NULL,
  state text NOT NULL,
  params json NOT NULL,
  plan_hash text COLLATE "C" NOT NULL REFERENCES plans (hash),
  trigger text NOT NULL,
  scheduled_for timestamptz,
  attempt integer NOT NULL DEFAULT 1,
  owner text,
  heartbeat_at timestamptz,
  created_at timestamptz NOT NULL,
  started_at timestamptz,
  finished_at timestamptz,
  next_attempt_at timestamptz,
  error json,
  cancel_requested boolean NOT NULL DEFAULT false
);

-- One run per schedule time and pipeline: a scheduler restarted twice cannot fire a slot twice.
CREATE UNIQUE INDEX runs_schedule_unique ON runs (pipeline, scheduled_for) WHERE scheduled_for IS NOT NULL;
CREATE INDEX runs_created ON runs (created_at DESC, id DESC);
CREATE INDEX runs_pipeline_created ON runs (pipeline, created_at DESC, id DESC);
CREATE INDEX runs_state_created ON runs (state, created_at DESC, id DESC);

CREATE TABLE task_runs (
  run_id text COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  task text COLLATE "C" NOT NULL,
  ordinal integer NOT NULL,
  state text NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  output json,
  error json,
  reason text,
  started_at timestamptz,
  finished_at timestamptz,
  next_attempt_at timestamptz,
  PRIMARY KEY (run_id, task)
);

CREATE TABLE attempts (
  run_id text COLLATE "C" NOT NULL,
  task text COLLATE "C" NOT NULL,
  attempt integer NOT NULL,
  state text NOT NULL,
  delay_ms bigint NOT NULL,
  started_at timestamptz NOT NULL,
  finished_at timestamptz,
  error json,
  worker text,
  pid integer,
  PRIMARY KEY (run_id, task, attempt),
  FOREIGN KEY (run_id, task) REFERENCES task_runs (run_id, task) ON DELETE CASCADE
);

-- A sequence never hands out a number twice, so a follower asking for "after seq N" never misses
-- a line that reused an old number (the adapter also commits log lines in seq order; see there).
CREATE TABLE logs (
  seq bigserial PRIMARY KEY,
  run_id text COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  task text COLLATE "C",
  attempt integer,
  ts timestamptz NOT NULL,
  level text NOT NULL,
  message bytea NOT NULL
);
CREATE INDEX logs_run_seq ON logs (run_id, seq);

CREATE TABLE hooks (
  run_id text COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  key text COLLATE "C" NOT NULL,
  event text NOT NULL,
  task text COLLATE "C",
  handler text NOT NULL,
  state text NOT NULL,
  error json,
  created_at timestamptz NOT NULL,
  finished_at timestamptz,
  PRIMARY KEY (run_id, key)
);
`;
