import type { RunJson, TaskRunJson } from '../queries.js';
import { html, type SafeHtml } from '../html.js';
import { formatMs, truncate } from './format.js';

/**
 * Inline SVG drawn here from the plan (no Mermaid, no CDN): the DAG with one column per stage,
 * a timeline of attempts, and a bar chart of run durations. Colours come from CSS classes
 * (`st-<state>`), never inline styles, so the page works under `style-src 'self'`.
 */

export interface GraphNode {
  id: string;
  handler: string;
  stage: number;
}
export interface GraphEdge {
  from: string;
  to: string;
}

const NODE_W = 168;
const NODE_H = 42;
const GAP_X = 56;
const GAP_Y = 16;
const PAD = 12;

export function renderDagSvg(
  graph: { nodes: readonly GraphNode[]; edges: readonly GraphEdge[]; stages: readonly (readonly string[])[] },
  states?: Readonly<Record<string, string>>,
): SafeHtml {
  const where = new Map<string, { x: number; y: number }>();
  graph.stages.forEach((stage, column) => {
    stage.forEach((task, row) => {
      where.set(task, { x: PAD + column * (NODE_W + GAP_X), y: PAD + row * (NODE_H + GAP_Y) });
    });
  });
  const rows = Math.max(1, ...graph.stages.map((s) => s.length));
  const width = PAD * 2 + Math.max(1, graph.stages.length) * (NODE_W + GAP_X) - GAP_X;
  const height = PAD * 2 + rows * (NODE_H + GAP_Y) - GAP_Y;
  const edges = graph.edges.flatMap((edge) => {
    const a = where.get(edge.from);
    const b = where.get(edge.to);
    if (!a || !b) return [];
    const x1 = a.x + NODE_W;
    const y1 = a.y + NODE_H / 2;
    const x2 = b.x;
    const y2 = b.y + NODE_H / 2;
    const mid = (x1 + x2) / 2;
    return [
      html`<path
        class="edge"
        d="M${x1} ${y1} C${mid} ${y1}, ${mid} ${y2}, ${x2 - 4} ${y2}"
        marker-end="url(#arrow)"
      />`,
    ];
  });
  const nodes = graph.nodes.flatMap((node) => {
    const p = where.get(node.id);
    if (!p) return [];
    const state = states?.[node.id] ?? 'none';
    return [
      html`<g
        class="dag-node"
        data-task="${node.id}"
        tabindex="0"
        role="button"
        aria-label="${node.id} (${state})"
      >
        <title>${node.id} — ${node.handler}${states ? ` — ${state}` : ''}</title>
        <rect class="node st-${state}" x="${p.x}" y="${p.y}" width="${NODE_W}" height="${NODE_H}" rx="6" />
        <text class="node-name" x="${p.x + 10}" y="${p.y + 18}">${truncate(node.id, 22)}</text>
        <text class="node-sub" x="${p.x + 10}" y="${p.y + 33}"
          >${truncate(states ? `${node.handler} · ${state}` : node.handler, 26)}</text
        >
      </g>`,
    ];
  });
  return html`<svg
    class="dag"
    xmlns="http://www.w3.org/2000/svg"
    width="${width}"
    height="${height}"
    viewBox="0 0 ${width} ${height}"
    role="img"
    aria-label="task graph"
  >
    <defs>
      <marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="8" markerHeight="8" orient="auto">
        <path d="M0 0 L8 4 L0 8 z" class="arrow" />
      </marker>
    </defs>
    ${edges}${nodes}
  </svg>`;
}

const TL_LABEL = 150;
const TL_WIDTH = 560;
const TL_ROW = 22;

