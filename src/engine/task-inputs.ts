import type { PlanTask } from '../compile/plan.js';
import { createDict, type JsonValue } from '../core/json.js';
import { toWeftError, WeftError } from '../errors.js';
import { quoteShellSubstitution } from '../handlers/shell-quote.js';
import type { AnyHandler } from '../handlers/types.js';
import { containsExpression, resolveTemplate, type ExpressionScope } from '../pipeline/expressions.js';
import { invokeHandler, type AttemptResult } from './attempt.js';
import { AttemptContext, type AttemptScope } from './attempt-context.js';
import { checkHandlerArgs } from './handler-args.js';
import { ancestorsOf, upstreamOutputsOf, type TaskNode } from './task-node.js';

const expressionCache = new WeakMap<PlanTask, boolean>();

/** Whether a task's `with` needs substitution (cached: plans are immutable). */
function withHasExpressions(task: PlanTask): boolean {
  let has = expressionCache.get(task);
  if (has === undefined) {
    has = task.with !== null && containsExpression(task.with);
    expressionCache.set(task, has);
  }
  return has;
}

/** What a task's expressions (`with`, `when`) can read: params, env, finished upstream tasks, the run. */
export function expressionScopeOf(pass: AttemptScope, node: TaskNode): ExpressionScope {
  const tasks = createDict<{ output: JsonValue; state: string }>();
  for (const upstream of ancestorsOf(node)) {
    if (upstream.outcome === 'unfinished') continue;
    tasks[upstream.name] = {
      output: upstream.state === 'succeeded' ? upstream.output : null,
      state: upstream.state,
    };
  }
  const { runInfo } = pass;
  return {
    params: pass.params,
    env: pass.ctx.env,
    tasks,
    run: { id: runInfo.id, scheduled_for: runInfo.scheduledFor, attempt: runInfo.attempt },
  };
}

function resolveTaskArgs(pass: AttemptScope, node: TaskNode, handler: AnyHandler): JsonValue {
  const value = node.task.with;
  if (value === null) return null;
  if (!withHasExpressions(node.task)) return typeof value === 'object' ? structuredClone(value) : value;
  const options = handler.shellQuoted
    ? { quoteKeys: handler.shellQuoted, quote: quoteShellSubstitution }
    : {};
  return resolveTemplate(value, expressionScopeOf(pass, node), options);
}

/**
 * Calls a task's handler for one attempt: its `with` resolved and checked against the handler,
 * then the handler run under the task's timeout and the pass's cancel signal. An unknown handler
 * or arguments that do not resolve end the attempt `failed` without calling anything.
 */
export function invokeTask(
  pass: AttemptScope,
  node: TaskNode,
  attempt: number,
  cancelSignal: AbortSignal,
): Promise<AttemptResult> | AttemptResult {
  const { ctx } = pass;
  const handler = ctx.registry.get(node.task.handler);
  if (!handler) {
    return {
      state: 'failed',
      error: new WeftError(
        'HANDLER_UNKNOWN',
        `task "${node.name}": no handler named "${node.task.handler}" is registered`,
        {
          retryable: false,
        },
      ),
    };
  }
  let args: JsonValue;
  try {
    args = resolveTaskArgs(pass, node, handler);
    checkHandlerArgs(handler, args, node.name);
  } catch (error) {
    return { state: 'failed', error: toWeftError(error, 'EXPRESSION_FAILED') };
  }
  return invokeHandler(
    (signal) =>
      handler.run(
        args ?? undefined,
        new AttemptContext(pass, node.name, attempt, signal, () => upstreamOutputsOf(node)),
      ),
    {
      task: node.name,
      clock: ctx.clock,
      timeoutMs: node.task.timeoutMs,
      cancelSignal,
      graceMs: ctx.graceMs,
    },
  );
}
