/**
 * Migration 1: the first schema. NEVER edit this file once released: a change is a new numbered
 * migration (002-…), because stores already at version 1 will not run this one again.
 *
 * Notes on the shape:
 *  - Plans are stored once per distinct plan (keyed by the sha256 of their JSON): a 10,000-task
 *    plan is megabytes, and every run of an unchanged pipeline shares it.
 *  - Times are ISO 8601 UTC text, which sorts like the times it stands for.
 *  - JSON columns hold JSON text; NULL stands for "none".
 *  - Child rows reference their run (ON DELETE CASCADE, for a future `weft prune`); every child
 *    table's primary key starts with run_id, which is the index the cascade needs.
 */
export const migration001 = `
CREATE TABLE plans (
  hash TEXT PRIMARY KEY,
  plan TEXT NOT NULL
) STRICT;

CREATE TABLE runs (
  id TEXT PRIMARY KEY,
  pipeline TEXT NOT NULL,
  state TEXT NOT NULL,
  params TEXT NOT NULL,
  plan_hash TEXT NOT NULL REFERENCES plans (hash),
  trigger TEXT NOT NULL,
  scheduled_for TEXT,
  attempt INTEGER NOT NULL DEFAULT 1,
  owner TEXT,
  heartbeat_at TEXT,
  created_at TEXT NOT NULL,
  started_at TEXT,
  finished_at TEXT,
  next_attempt_at TEXT,
  error TEXT,
  cancel_requested INTEGER NOT NULL DEFAULT 0
) STRICT;

-- One run per schedule time and pipeline: a scheduler restarted twice cannot fire a slot twice.
CREATE UNIQUE INDEX runs_schedule_unique ON runs (pipeline, scheduled_for) WHERE scheduled_for IS NOT NULL;
CREATE INDEX runs_created ON runs (created_at DESC, id DESC);
CREATE INDEX runs_pipeline_created ON runs (pipeline, created_at DESC, id DESC);
CREATE INDEX runs_state_created ON runs (state, created_at DESC, id DESC);

CREATE TABLE task_runs (
  run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  task TEXT NOT NULL,
  ordinal INTEGER NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  output TEXT,
  error TEXT,
  reason TEXT,
  started_at TEXT,
  finished_at TEXT,
  next_attempt_at TEXT,
  PRIMARY KEY (run_id, task)
) STRICT;

CREATE TABLE attempts (
  run_id TEXT NOT NULL,
  task TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  state TEXT NOT NULL,
  delay_ms INTEGER NOT NULL,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  error TEXT,
  worker TEXT,
  pid INTEGER,
  PRIMARY KEY (run_id, task, attempt),
  FOREIGN KEY (run_id, task) REFERENCES task_runs (run_id, task) ON DELETE CASCADE
) STRICT;

-- AUTOINCREMENT: a seq is never reused, even after the newest lines are deleted, so a follower
-- asking for "after seq N" can never miss a line that reused an old number.
CREATE TABLE logs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  task TEXT,
  attempt INTEGER,
  ts TEXT NOT NULL,
  level TEXT NOT NULL,
  message TEXT NOT NULL
) STRICT;
CREATE INDEX logs_run_seq ON logs (run_id, seq);

CREATE TABLE hooks (
  run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  event TEXT NOT NULL,
  task TEXT,
  handler TEXT NOT NULL,
  state TEXT NOT NULL,
  error TEXT,
  created_at TEXT NOT NULL,
  finished_at TEXT,
  PRIMARY KEY (run_id, key)
) STRICT;
`;
