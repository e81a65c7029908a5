import { DirectedGraph } from 'graphology';
import type { Plan, PlanTask } from './plan.js';

export type TaskNodeAttributes = Pick<PlanTask, 'handler' | 'stage' | 'triggerRule'>;

/**
 * The Plan as a graphology graph (an edge runs from a task to each task that depends on it), for
 * rendering and analysis. Built from a compiled Plan, so it is always acyclic.
 */
export function buildGraph(plan: Plan): DirectedGraph<TaskNodeAttributes> {
  const graph = new DirectedGraph<TaskNodeAttributes>();
  for (const name of plan.order) {
    const task = plan.tasks[name]!;
    graph.addNode(name, { handler: task.handler, stage: task.stage, triggerRule: task.triggerRule });
  }
  for (const name of plan.order) {
    for (const dep of plan.tasks[name]!.dependsOn) graph.addDirectedEdge(dep, name);
  }
  return graph;
}
