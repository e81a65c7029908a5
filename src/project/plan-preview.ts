import type { Plan, PlanHook, PlanTask } from '../compile/plan.js';
import { simulateRun, type SimulationResult } from '../compile/simulate.js';
import type { JsonObject, JsonValue } from '../core/json.js';
import { DEFAULT_HOOK_TIMEOUT_MS } from '../engine/hook-defaults.js';
import { retryTimeline } from '../engine/retry-delay.js';
import { UsageError } from '../errors.js';
import type { HandlerRegistry } from '../handlers/registry.js';
import { quoteShellSubstitution } from '../handlers/shell-quote.js';
import {
  parseCondition,
  collectExpressions,
  evaluateCondition,
  parseTemplate,
  referencesOf,
  type Expr,
  type ExpressionScope,
} from '../pipeline/expressions.js';
import { previewTemplate } from '../pipeline/preview.js';
import { describeCron, nextFires } from '../schedule/cron.js';

/** Everything `weft plan` shows, as data: the text and JSON renderings are views of this. */
export interface PlanPreview {
  pipeline: string;
  file: string;
  description: string | null;
  params: JsonObject;
  concurrency: number;
  stages: { index: number; tasks: TaskPreview[] }[];
  hooks: { on_failure: HookPreview[]; on_success: HookPreview[]; on_recovery: HookPreview[] };
  retry: { attempts: number; delays_ms: number[] };
  timeout_ms: number | null;
  schedule: null | {
    cron: string;
    in_words: string;
    timezone: string;
    overlap: string;
    catchup: string;
    next: { at: string; local: string; dst_note: string | null }[];
  };
  /** Things the plan cannot do as written, e.g. an environment variable it reads is not set. */
  warnings: string[];
  /** Present with --fail: what the run would do if those tasks failed for good. */
  simulation: null | {
    failing: string[];
    run_state: string;
    tasks: SimulationResult['tasks'];
    hooks: SimulationResult['hooks'];
  };
}

export interface TaskPreview {
  name: string;
  handler: string;
  description: string | null;
  depends_on: string[];
  with: JsonValue; // null when absent
  /** The handler's own words for what it would do (shell: the exact command). */
  would: string | null;
  attempts: number;
  /** The delay before every attempt, backoff and cap applied (the first is 0). */
  delays_ms: number[];
  backoff: string;
  jitter: boolean;
  timeout_ms: number | null;
  trigger_rule: string;
  when: string | boolean | null;
  /** `when` evaluated now, when it depends only on params/env; null when it needs task outputs. */
  when_now: boolean | null;
  continue_on_error: boolean;
  queue: string;
  on_failure: HookPreview[];
  line: number;
}

export interface HookPreview {
  handler: string;
  with: JsonValue; // null when absent
  after_consecutive_failures: number | null;
  timeout_ms: number;
}

export interface PlanPreviewOptions {
  params: JsonObject;
  env: Readonly<Record<string, string | undefined>>;
  registry: HandlerRegistry;
  fail?: readonly string[];
  now: Date;
  fires?: number;
}

