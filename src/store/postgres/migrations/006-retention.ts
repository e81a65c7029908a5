/**
 * Migration 6: retention (`weft prune`, `weft serve --retain`; src/store/prune-sql.ts). NEVER edit
 * once released (see 001-initial.ts).
 *
 *  - runs_finished: finished runs by end time, so a prune batch reads the oldest few it may
 *    delete instead of every run.
 *  - runs_pipeline_succeeded, runs_pipeline_open: a pipeline's successes and its unfinished runs
 *    by creation, so "did a success follow this failed run" is a lookup.
 *  - hooks_pending: the few hooks not yet run, for "is a hook of a run after this one pending".
 *  - fires_run: fires by the run they point to, so "does a fire point to this run" is a lookup.
 */
export const migration006 = `
CREATE INDEX runs_finished ON runs (finished_at, id) WHERE state IN ('succeeded', 'failed', 'cancelled');
CREATE INDEX runs_pipeline_succeeded ON runs (pipeline, created_at, id) WHERE state = 'succeeded';
CREATE INDEX runs_pipeline_open ON runs (pipeline, created_at, id) WHERE state NOT IN ('succeeded', 'failed', 'cancelled');
CREATE INDEX hooks_pending ON hooks (run_id) WHERE state = 'pending';
CREATE INDEX fires_run ON fires (run_id) WHERE run_id IS NOT NULL;
`;
