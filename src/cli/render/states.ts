import type { AttemptState, RunState, TaskState } from '../../core/states.js';
import type { Colors } from '../io.js';

/** One colour and symbol per state, used by every command that shows runs. */
export function paintState(state: TaskState | RunState | AttemptState, c: Colors): string {
  switch (state) {
    case 'succeeded':
      return c.green(`✔ ${state}`);
    case 'failed':
    case 'timed_out':
      return c.red(`✖ ${state}`);
    case 'running':
      return c.blue(`▶ ${state}`);
    case 'retrying':
      return c.yellow(`↻ ${state}`);
    case 'skipped':
      return c.dim(`↓ ${state}`);
    case 'cancelled':
    case 'lost':
      return c.magenta(`■ ${state}`);
    case 'interrupted':
      return c.magenta(`⚡ ${state}`);
    case 'pending':
    case 'queued':
      return c.dim(`· ${state}`);
  }
}

export function durationBetween(start: string | null, end: string | null, now = Date.now()): number | null {
  if (!start) return null;
  return (end ? Date.parse(end) : now) - Date.parse(start);
}
