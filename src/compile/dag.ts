/**
 * Graph algorithms over tasks numbered by declaration order, on plain arrays. Iterative throughout:
 * a 10,000-task chain must not overflow the stack, and compiling must stay linear-ish.
 * `upstream[i]` are the tasks task i depends on; `downstream[i]` the tasks that depend on it.
 */

/** Inverts `upstream` lists; each result list is in ascending (declaration) order. */
export function invertEdges(upstream: readonly (readonly number[])[]): number[][] {
  const downstream: number[][] = upstream.map(() => []);
  for (let task = 0; task < upstream.length; task++) {
    for (const dep of upstream[task]!) downstream[dep]!.push(task);
  }
  return downstream;
}

/**
 * One cycle per strongly connected component (Tarjan, iterative). Each cycle is listed in the
 * direction work flows (upstream first), starting at its member declared first, without repeating
 * it at the end. Cycles come sorted by that first member.
 */
export function findCycles(downstream: readonly (readonly number[])[]): number[][] {
  const n = downstream.length;
  const index = new Int32Array(n).fill(-1);
  const low = new Int32Array(n);
  const onStack = new Uint8Array(n);
  const stack: number[] = [];
  const components: number[][] = [];
  let counter = 0;

  for (let root = 0; root < n; root++) {
    if (index[root] !== -1) continue;
    const callNodes: number[] = [root];
    const callEdges: number[] = [0];
    index[root] = low[root] = counter++;
    stack.push(root);
    onStack[root] = 1;
    while (callNodes.length > 0) {
      const top = callNodes.length - 1;
      const v = callNodes[top]!;
      const edges = downstream[v]!;
      const edge = callEdges[top]!;
      if (edge < edges.length) {
        callEdges[top] = edge + 1;
        const w = edges[edge]!;
        if (index[w] === -1) {
          index[w] = low[w] = counter++;
          stack.push(w);
          onStack[w] = 1;
          callNodes.push(w);
          callEdges.push(0);
        } else if (onStack[w]) {
          low[v] = Math.min(low[v]!, index[w]!);
        }
        continue;
      }
      callNodes.pop();
      callEdges.pop();
      const parent = callNodes[callNodes.length - 1];
      if (parent !== undefined) low[parent] = Math.min(low[parent]!, low[v]!);
      if (low[v] === index[v]) {
        const component: number[] = [];
        let w: number;
        do {
          w = stack.pop()!;
          onStack[w] = 0;
          component.push(w);
        } while (w !== v);
        if (component.length > 1) components.push(component);
      }
    }
  }

  return components.map((component) => cycleWithin(component, downstream)).sort((a, b) => a[0]! - b[0]!);
}

/** A shortest cycle through the component's first-declared member (BFS inside the component). */
function cycleWithin(component: readonly number[], downstream: readonly (readonly number[])[]): number[] {
  const members = new Set(component);
  const start = Math.min(...component);
  const parent = new Map<number, number>([[start, -1]]);
  const queue = [start];
  for (let head = 0; head < queue.length; head++) {
    const v = queue[head]!;
    for (const w of downstream[v]!) {
      if (w === start) {
        const path = [v];
        for (let p = parent.get(v)!; p !== -1; p = parent.get(p)!) path.push(p);
        return path.reverse();
      }
      if (members.has(w) && !parent.has(w)) {
        parent.set(w, v);
        queue.push(w);
      }
    }
  }
  // Unreachable for a real strongly connected component; keep the component as a fallback.
  return [...component].sort((a, b) => a - b);
}

/** A binary min-heap of task indexes: "ready" tasks leave in declaration order. */
class MinHeap {
  readonly #items: number[] = [];
  get size(): number {
    return this.#items.length;
  }
  push(value: number): void {
    const items = this.#items;
    items.push(value);
    let i = items.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (items[p]! <= value) break;
      items[i] = items[p]!;
      i = p;
    }
    items[i] = value;
  }
  pop(): number {
    const items = this.#items;
    const top = items[0]!;
    const last = items.pop()!;
    if (items.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= items.length) break;
        const r = l + 1;
        const c = r < items.length && items[r]! < items[l]! ? r : l;
        if (items[c]! >= last) break;
        items[i] = items[c]!;
        i = c;
      }
      items[i] = last;
    }
    return top;
  }
}

/**
 * Kahn's algorithm, taking the first-declared ready task each time, so a file already written in
 * dependency order keeps its order. Returns null when the graph has a cycle.
 */
export function topologicalOrder(
  upstream: readonly (readonly number[])[],
  downstream: readonly (readonly number[])[],
): number[] | null {
  const n = upstream.length;
  const waiting = new Int32Array(n);
  const ready = new MinHeap();
  for (let i = 0; i < n; i++) {
    waiting[i] = upstream[i]!.length;
    if (waiting[i] === 0) ready.push(i);
  }
  const order: number[] = [];
  while (ready.size > 0) {
    const task = ready.pop();
    order.push(task);
    for (const next of downstream[task]!) {
      waiting[next] = waiting[next]! - 1;
      if (waiting[next] === 0) ready.push(next);
    }
  }
  return order.length === n ? order : null;
}

/** Longest-path layer of each task: 0 without dependencies, else 1 + the deepest dependency. */
export function stageLayers(upstream: readonly (readonly number[])[], order: readonly number[]): Int32Array {
  const stage = new Int32Array(upstream.length);
  for (const task of order) {
    let deepest = -1;
    for (const dep of upstream[task]!) deepest = Math.max(deepest, stage[dep]!);
    stage[task] = deepest + 1;
  }
  return stage;
}

/**
 * Whether `ancestor` is upstream of `task` (directly or not). A backwards search with early exit;
 * `cache` keeps full ancestor sets for tasks asked about more than once.
 */
export function isUpstream(
  upstream: readonly (readonly number[])[],
  ancestor: number,
  task: number,
  cache: Map<number, Set<number>>,
): boolean {
  const known = cache.get(task);
  if (known) return known.has(ancestor);
  const seen = new Set<number>();
  const stack = [...upstream[task]!];
  while (stack.length > 0) {
    const v = stack.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    for (const dep of upstream[v]!) if (!seen.has(dep)) stack.push(dep);
  }
  cache.set(task, seen);
  return seen.has(ancestor);
}
