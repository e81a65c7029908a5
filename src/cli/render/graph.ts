import type { Plan } from '../../compile/plan.js';

export const GRAPH_FORMATS = ['mermaid', 'dot', 'json'] as const;
export type GraphFormat = (typeof GRAPH_FORMATS)[number];

/** Node ids safe in Mermaid and DOT whatever the task is called; labels keep the real name. */
function nodeIds(plan: Plan): Map<string, string> {
  return new Map(plan.order.map((task, index) => [task, `n${index}`]));
}

export function renderGraph(plan: Plan, format: GraphFormat, states?: Record<string, string>): string {
  switch (format) {
    case 'mermaid':
      return renderMermaid(plan, states);
    case 'dot':
      return renderDot(plan);
    case 'json':
      return JSON.stringify(graphJson(plan), null, 2) + '\n';
  }
}

export function graphJson(plan: Plan) {
  return {
    pipeline: plan.name,
    nodes: plan.order.map((name) => {
      const task = plan.tasks[name]!;
      return {
        id: name,
        handler: task.handler,
        stage: task.stage,
        trigger_rule: task.triggerRule,
        line: task.position.line,
      };
    }),
    edges: plan.order.flatMap((name) => plan.tasks[name]!.dependsOn.map((from) => ({ from, to: name }))),
    stages: plan.stages,
  };
}

function mermaidLabel(text: string): string {
  return text.replace(/"/g, '#quot;').replace(/</g, '#lt;').replace(/>/g, '#gt;');
}

export function renderMermaid(plan: Plan, states?: Record<string, string>): string {
  const ids = nodeIds(plan);
  const lines = ['flowchart LR'];
  for (const name of plan.order) {
    const task = plan.tasks[name]!;
    // Only the names are escaped: the <br/> and <small> are markup Mermaid must see as such.
    const label =
      task.handler === name
        ? mermaidLabel(name)
        : `${mermaidLabel(name)}<br/><small>${mermaidLabel(task.handler)}</small>`;
    lines.push(`  ${ids.get(name)}["${label}"]`);
  }
  for (const name of plan.order) {
    for (const dep of plan.tasks[name]!.dependsOn) {
      const rule = plan.tasks[name]!.triggerRule;
      const arrow = rule === 'all_success' ? '-->' : `-.->|${rule}|`;
      lines.push(`  ${ids.get(dep)} ${arrow} ${ids.get(name)}`);
    }
  }
  if (states) {
    const classes: Record<string, string> = {
      succeeded: 'fill:#d1fadf,stroke:#12b76a',
      failed: 'fill:#fee4e2,stroke:#d92d20',
      running: 'fill:#d1e9ff,stroke:#1570ef',
      retrying: 'fill:#fef0c7,stroke:#dc6803',
      skipped: 'fill:#f2f4f7,stroke:#98a2b3',
      cancelled: 'fill:#f2f4f7,stroke:#475467',
      pending: 'fill:#ffffff,stroke:#d0d5dd',
    };
    for (const [state, style] of Object.entries(classes)) lines.push(`  classDef ${state} ${style}`);
    for (const name of plan.order) {
      const state = states[name];
      if (state && state in classes) lines.push(`  class ${ids.get(name)} ${state}`);
    }
  }
  return lines.join('\n') + '\n';
}

function dotString(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export function renderDot(plan: Plan): string {
  const lines = [`digraph ${dotString(plan.name)} {`, '  rankdir=LR;', '  node [shape=box, style=rounded];'];
  for (const name of plan.order) {
    const task = plan.tasks[name]!;
    const label = task.handler === name ? name : `${name}\\n(${task.handler})`;
    lines.push(`  ${dotString(name)} [label=${dotString(label).replace(/\\\\n/g, '\\n')}];`);
  }
  for (const name of plan.order) {
    const task = plan.tasks[name]!;
    for (const dep of task.dependsOn) {
      const attrs =
        task.triggerRule === 'all_success' ? '' : ` [style=dashed, label=${dotString(task.triggerRule)}]`;
      lines.push(`  ${dotString(dep)} -> ${dotString(name)}${attrs};`);
    }
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}