/** Attempts per task on one time axis: a thin segment for the retry wait, a bar for the attempt. */
export function renderTimelineSvg(run: RunJson, tasks: readonly TaskRunJson[], now: number): SafeHtml {
  const spans = tasks.flatMap((t) =>
    t.attempt_history.map((a) => {
      const start = Date.parse(a.started_at);
      return { waitFrom: start - a.delay_ms, start, end: a.finished_at ? Date.parse(a.finished_at) : now };
    }),
  );
  if (spans.length === 0) return html`<p class="muted">No attempt has started yet.</p>`;
  const origin = Math.min(
    ...spans.map((s) => s.waitFrom),
    run.started_at ? Date.parse(run.started_at) : Infinity,
  );
  const end = Math.max(
    ...spans.map((s) => s.end),
    run.finished_at ? Date.parse(run.finished_at) : 0,
    origin + 1,
  );
  const scale = TL_WIDTH / (end - origin);
  const x = (t: number) => TL_LABEL + Math.max(0, (t - origin) * scale);
  const height = tasks.length * TL_ROW + 24;
  const rows = tasks.map((t, i) => {
    const y = i * TL_ROW + 4;
    const bars = t.attempt_history.map((a) => {
      const start = Date.parse(a.started_at);
      const finish = a.finished_at ? Date.parse(a.finished_at) : now;
      const label = `${t.task} attempt ${a.attempt}: ${a.state}, ${formatMs(finish - start)}${a.delay_ms > 0 ? ` after waiting ${formatMs(a.delay_ms)}` : ''}${a.error ? ` — ${a.error.message}` : ''}`;
      const wait =
        a.delay_ms > 0
          ? html`<rect
              class="wait"
              x="${x(start - a.delay_ms)}"
              y="${y + 8}"
              width="${Math.max(1, a.delay_ms * scale)}"
              height="3"
              ><title>${`retry wait ${formatMs(a.delay_ms)}`}</title></rect
            >`
          : null;
      return html`${wait}<rect
          class="bar att-${a.state}"
          x="${x(start)}"
          y="${y + 2}"
          width="${Math.max(2, (finish - start) * scale)}"
          height="${TL_ROW - 8}"
          rx="2"
          ><title>${label}</title></rect
        >`;
    });
    return html`<text class="tl-label" x="4" y="${y + 14}">${truncate(t.task, 20)}</text>${bars}`;
  });
  const axisY = tasks.length * TL_ROW + 16;
  return html`<svg
    class="timeline"
    xmlns="http://www.w3.org/2000/svg"
    width="${TL_LABEL + TL_WIDTH + 8}"
    height="${height}"
    viewBox="0 0 ${TL_LABEL + TL_WIDTH + 8} ${height}"
    role="img"
    aria-label="attempt timeline"
  >
    ${rows}
    <text class="axis" x="${TL_LABEL}" y="${axisY}">0s</text>
    <text class="axis" x="${TL_LABEL + TL_WIDTH}" y="${axisY}" text-anchor="end">
      ${formatMs(end - origin)}
    </text>
  </svg>`;
}

/** Durations of recent runs, oldest on the left, coloured by state. */
export function renderDurationChart(runs: readonly RunJson[]): SafeHtml {
  const shown = [...runs].reverse();
  if (shown.length === 0) return html`<p class="muted">No runs yet.</p>`;
  const max = Math.max(1, ...shown.map((r) => r.duration_ms ?? 0));
  const barW = 14;
  const h = 60;
  const width = shown.length * (barW + 4) + 4;
  const bars = shown.map((r, i) => {
    const value = r.duration_ms ?? 0;
    const bh = Math.max(2, Math.round((value / max) * h));
    return html`<a href="/runs/${encodeURIComponent(r.id)}"
      ><rect
        class="bar st-${r.state}"
        x="${4 + i * (barW + 4)}"
        y="${h - bh + 4}"
        width="${barW}"
        height="${bh}"
        ><title>${r.id}: ${r.state}, ${formatMs(r.duration_ms)}</title></rect
      ></a
    >`;
  });
  return html`<svg
    class="chart"
    xmlns="http://www.w3.org/2000/svg"
    width="${width}"
    height="${h + 8}"
    viewBox="0 0 ${width} ${h + 8}"
    role="img"
    aria-label="durations of recent runs"
  >
    ${bars}
  </svg>`;
}
