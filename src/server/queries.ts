import type { Plan } from '../compile/plan.js';
import { isRunFinished, type RunState } from '../core/states.js';
import type { Diagnostic } from '../errors.js';
import { describeCron, nextFires } from '../schedule/cron.js';
import { attemptToJson, logToJson, runToJson, taskRunToJson } from '../store/run-json.js';
import type { LogRecord, RunRecord, RunRequestRecord } from '../store/run-store.js';
import { notFound } from './api-error.js';
import type { ServerContext } from './context.js';
import { maskerFor, maskJson } from './mask-json.js';
import { findPipeline, type PipelineEntry } from './pipelines.js';

/**
 * The data behind both the JSON API and the HTML views, so the page and the API can never
 * disagree. Everything returned has the pipeline's secrets masked.
 */

export const NEXT_FIRES = 3;
const MAX_ERRORS_SHOWN = 5;

export type RunJson = ReturnType<typeof runToJson> & { cancel_requested: boolean };
export type TaskRunJson = ReturnType<typeof taskRunToJson> & {
  handler: string | null;
  stage: number | null;
  depends_on: string[];
  queue: string | null;
};

function diagnosticJson(d: Diagnostic) {
  return {
    code: d.code,
    message: d.message,
    file: d.file,
    line: d.line,
    column: d.column,
    ...(d.hint ? { hint: d.hint } : {}),
  };
}

export function scheduleJson(ctx: ServerContext, plan: Plan) {
  const schedule = plan.schedule;
  if (!schedule) return null;
  let fires: string[] = [];
  let notes: (string | null)[] = [];
  try {
    const list = nextFires(schedule.cron, new Date(ctx.now()), schedule.timezone, NEXT_FIRES);
    fires = list.map((f) => f.at.toISOString());
    notes = list.map((f) => f.dstNote);
  } catch {
    // A plan is compiled from a valid cron; a runtime without the zone still gets the rest.
  }
  const fromScheduler = ctx.scheduler?.nextFires?.().find((f) => f.pipeline === plan.name);
  return {
    cron: schedule.cron,
    description: describeCron(schedule.cron),
    timezone: schedule.timezone,
    overlap: schedule.overlap,
    catchup: schedule.catchup,
    next_fires: fires,
    dst_notes: notes,
    /** What the scheduler in this process will do next (null: not scheduled here). */
    scheduler_next_fire:
      fromScheduler === undefined
        ? null
        : fromScheduler.at === null
          ? null
          : new Date(fromScheduler.at).toISOString(),
  };
}

export function runJson(ctx: ServerContext, run: RunRecord): RunJson {
  const masker = maskerFor(run.plan, ctx.env);
  return maskJson({ ...runToJson(run, ctx.now()), cancel_requested: run.cancelRequested }, masker);
}

export function paramsJson(plan: Plan) {
  return Object.entries(plan.params).map(([name, spec]) => ({
    name,
    type: spec.type,
    default: spec.default === undefined ? null : spec.default,
    required: spec.default === undefined,
    description: spec.description ?? null,
    enum: spec.enum ?? null,
  }));
}

export async function pipelineSummary(ctx: ServerContext, entry: PipelineEntry) {
  const errors = entry.diagnostics.filter((d) => d.severity === 'error');
  const masker = maskerFor(entry.plan, ctx.env);
  const [last] = await ctx.store.listRuns({ pipeline: entry.name, limit: 1 });
  return maskJson(
    {
      name: entry.name,
      file: entry.file,
      description: entry.plan?.description ?? null,
      valid: entry.plan !== null,
      error_count: errors.length,
      errors: errors.slice(0, MAX_ERRORS_SHOWN).map(diagnosticJson),
      warnings: entry.diagnostics.filter((d) => d.severity === 'warning').length,
      schedule: entry.plan ? scheduleJson(ctx, entry.plan) : null,
      params: entry.plan ? paramsJson(entry.plan) : [],
      tasks: entry.plan ? entry.plan.order.length : null,
      last_run: last ? runJson(ctx, last) : null,
    },
    masker,
  );
}

