/**
 * 001: the Causal Organism platform schema. A migration is never edited once released: a change is
 * a new numbered file.
 */
export const name = 'organism-schema';

export const sql = `
CREATE TABLE people (
  id          text PRIMARY KEY,
  first_seen  timestamptz NOT NULL,
  last_seen   timestamptz NOT NULL
);

-- One row per directed (source, target, kind): the graph the analysis is rebuilt from.
CREATE TABLE interaction_edges (
  source      text NOT NULL,
  target      text NOT NULL,
  kind        text NOT NULL,
  count       bigint NOT NULL,
  weight_sum  double precision NOT NULL,
  first_seen  timestamptz NOT NULL,
  last_seen   timestamptz NOT NULL,
  PRIMARY KEY (source, target, kind)
);
CREATE INDEX interaction_edges_target ON interaction_edges (target);

-- Per-person daily activity (UTC days), split by direction so "activity" can be defined either way.
CREATE TABLE interactions_daily (
  person      text NOT NULL,
  day         date NOT NULL,
  kind        text NOT NULL,
  count_out   bigint NOT NULL DEFAULT 0,
  count_in    bigint NOT NULL DEFAULT 0,
  weight_out  double precision NOT NULL DEFAULT 0,
  weight_in   double precision NOT NULL DEFAULT 0,
  PRIMARY KEY (person, day, kind)
);
CREATE INDEX interactions_daily_day ON interactions_daily (day);

-- Exactly-once ledger: one row per applied stream entry (see docs/organism-metrics.md, "Exactly once").
CREATE TABLE applied_stream_entries (
  stream      text NOT NULL,
  entry_id    text NOT NULL,
  applied_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (stream, entry_id)
);
CREATE INDEX applied_stream_entries_applied_at ON applied_stream_entries (applied_at);

CREATE TABLE organism_metrics (
  time               timestamptz NOT NULL,
  subject            text NOT NULL,
  metric             text NOT NULL,
  value              double precision NOT NULL,
  run_scheduled_for  timestamptz,
  run_id             text
);
CREATE INDEX organism_metrics_time ON organism_metrics (time DESC);
CREATE INDEX organism_metrics_subject ON organism_metrics (subject, metric, time DESC);

-- Staging between run_causal_analysis and store_metrics: the metric list of 5,000 people is too
-- big to travel through the run store as a task output, so it travels through here, keyed by run.
CREATE TABLE organism_analysis_runs (
  analysis_id   text PRIMARY KEY,
  computed_at   timestamptz NOT NULL,
  window_end    date NOT NULL,
  people        integer NOT NULL,
  pairs         integer NOT NULL,
  metric_rows   integer NOT NULL,
  options       jsonb NOT NULL
);
CREATE TABLE organism_analysis_metrics (
  analysis_id  text NOT NULL REFERENCES organism_analysis_runs (analysis_id) ON DELETE CASCADE,
  subject      text NOT NULL,
  metric       text NOT NULL,
  value        double precision NOT NULL,
  PRIMARY KEY (analysis_id, subject, metric)
);

CREATE TABLE interventions (
  id          bigserial PRIMARY KEY,
  subject     text NOT NULL,
  kind        text NOT NULL,
  reason      text NOT NULL,
  score       double precision,
  details     jsonb,
  status      text NOT NULL DEFAULT 'proposed',
  created_at  timestamptz NOT NULL DEFAULT now()
);
-- At most one open proposal per (subject, kind): evaluate_interventions relies on it (ON CONFLICT).
CREATE UNIQUE INDEX interventions_open ON interventions (subject, kind) WHERE status = 'proposed';

-- The UNIQUE indexes are what allow REFRESH MATERIALIZED VIEW CONCURRENTLY.
CREATE MATERIALIZED VIEW organism_person_daily_activity AS
  SELECT person,
         day,
         sum(count_out + count_in)::bigint AS interactions,
         sum(count_out)::bigint AS sent,
         sum(count_in)::bigint AS received,
         sum(weight_out + weight_in) AS weight
    FROM interactions_daily
   GROUP BY person, day;
CREATE UNIQUE INDEX organism_person_daily_activity_key ON organism_person_daily_activity (person, day);
CREATE INDEX organism_person_daily_activity_day ON organism_person_daily_activity (day);

CREATE MATERIALIZED VIEW organism_pair_strength AS
  SELECT source,
         target,
         sum(count)::bigint AS interactions,
         sum(weight_sum) AS weight,
         min(first_seen) AS first_seen,
         max(last_seen) AS last_seen
    FROM interaction_edges
   GROUP BY source, target;
CREATE UNIQUE INDEX organism_pair_strength_key ON organism_pair_strength (source, target);
`;

/** Run only when the timescaledb extension is available on the server. */
export const timescaleSql = `
CREATE EXTENSION IF NOT EXISTS timescaledb;
SELECT create_hypertable('organism_metrics', 'time', if_not_exists => TRUE, migrate_data => TRUE);
`;
