import { formatDuration } from '../../core/duration.js';
import type { HookPreview, PlanPreview, TaskPreview } from '../../project/plan-preview.js';
import type { Colors } from '../io.js';

/** `weft plan` as text: stages, tasks with resolved arguments and retry timelines, hooks, schedule, failure simulation. */
export function renderPlanText(preview: PlanPreview, c: Colors): string {
  const out: string[] = [];
  const tasks = preview.stages.reduce((n, s) => n + s.tasks.length, 0);
  out.push(
    `${c.bold(`Plan for ${preview.pipeline}`)} ${c.dim(`(${preview.file})`)} — dry run: nothing is executed or recorded`,
  );
  if (preview.description) out.push(c.dim(preview.description));
  out.push(
    `${tasks} task${tasks === 1 ? '' : 's'} in ${preview.stages.length} stage${preview.stages.length === 1 ? '' : 's'}, up to ${preview.concurrency} at once` +
      (preview.timeout_ms !== null ? `; run timeout ${formatDuration(preview.timeout_ms)}` : '') +
      (preview.retry.attempts > 1
        ? `; whole run retried up to ${preview.retry.attempts - 1}× (${timeline(preview.retry.delays_ms)})`
        : ''),
  );
  if (Object.keys(preview.params).length > 0) out.push(`params: ${inline(preview.params)}`);
  for (const warning of preview.warnings) out.push(c.yellow(`⚠ ${warning}`));
  for (const stage of preview.stages) {
    out.push(
      '',
      c.bold(`Stage ${stage.index + 1}`) +
        c.dim(stage.tasks.length > 1 ? ` (${stage.tasks.length} tasks side by side)` : ''),
    );
    for (const task of stage.tasks) out.push(...renderTask(task, c, preview));
  }
  const hookLines = (label: string, hooks: HookPreview[]) =>
    hooks.map(
      (h) =>
        `  ${label}: ${h.handler}${h.with !== null ? ` ${inline(h.with)}` : ''}${h.after_consecutive_failures ? c.dim(` (after ${h.after_consecutive_failures} failures in a row)`) : ''}${c.dim(`, timeout ${formatDuration(h.timeout_ms)}`)}`,
    );
  const hooks = [
    ...hookLines('on_failure', preview.hooks.on_failure),
    ...hookLines('on_success', preview.hooks.on_success),
    ...hookLines('on_recovery', preview.hooks.on_recovery),
  ];
  if (hooks.length > 0) out.push('', c.bold('Pipeline hooks'), ...hooks);
  if (preview.schedule) {
    const s = preview.schedule;
    out.push(
      '',
      c.bold('Schedule'),
      `  ${s.cron} — ${s.in_words} (${s.timezone}); overlap ${s.overlap}, catchup ${s.catchup}`,
      '  next fires:',
    );
    for (const fire of s.next) {
      out.push(
        `    ${fire.at}  ${c.dim(fire.local)}${fire.dst_note ? ' ' + c.yellow(`⚠ ${fire.dst_note}`) : ''}`,
      );
    }
  }
  if (preview.simulation) {
    const sim = preview.simulation;
    out.push('', c.bold(`If ${sim.failing.join(', ')} failed for good`));
    for (const [name, result] of Object.entries(sim.tasks)) {
      const paint = result.state === 'failed' ? c.red : result.state === 'skipped' ? c.dim : c.green;
      out.push(`  ${name}: ${paint(result.state)}${result.reason ? c.dim(` — ${result.reason}`) : ''}`);
    }
    for (const hook of sim.hooks) {
      // A run-failure hook with after_consecutive_failures fires only on a streak, not on every failure.
      const streak =
        hook.event === 'run_failure'
          ? preview.hooks.on_failure.find((h) => h.handler === hook.handler && h.after_consecutive_failures)
          : undefined;
      const when = streak ? ` — only on failure number ${streak.after_consecutive_failures} in a row` : '';
      out.push(
        `  hook ${hook.handler} fires (${hook.event}${hook.task ? ` of ${hook.task}` : ''})${c.dim(when)}`,
      );
    }
    out.push(`  the run would end ${sim.run_state === 'failed' ? c.red('failed') : c.green('succeeded')}`);
  }
  return out.join('\n') + '\n';
}

function renderTask(task: TaskPreview, c: Colors, preview: PlanPreview): string[] {
  const lines: string[] = [];
  const sim = preview.simulation?.tasks[task.name];
  lines.push(
    `  ${c.cyan(task.name)}${task.handler !== task.name ? ` → ${task.handler}` : ''}` +
      (task.depends_on.length > 0 ? c.dim(` after ${task.depends_on.join(', ')}`) : '') +
      c.dim(`  (line ${task.line})`),
  );
  if (task.description) lines.push(`      ${c.dim(task.description)}`);
  if (task.would) lines.push(`      would: ${task.would}`);
  if (task.with !== null) lines.push(`      with: ${inline(task.with)}`);
  const policy = [
    task.attempts > 1
      ? `${task.attempts} attempts (${timeline(task.delays_ms)}${task.jitter ? ', ±20 % jitter' : ''})`
      : '1 attempt',
    task.timeout_ms !== null ? `timeout ${formatDuration(task.timeout_ms)}` : null,
    task.trigger_rule !== 'all_success' ? `trigger ${task.trigger_rule}` : null,
    task.continue_on_error ? 'continue_on_error' : null,
    task.queue !== 'default' ? `queue ${task.queue}` : null,
  ].filter(Boolean);
  lines.push(`      ${policy.join('; ')}`);
  if (task.when !== null && task.when !== true) {
    const now =
      task.when_now === null
        ? 'decided at run time'
        : task.when_now
          ? 'true now'
          : c.yellow('false now: it would be skipped');
    lines.push(`      when: ${String(task.when)} (${now})`);
  }
  for (const hook of task.on_failure)
    lines.push(`      on_failure: ${hook.handler}${hook.with !== null ? ` ${inline(hook.with)}` : ''}`);
  if (sim && sim.state !== 'succeeded')
    lines.push(`      ${c.yellow(`with --fail: ${sim.state}${sim.reason ? ` (${sim.reason})` : ''}`)}`);
  return lines;
}

function timeline(delays: number[]): string {
  return delays
    .slice(1)
    .map((d, i) => `retry ${i + 1} after ${formatDuration(d)}`)
    .join(', ');
}

function inline(value: unknown): string {
  const text = JSON.stringify(value);
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}
