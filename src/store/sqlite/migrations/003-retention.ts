/**
 * Migration 3: retention (`weft prune`, `weft serve --retain`; src/store/prune-sql.ts). NEVER edit
 * once released (see 001-initial.ts).
 *
 *  - runs_finished: finished runs by end time, so a prune batch reads the oldest few it may
 *    delete instead of every run.
 *  - fires_run: fires by the run they point to, so "does a kept fire point to this run" is a lookup.
 */
export const migration003 = `
CREATE INDEX runs_finished ON runs (finished_at) WHERE state IN ('succeeded', 'failed', 'cancelled');
CREATE INDEX fires_run ON fires (run_id) WHERE run_id IS NOT NULL;
`;
