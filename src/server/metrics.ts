import type { RunRecord, RunStore, TaskRunRecord } from '../store/run-store.js';

/**
 * Prometheus metrics (text exposition format 0.0.4) computed from the store with bounded
 * queries, so it works the same on every adapter: the most recent `window` runs (newest first),
 * their task runs, and the task runs of the runs in progress. Counts are therefore over that
 * window, not since the beginning of time (see docs/api.md); they are exposed as gauges.
 */

export const TASK_DURATION_BUCKETS = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600] as const;
export const SCHEDULE_LAG_BUCKETS = [0.1, 0.5, 1, 5, 15, 60, 300] as const;

export interface MetricsSnapshot {
  runs: Map<string, number>;
  taskRuns: Map<string, number>;
  taskDurations: number[];
  retries: Map<string, number>;
  scheduleLags: number[];
  queueDepth: Map<string, number>;
  window: number;
  runsSeen: number;
}

const KEY_SEP = '\u0000';

function bump(map: Map<string, number>, key: string, by = 1): void {
  map.set(key, (map.get(key) ?? 0) + by);
}

async function inBatches<T, R>(items: readonly T[], size: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size)
    out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}

export async function collectMetrics(store: RunStore, window: number): Promise<MetricsSnapshot> {
  const runs = await store.listRuns({ limit: window });
  const active = await store.listRuns({ states: ['running', 'retrying'], limit: window });
  const snapshot: MetricsSnapshot = {
    runs: new Map(),
    taskRuns: new Map(),
    taskDurations: [],
    retries: new Map(),
    scheduleLags: [],
    queueDepth: new Map(),
    window,
    runsSeen: runs.length,
  };
  // Batches of 20 keep a SQLite store responsive and a Postgres pool from being flooded.
  const taskRunsOf = await inBatches(runs, 20, (run) => store.getTaskRuns(run.id));
  runs.forEach((run, i) => addRun(snapshot, run, taskRunsOf[i]!));
  const activeTasks = await inBatches(active, 20, (run) => store.getTaskRuns(run.id));
  active.forEach((run, i) => {
    for (const task of activeTasks[i]!) {
      if (task.state !== 'pending') continue;
      bump(snapshot.queueDepth, run.plan.tasks[task.task]?.queue ?? 'default');
    }
  });
  return snapshot;
}

function addRun(snapshot: MetricsSnapshot, run: RunRecord, taskRuns: readonly TaskRunRecord[]): void {
  bump(snapshot.runs, run.pipeline + KEY_SEP + run.state);
  if (run.scheduledFor && run.startedAt) {
    snapshot.scheduleLags.push(
      Math.max(0, (Date.parse(run.startedAt) - Date.parse(run.scheduledFor)) / 1000),
    );
  }
  for (const task of taskRuns) {
    bump(snapshot.taskRuns, run.pipeline + KEY_SEP + task.state);
    if (task.attempts > 1) bump(snapshot.retries, run.pipeline, task.attempts - 1);
    if (task.startedAt && task.finishedAt) {
      snapshot.taskDurations.push(
        Math.max(0, (Date.parse(task.finishedAt) - Date.parse(task.startedAt)) / 1000),
      );
    }
  }
}

/** A label value as the exposition format wants it: backslash, quote and newline escaped. */
export function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labels(pairs: Record<string, string>): string {
  const body = Object.entries(pairs)
    .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
    .join(',');
  return body ? `{${body}}` : '';
}

function formatNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

function histogram(
  lines: string[],
  name: string,
  help: string,
  values: readonly number[],
  buckets: readonly number[],
): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
  for (const bound of buckets) {
    const count = values.filter((v) => v <= bound).length;
    lines.push(`${name}_bucket${labels({ le: formatNumber(bound) })} ${count}`);
  }
  lines.push(`${name}_bucket${labels({ le: '+Inf' })} ${values.length}`);
  lines.push(`${name}_sum ${formatNumber(values.reduce((a, b) => a + b, 0))}`);
  lines.push(`${name}_count ${values.length}`);
}

function byPipelineState(lines: string[], name: string, help: string, map: Map<string, number>): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
  for (const [key, count] of [...map].sort(([a], [b]) => a.localeCompare(b))) {
    const [pipeline, state] = key.split(KEY_SEP) as [string, string];
    lines.push(`${name}${labels({ pipeline, state })} ${count}`);
  }
}

export function renderMetrics(s: MetricsSnapshot): string {
  const lines: string[] = [];
  const window = `over the most recent ${s.window} runs`;
  byPipelineState(lines, 'weft_runs_total', `Runs by pipeline and state, ${window}.`, s.runs);
  byPipelineState(lines, 'weft_task_runs_total', `Task runs by pipeline and state, ${window}.`, s.taskRuns);
  histogram(
    lines,
    'weft_task_duration_seconds',
    `Duration of finished task runs, ${window}.`,
    s.taskDurations,
    TASK_DURATION_BUCKETS,
  );
  lines.push(
    `# HELP weft_task_retries_total Attempts beyond the first, by pipeline, ${window}.`,
    '# TYPE weft_task_retries_total gauge',
  );
  for (const [pipeline, count] of [...s.retries].sort(([a], [b]) => a.localeCompare(b))) {
    lines.push(`weft_task_retries_total${labels({ pipeline })} ${count}`);
  }
  histogram(
    lines,
    'weft_schedule_lag_seconds',
    `Delay between a scheduled run's schedule time and its start, ${window}.`,
    s.scheduleLags,
    SCHEDULE_LAG_BUCKETS,
  );
  lines.push(
    '# HELP weft_queue_depth Pending task runs of runs in progress, by queue.',
    '# TYPE weft_queue_depth gauge',
  );
  for (const [queue, count] of [...s.queueDepth].sort(([a], [b]) => a.localeCompare(b))) {
    lines.push(`weft_queue_depth${labels({ queue })} ${count}`);
  }
  lines.push(
    '# HELP weft_metrics_window_runs Runs the other metrics were computed from.',
    '# TYPE weft_metrics_window_runs gauge',
  );
  lines.push(`weft_metrics_window_runs ${s.runsSeen}`);
  return lines.join('\n') + '\n';
}
