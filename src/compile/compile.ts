import { createDict } from '../core/json.js';
import { DEFAULT_HOOK_TIMEOUT_MS } from '../engine/hook-defaults.js';
import type { Diagnostic, DocPath } from '../errors.js';
import type { HandlerRegistry } from '../handlers/registry.js';
import { checkParamValue } from '../pipeline/params.js';
import type { SourceDocument } from '../pipeline/source.js';
import type { HookSpec, ParamSpec, PipelineSpec, TaskSettingsSpec } from '../pipeline/spec.js';
import { checkDependencies } from './check-dependencies.js';
import { checkExpressions } from './check-expressions.js';
import { checkHandlers } from './check-handlers.js';
import { checkSchedule } from './check-schedule.js';
import { checkShellSubstitutions } from './check-shell-substitutions.js';
import { type CompileContext, createContext, readDuration, report, sourcePosition } from './context.js';
import { stageLayers, topologicalOrder } from './dag.js';
import type { Plan, PlanHook, PlanTask, RetryPolicy } from './plan.js';

export interface CompileOptions {
  /** When given, handler names and `with` arguments are checked against it. */
  registry?: HandlerRegistry;
}

/** Default cap on tasks running at once when the pipeline sets none (further capped by stage width). */
const MAX_DEFAULT_CONCURRENCY = 16;

/**
 * The semantic stage: checks what the schema cannot (the graph, schedule, durations, expressions,
 * param defaults, handlers), reporting everything in one pass, and builds the Plan when nothing
 * is wrong. Pure: no I/O, no clock.
 */
export function compilePipeline(
  source: SourceDocument,
  spec: PipelineSpec,
  options: CompileOptions = {},
): { plan: Plan | null; diagnostics: Diagnostic[] } {
  const ctx = createContext(source, spec);
  const result = compileChecked(ctx, options);
  // In file order, as a reader fixes them; sort is stable, so one spot keeps its check order.
  result.diagnostics.sort((a, b) => a.line - b.line || a.column - b.column);
  return result;
}

function compileChecked(
  ctx: CompileContext,
  options: CompileOptions,
): { plan: Plan | null; diagnostics: Diagnostic[] } {
  const { source, spec } = ctx;
  const deps = checkDependencies(ctx);
  const schedule = checkSchedule(ctx);
  checkParamDefaults(ctx);
  checkExpressions(ctx, deps);
  if (options.registry) {
    checkHandlers(ctx, options.registry);
    checkShellSubstitutions(ctx, options.registry);
  }

  // Durations are read (and checked) while building; the draft is thrown away on any error.
  const pipelineRetry = readRetryPolicy(ctx, spec);
  const timeoutMs = readDuration(ctx, spec.timeout, ['timeout'], { positive: true });
  const defaults = spec.defaults ?? {};
  const defaultRetry = readRetrySettings(ctx, defaults, ['defaults']);
  const defaultTimeoutMs = readDuration(ctx, defaults.timeout, ['defaults', 'timeout'], { positive: true });
  const defaultHooks = defaults.on_failure
    ? readHooks(ctx, defaults.on_failure, ['defaults', 'on_failure'])
    : [];

  const taskDurations = ctx.names.map((name) => {
    const task = spec.tasks[name]!;
    return {
      ...readRetrySettings(ctx, task, ['tasks', name]),
      timeoutMs: readDuration(ctx, task.timeout, ['tasks', name, 'timeout'], { positive: true }),
    };
  });

  const order = deps.cyclic ? null : topologicalOrder(deps.upstream, deps.downstream);
  const hasErrors = ctx.diagnostics.some((d) => d.severity === 'error');
  if (hasErrors || order === null) return { plan: null, diagnostics: ctx.diagnostics };

  const { names } = ctx;
  const stageOf = stageLayers(deps.upstream, order);
  const stages: string[][] = [];
  names.forEach((name, i) => (stages[stageOf[i]!] ??= []).push(name));

  const tasks = createDict<PlanTask>();
  names.forEach((name, i) => {
    const task = spec.tasks[name]!;
    const durations = taskDurations[i]!;
    const base: DocPath = ['tasks', name];
    tasks[name] = {
      name,
      handler: task.handler ?? name,
      with: task.with ?? null,
      dependsOn: deps.upstream[i]!.map((dep) => names[dep]!),
      dependents: deps.downstream[i]!.map((dep) => names[dep]!),
      retry: {
        retries: task.retries ?? defaults.retries ?? 0,
        delayMs: durations.delayMs ?? defaultRetry.delayMs ?? 0,
        backoff: task.backoff ?? defaults.backoff ?? 'fixed',
        maxDelayMs: durations.maxDelayMs ?? defaultRetry.maxDelayMs ?? null,
        jitter: task.jitter ?? defaults.jitter ?? false,
      },
      timeoutMs: durations.timeoutMs ?? defaultTimeoutMs,
      when: task.when ?? null,
      triggerRule: task.trigger_rule ?? defaults.trigger_rule ?? 'all_success',
      continueOnError: task.continue_on_error ?? defaults.continue_on_error ?? false,
      // A task's own on_failure replaces the defaults' list rather than adding to it.
      onFailure: task.on_failure
        ? readHooks(ctx, task.on_failure, [...base, 'on_failure'])
        : defaultHooks.map((hook) => ({ ...hook, position: { ...hook.position } })),
      queue: task.queue ?? defaults.queue ?? 'default',
      description: task.description ?? null,
      stage: stageOf[i]!,
      position: sourcePosition(ctx, base, true),
    };
  });

  const widest = stages.reduce((max, stage) => Math.max(max, stage.length), 0);
  const plan: Plan = {
    version: 1,
    name: spec.name,
    description: spec.description ?? null,
    file: source.file,
    hash: source.hash,
    schedule,
    params: copyParams(spec.params),
    concurrency: spec.concurrency ?? Math.max(1, Math.min(MAX_DEFAULT_CONCURRENCY, widest)),
    retry: pipelineRetry,
    timeoutMs,
    onFailure: readHooks(ctx, spec.on_failure ?? [], ['on_failure']),
    onSuccess: readHooks(ctx, spec.on_success ?? [], ['on_success']),
    onRecovery: readHooks(ctx, spec.on_recovery ?? [], ['on_recovery']),
    secrets: [...(spec.secrets ?? [])],
    resumeInterrupted: spec.resume_interrupted ?? false,
    tasks,
    order: order.map((i) => names[i]!),
    stages,
  };
  return { plan, diagnostics: ctx.diagnostics };
}

