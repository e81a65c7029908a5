import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseDocument } from 'yaml';

const ROOT = resolve(import.meta.dirname, '..', '..');

/** The named failpoints of the reference pipeline's path (src/core/failpoint.ts lists them all). */
export const NAMED_POINTS = [
  'before-run-insert-commit',
  'after-run-insert',
  'after-task-running',
  'shell-child-started',
  'after-stream-read',
  'before-graph-commit',
  'after-graph-commit',
  'after-hook-recorded',
] as const;

/** The one named point whose kill leaves no run behind: the run's INSERT never committed. */
export const BEFORE_RUN_EXISTS: (typeof NAMED_POINTS)[number] = 'before-run-insert-commit';

/** The named failpoints of `weft worker` (the PostgreSQL queue): a claim, a completion's claim. */
export const WORKER_POINTS = ['after-claim', 'after-completion-claim'] as const;

/**
 * The reference pipeline plus what the crash windows need: a shell task (its child outlives a
 * killed weft unless recovery stops it: `CHAOS_SLEEP` makes the killed run's child long-lived and
 * recognisable), an on_success shell hook writing the run id to a file (hooks run at least once),
 * a short claim_idle (a resumed run reclaims what its killed predecessor read) and short retries.
 */
export function chaosPipeline(hooksLog: string): string {
  const doc = parseDocument(readFileSync(join(ROOT, 'pipelines', 'incremental-update.yaml'), 'utf8'));
  doc.setIn(['retry_delay'], '200ms');
  doc.setIn(['tasks', 'fetch_interactions', 'retry_delay'], '200ms');
  doc.setIn(['tasks', 'fetch_interactions', 'with', 'claim_idle'], '100ms');
  doc.setIn(['tasks', 'update_graph_incremental', 'retry_delay'], '200ms');
  doc.setIn(['tasks', 'mark'], {
    handler: 'shell',
    depends_on: 'update_graph_incremental',
    with: { command: 'sleep "${CHAOS_SLEEP:-0}"' },
  });
  doc.setIn(['on_success'], [{ handler: 'shell', with: { command: `echo \${{ run.id }} >> ${hooksLog}` } }]);
  return doc.toString();
}
