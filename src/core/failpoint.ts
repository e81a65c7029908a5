/**
 * Named failure points for the reliability suite: `WEFT_FAILPOINT=after-graph-commit weft run …`
 * makes the process die by SIGKILL exactly where `failpoint('after-graph-commit')` is called, so a
 * test can hit a crash window (say, between a COMMIT and the XACK after it) deterministically
 * instead of racing a `kill -9` against the clock.
 *
 * SIGKILL, not an exception or process.exit: no `finally`, no exit handler, no flush may run, just
 * as when the machine loses power. Unset (always, in production), a failpoint costs one property read.
 *
 * Names in use: `before-graph-commit`, `after-graph-commit` (organism.update_graph_incremental).
 */
export function failpoint(name: string): void {
  if (process.env.WEFT_FAILPOINT === name) process.kill(process.pid, 'SIGKILL');
}
