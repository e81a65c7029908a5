/**
 * Named failure points for the reliability suite: `WEFT_FAILPOINT=after-graph-commit weft run …`
 * makes the process die by SIGKILL exactly where `failpoint('after-graph-commit')` is called, so a
 * test can hit a crash window (say, between a COMMIT and the XACK after it) deterministically
 * instead of racing a `kill -9` against the clock.
 *
 * SIGKILL, not an exception or process.exit: no `finally`, no exit handler, no flush may run, just
 * as when the machine loses power. Unset (always, in production), a failpoint costs one property read.
 *
 * Names in use: `before-run-insert-commit` (the run store's write transaction has inserted a run,
 * COMMIT not yet sent: the SQLite store's write queue and the PostgreSQL store's write batch; the
 * run never exists), `after-run-insert` (createRun, once the store has the run),
 * `after-task-running` (a task marked running, its handler not yet called), `shell-child-started`
 * (the shell handler, after spawning), `after-stream-read` (organism.fetch_interactions, entries
 * read, not applied), `before-graph-commit`, `after-graph-commit`
 * (organism.update_graph_incremental), `after-hook-recorded` (a run's hooks recorded and its final
 * state written, hooks not yet run), `after-claim` (the PostgreSQL queue's claim() committed with at
 * least one task leased and its attempt started, no handler called yet), `after-completion-claim`
 * (the same for the next tasks a worker's completion transaction leased: results recorded, next
 * tasks' handlers not yet called).
 */
export function failpoint(name: string): void {
  if (process.env.WEFT_FAILPOINT === name) process.kill(process.pid, 'SIGKILL');
}