export type PipelineSummary = Awaited<ReturnType<typeof pipelineSummary>>;

export function listPipelines(ctx: ServerContext): Promise<PipelineSummary[]> {
  const entries = [...ctx.pipelines()].sort((a, b) => a.name.localeCompare(b.name));
  return Promise.all(entries.map((e) => pipelineSummary(ctx, e)));
}

export function requirePipeline(ctx: ServerContext, name: string): PipelineEntry {
  const entry = findPipeline(ctx.pipelines(), name);
  if (!entry) throw notFound(`no pipeline named "${name}"`);
  return entry;
}

export function graphOf(plan: Plan) {
  return {
    nodes: plan.order.map((name) => {
      const task = plan.tasks[name]!;
      return {
        id: name,
        handler: task.handler,
        stage: task.stage,
        queue: task.queue,
        trigger_rule: task.triggerRule,
        description: task.description,
        line: task.position.line,
      };
    }),
    edges: plan.order.flatMap((name) => plan.tasks[name]!.dependsOn.map((from) => ({ from, to: name }))),
    stages: plan.stages,
  };
}

export const RECENT_RUNS = 20;

export async function pipelineDetail(ctx: ServerContext, name: string) {
  const entry = requirePipeline(ctx, name);
  const summary = await pipelineSummary(ctx, entry);
  const recent = await ctx.store.listRuns({ pipeline: entry.name, limit: RECENT_RUNS });
  const masker = maskerFor(entry.plan, ctx.env);
  return {
    ...summary,
    all_errors: entry.diagnostics.map(diagnosticJson),
    source: entry.source === null ? null : masker(entry.source),
    graph: entry.plan ? graphOf(entry.plan) : null,
    recent_runs: recent.map((r) => runJson(ctx, r)),
  };
}

export async function requireRun(ctx: ServerContext, id: string): Promise<RunRecord> {
  const run = await ctx.store.getRun(id);
  if (!run) throw notFound(`no run with id ${id}`);
  return run;
}

export async function runDetail(ctx: ServerContext, run: RunRecord) {
  const [taskRuns, attempts] = await Promise.all([
    ctx.store.getTaskRuns(run.id),
    ctx.store.getAttempts(run.id),
  ]);
  const byTask = new Map(taskRuns.map((t) => [t.task, t]));
  const order = [...run.plan.order, ...taskRuns.map((t) => t.task).filter((t) => !(t in run.plan.tasks))];
  const tasks = order.flatMap((name) => {
    const taskRun = byTask.get(name);
    if (!taskRun) return [];
    const planTask = run.plan.tasks[name];
    return [
      {
        ...taskRunToJson(
          taskRun,
          attempts.filter((a) => a.task === name),
        ),
        handler: planTask?.handler ?? null,
        stage: planTask?.stage ?? null,
        depends_on: planTask?.dependsOn ?? [],
        queue: planTask?.queue ?? null,
      },
    ];
  });
  const masker = maskerFor(run.plan, ctx.env);
  return {
    run: runJson(ctx, run),
    tasks: maskJson(tasks, masker) as TaskRunJson[],
    graph: graphOf(run.plan),
    finished: isRunFinished(run.state),
  };
}

export type RunDetail = Awaited<ReturnType<typeof runDetail>>;

export function logsJson(run: RunRecord, lines: readonly LogRecord[], ctx: ServerContext) {
  const masker = maskerFor(run.plan, ctx.env);
  return lines.map((line) => maskJson(logToJson(line), masker));
}

export function requestJson(request: RunRequestRecord) {
  return {
    id: request.id,
    pipeline: request.pipeline,
    state: request.state,
    params: request.params,
    requested_at: request.requestedAt,
    claimed_at: request.claimedAt,
    completed_at: request.completedAt,
    run_id: request.runId,
    error: request.error,
  };
}

export { attemptToJson };

export function isActive(state: RunState): boolean {
  return !isRunFinished(state) && state !== 'interrupted';
}