function readRetrySettings(
  ctx: CompileContext,
  settings: TaskSettingsSpec,
  base: DocPath,
): { delayMs: number | null; maxDelayMs: number | null } {
  return {
    delayMs: readDuration(ctx, settings.retry_delay, [...base, 'retry_delay'], { positive: false }),
    maxDelayMs: readDuration(ctx, settings.max_retry_delay, [...base, 'max_retry_delay'], { positive: true }),
  };
}

/** The whole-run retry policy (top-level `retries` and `retry_delay`). */
function readRetryPolicy(ctx: CompileContext, spec: PipelineSpec): RetryPolicy {
  return {
    retries: spec.retries ?? 0,
    delayMs: readDuration(ctx, spec.retry_delay, ['retry_delay'], { positive: false }) ?? 0,
    backoff: 'fixed',
    maxDelayMs: null,
    jitter: false,
  };
}

function readHooks(ctx: CompileContext, hooks: HookSpec[], base: DocPath): PlanHook[] {
  return hooks.map((hook, i) => {
    const position = sourcePosition(ctx, [...base, i]);
    if (typeof hook === 'string')
      return {
        handler: hook,
        with: null,
        afterConsecutiveFailures: null,
        timeoutMs: DEFAULT_HOOK_TIMEOUT_MS,
        position,
      };
    return {
      handler: hook.handler,
      with: hook.with ?? null,
      afterConsecutiveFailures: hook.after_consecutive_failures ?? null,
      timeoutMs:
        readDuration(ctx, hook.timeout, [...base, i, 'timeout'], { positive: true }) ??
        DEFAULT_HOOK_TIMEOUT_MS,
      position,
    };
  });
}

function copyParams(params: Record<string, ParamSpec> | undefined): Record<string, ParamSpec> {
  const copy = createDict<ParamSpec>();
  for (const [name, spec] of Object.entries(params ?? {})) copy[name] = spec;
  return copy;
}

/** A default must itself be a valid value of the param (type and enum). */
function checkParamDefaults(ctx: CompileContext): void {
  for (const [name, param] of Object.entries(ctx.spec.params ?? {})) {
    if (param.default === undefined) continue;
    const problem = checkParamValue(param, param.default);
    if (problem) {
      report(
        ctx,
        ['params', name, 'default'],
        'PARAM_DEFAULT_TYPE',
        `default of param "${name}": ${problem}`,
        {
          hint: `the declared type is ${param.type}${param.enum ? ' with an enum' : ''}`,
        },
      );
    }
  }
}
