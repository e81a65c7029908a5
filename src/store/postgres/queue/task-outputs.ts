import type { JsonValue } from '../../../core/json.js';
import type { TaskState } from '../../../core/states.js';
import type { UpstreamRow } from '../../../worker/queue-port.js';
import { parseJsonColumn } from '../../json-codec.js';
import type { QueueConnection } from './connection.js';

const TASK_OUTPUTS_SQL = `SELECT task, state, output FROM task_runs WHERE run_id = $1 AND task = ANY ($2::text[])`;

/** The state and output of some tasks of a run (the upstream results a handler reads). */
export async function taskOutputs(
  conn: QueueConnection,
  runId: string,
  tasks: readonly string[],
): Promise<UpstreamRow[]> {
  if (tasks.length === 0) return [];
  const rows = await conn.query<{ task: string; state: string; output: string | null }>(TASK_OUTPUTS_SQL, [
    runId,
    tasks,
  ]);
  return rows.map((r) => ({
    task: r.task,
    state: r.state as TaskState,
    output: parseJsonColumn<JsonValue>(r.output),
  }));
}
