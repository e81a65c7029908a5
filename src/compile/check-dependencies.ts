import type { DocPath } from '../errors.js';
import { suggest } from '../pipeline/suggest.js';
import { type CompileContext, didYouMean, report } from './context.js';
import { findCycles, invertEdges } from './dag.js';

export interface Dependencies {
  /** Valid dependencies of each task (indexes), in the order written, without repeats. */
  upstream: number[][];
  downstream: number[][];
  /** True when a cycle was found (no order exists). */
  cyclic: boolean;
}

/** Checks `depends_on` (unknown, self, cycles) and returns the dependencies that are sound. */
export function checkDependencies(ctx: CompileContext): Dependencies {
  const { names, indexOf, spec } = ctx;
  const upstream: number[][] = [];

  names.forEach((name) => {
    const written = spec.tasks[name]!.depends_on;
    const list = written === undefined ? [] : typeof written === 'string' ? [written] : written;
    const deps: number[] = [];
    list.forEach((dep, i) => {
      const path: DocPath =
        typeof written === 'string' ? ['tasks', name, 'depends_on'] : ['tasks', name, 'depends_on', i];
      if (dep === name) {
        report(ctx, path, 'DEPENDENCY_SELF', `task "${name}" depends on itself`, {
          hint: `remove "${name}" from its depends_on`,
        });
        return;
      }
      const index = indexOf.get(dep);
      if (index === undefined) {
        report(
          ctx,
          path,
          'DEPENDENCY_UNKNOWN',
          `task "${name}" depends on "${dep}", which is not a task in this pipeline`,
          {
            hint: didYouMean(suggest(dep, names)),
          },
        );
        return;
      }
      if (!deps.includes(index)) deps.push(index);
    });
    upstream.push(deps);
  });

  const downstream = invertEdges(upstream);
  const cycles = findCycles(downstream);
  for (const cycle of cycles) {
    // cycle[k+1] depends on cycle[k]; the first member depends on the last.
    const steps = cycle.map((task, k) => {
      const before = cycle[(k - 1 + cycle.length) % cycle.length]!;
      const path = edgePath(ctx, names[task]!, names[before]!);
      const { line } = ctx.source.positionOf(path);
      return { task, before, path, line };
    });
    const route = [...cycle, cycle[0]!].map((task) => names[task]).join(' -> ');
    const where = [...steps.slice(1), steps[0]!]
      .map((step) => `"${names[step.task]}" depends on "${names[step.before]}" at line ${step.line}`)
      .join(', ');
    report(ctx, steps[0]!.path, 'DEPENDENCY_CYCLE', `dependency cycle: ${route} (${where})`, {
      hint: 'remove one of these depends_on entries; each arrow points from a task to a task that depends on it',
    });
  }
  return { upstream, downstream, cyclic: cycles.length > 0 };
}

/** Where `task` wrote its dependency on `dep` (looked up only when a cycle is reported). */
function edgePath(ctx: CompileContext, task: string, dep: string): DocPath {
  const written = ctx.spec.tasks[task]!.depends_on;
  if (typeof written === 'string' || written === undefined) return ['tasks', task, 'depends_on'];
  return ['tasks', task, 'depends_on', Math.max(0, written.indexOf(dep))];
}