export function buildPlanPreview(plan: Plan, options: PlanPreviewOptions): PlanPreview {
  for (const task of options.fail ?? []) {
    if (!(task in plan.tasks)) {
      throw new UsageError(`--fail ${task}: pipeline ${plan.name} has no task named "${task}"`);
    }
  }
  // A plan is printed and pasted around: secret values show as *** (the real run gets them).
  const env = { ...options.env };
  for (const name of plan.secrets) if (env[name] !== undefined) env[name] = '***';
  const scope: Omit<ExpressionScope, 'tasks'> = {
    params: options.params,
    env,
    run: { id: '(new run)', scheduled_for: null, attempt: 1 },
  };
  const hook = (h: PlanHook): HookPreview => ({
    handler: h.handler,
    with: h.with === null ? null : previewTemplate(h.with, scope),
    after_consecutive_failures: h.afterConsecutiveFailures,
    timeout_ms: h.timeoutMs ?? DEFAULT_HOOK_TIMEOUT_MS,
  });
  const taskPreview = (task: PlanTask): TaskPreview => {
    const handler = options.registry.get(task.handler);
    const quoting = handler?.shellQuoted?.length
      ? { quoteKeys: handler.shellQuoted, quote: quoteShellSubstitution }
      : {};
    const args = task.with === null ? null : previewTemplate(task.with, scope, quoting);
    let would: string | null = null;
    if (handler?.describe) {
      try {
        would = handler.describe(args ?? {}, { pipeline: plan.name, task: task.name });
      } catch {
        // describe() is advisory: a handler that cannot describe these arguments just says nothing.
        would = null;
      }
    }
    return {
      name: task.name,
      handler: task.handler,
      description: task.description,
      depends_on: task.dependsOn,
      with: args,
      would,
      attempts: task.retry.retries + 1,
      delays_ms: retryTimeline(task.retry),
      backoff: task.retry.backoff,
      jitter: task.retry.jitter,
      timeout_ms: task.timeoutMs,
      trigger_rule: task.triggerRule,
      when: task.when,
      when_now: whenNow(task.when, scope),
      continue_on_error: task.continueOnError,
      queue: task.queue,
      on_failure: task.onFailure.map(hook),
      line: task.position.line,
    };
  };
  const schedule = plan.schedule
    ? {
        cron: plan.schedule.cron,
        in_words: describeCron(plan.schedule.cron),
        timezone: plan.schedule.timezone,
        overlap: plan.schedule.overlap,
        catchup: plan.schedule.catchup,
        next: nextFires(plan.schedule.cron, options.now, plan.schedule.timezone, options.fires ?? 5).map(
          (fire) => ({
            at: fire.at.toISOString(),
            local: formatLocal(fire.at, plan.schedule!.timezone),
            dst_note: fire.dstNote,
          }),
        ),
      }
    : null;
  let simulation: PlanPreview['simulation'] = null;
  if (options.fail && options.fail.length > 0) {
    const result = simulateRun(plan, {
      fail: new Set(options.fail),
      when: (task) => whenNow(task.when, scope) ?? true,
    });
    simulation = {
      failing: [...options.fail],
      run_state: result.runState,
      tasks: result.tasks,
      hooks: result.hooks,
    };
  }
  return {
    warnings: unsetEnvWarnings(plan, options.env),
    pipeline: plan.name,
    file: plan.file,
    description: plan.description,
    params: options.params,
    concurrency: plan.concurrency,
    stages: plan.stages.map((names, index) => ({
      index,
      tasks: names.map((name) => taskPreview(plan.tasks[name]!)),
    })),
    hooks: {
      on_failure: plan.onFailure.map(hook),
      on_success: plan.onSuccess.map(hook),
      on_recovery: plan.onRecovery.map(hook),
    },
    retry: { attempts: plan.retry.retries + 1, delays_ms: retryTimeline(plan.retry) },
    timeout_ms: plan.timeoutMs,
    schedule,
    simulation,
  };
}

/** A `when` that reads only params/env/run can be decided now; one that reads task outputs cannot. */
function whenNow(when: string | boolean | null, scope: Omit<ExpressionScope, 'tasks'>): boolean | null {
  if (when === null) return true;
  if (typeof when === 'boolean') return when;
  const text = /^\s*\$\{\{([\s\S]*)\}\}\s*$/.exec(when)?.[1] ?? when;
  const { parts } = parseTemplate(`\${{ ${text} }}`);
  const part = parts[0];
  if (part?.kind !== 'expr' || !part.expr) return null;
  if (referencesOf(part.expr).some((r) => r.root === 'tasks')) return null;
  try {
    return evaluateCondition(when, { ...scope, tasks: {} });
  } catch {
    return null;
  }
}

function formatLocal(at: Date, timezone: string): string {
  return new Intl.DateTimeFormat('en-GB', {
    timeZone: timezone,
    weekday: 'short',
    year: 'numeric',
    month: 'short',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    timeZoneName: 'short',
  }).format(at);
}

/**
 * `${{ env.NAME }}` of a variable that is not set becomes null (or "" inside text): legal, but
 * usually a mistake — a webhook hook without its URL fails only when it is needed most.
 */
function unsetEnvWarnings(plan: Plan, env: Readonly<Record<string, string | undefined>>): string[] {
  const warnings: string[] = [];
  const report = (where: string, exprs: readonly Expr[]) => {
    const names = new Set<string>();
    for (const expr of exprs)
      for (const ref of referencesOf(expr)) if (ref.root === 'env' && ref.name) names.add(ref.name);
    for (const name of names) {
      if (env[name] === undefined)
        warnings.push(`${where} reads env.${name}, which is not set here (it would get null)`);
    }
  };
  const check = (where: string, value: JsonValue) => {
    if (value !== null)
      report(
        where,
        collectExpressions(value).map((site) => site.expr),
      );
  };
  for (const name of plan.order) {
    const task = plan.tasks[name]!;
    check(`task "${name}"`, task.with);
    if (typeof task.when === 'string') {
      const { expr } = parseCondition(task.when);
      if (expr) report(`task "${name}" (when)`, [expr]);
    }
    task.onFailure.forEach((hook, i) =>
      check(`task "${name}" on_failure hook ${i + 1} (${hook.handler})`, hook.with),
    );
  }
  for (const [label, hooks] of [
    ['on_failure', plan.onFailure],
    ['on_success', plan.onSuccess],
    ['on_recovery', plan.onRecovery],
  ] as const) {
    hooks.forEach((hook, i) => check(`${label} hook ${i + 1} (${hook.handler})`, hook.with));
  }
  return warnings;
}
