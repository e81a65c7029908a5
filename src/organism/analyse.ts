import { DirectedGraph, UndirectedGraph } from 'graphology';
import louvainModule from 'graphology-communities-louvain';
import betweennessModule from 'graphology-metrics/centrality/betweenness.js';
import pagerankModule from 'graphology-metrics/centrality/pagerank.js';
import { localClustering } from './clustering.js';
import { grangerInfluence } from './granger.js';
import { createRng } from './rng.js';

// These packages are CommonJS whose typings say `export default`. TypeScript (nodenext) therefore
// types the default import as the module object, while Node hands us module.exports itself: take
// `.default` when a bundler provides it, the import otherwise.
type Pagerank = typeof pagerankModule.default;
type Betweenness = typeof betweennessModule.default;
type Louvain = typeof louvainModule.default;
const interop = <T>(mod: unknown): T => ((mod as { default?: T }).default ?? mod) as T;
const pagerank = interop<Pagerank>(pagerankModule);
const betweenness = interop<Betweenness>(betweennessModule);
const louvain = interop<Louvain>(louvainModule);

export interface AnalysisEdge {
  source: string;
  target: string;
  kind?: string;
  /** Summed interaction weight. */
  weight: number;
}

export interface AnalysisDaily {
  person: string;
  /** YYYY-MM-DD (UTC day). */
  day: string;
  /** Interactions the person took part in that day (sent + received). */
  count: number;
}

export interface AnalysisOptions {
  /** Days of activity used for the influence scores (default 28). */
  windowDays?: number;
  /** A pair is scored only when both people were active on at least this many days of the window (default 7). */
  minDays?: number;
  /** Lag in days (default 1). */
  lag?: number;
  /** Last day of the window, YYYY-MM-DD; default: the latest day in `daily`. */
  windowEnd?: string;
  /** Seed of Louvain's random number generator (default 1). */
  seed?: number;
  /** PageRank damping (default 0.85). */
  damping?: number;
}

export type PersonMetrics = {
  person: string;
  in_degree: number;
  out_degree: number;
  weighted_in_degree: number;
  weighted_out_degree: number;
  pagerank: number;
  betweenness: number;
  clustering: number;
  community: number;
};

export type PairInfluence = {
  source: string;
  target: string;
  /** Relative reduction of the residual sum of squares, [0, 1]. */
  score: number;
  days: number;
};

export type OrganismAnalysis = {
  people: PersonMetrics[];
  pairs: PairInfluence[];
  communities: number;
  window_start: string | null;
  window_end: string | null;
};

export interface AnalyseInput {
  edges: readonly AnalysisEdge[];
  daily: readonly AnalysisDaily[];
  /** People with no edges (isolated) still get metrics. */
  people?: readonly string[];
  options?: AnalysisOptions;
}

const DAY_MS = 86_400_000;
const dayIndex = (day: string) => Math.floor(Date.parse(`${day.slice(0, 10)}T00:00:00Z`) / DAY_MS);
const dayText = (index: number) => new Date(index * DAY_MS).toISOString().slice(0, 10);

/**
 * Computes every organism metric from plain data, without a database: the numbers can be checked
 * against standard implementations (see docs/organism-metrics.md for the exact definitions).
 */
export function analyseOrganism(input: AnalyseInput): OrganismAnalysis {
  const options = input.options ?? {};
  const windowDays = options.windowDays ?? 28;
  const minDays = options.minDays ?? 7;
  const lag = options.lag ?? 1;

  const names = new Set<string>(input.people ?? []);
  for (const e of input.edges) {
    names.add(e.source);
    names.add(e.target);
  }
  for (const d of input.daily) names.add(d.person);
  const sorted = [...names].sort();

  // Directed graph: edges of every kind between the same two people are merged, weights summed.
  const graph = new DirectedGraph<Record<string, never>, { weight: number }>();
  for (const name of sorted) graph.addNode(name);
  const undirected = new UndirectedGraph<Record<string, never>, { weight: number }>();
  for (const name of sorted) undirected.addNode(name);
  for (const e of input.edges) {
    if (e.source === e.target || !(e.weight > 0)) continue;
    graph.updateEdge(e.source, e.target, (attr) => ({ weight: (attr.weight ?? 0) + e.weight }));
    undirected.updateEdge(e.source, e.target, (attr) => ({ weight: (attr.weight ?? 0) + e.weight }));
  }

  const n = graph.order;
  const ranks =
    n > 0
      ? pagerank(graph, { getEdgeWeight: 'weight', alpha: options.damping ?? 0.85, maxIterations: 1000 })
      : {};
  // Shortest paths count hops: a weight here is a strength, not a distance.
  const between = n > 0 ? betweenness(graph, { getEdgeWeight: null, normalized: true }) : {};

  const neighbours = new Map<string, Set<string>>();
  undirected.forEachNode((node) => neighbours.set(node, new Set(undirected.neighbors(node))));
  const clustering = localClustering(neighbours);

  const communities =
    undirected.size > 0
      ? louvain(undirected, { getEdgeWeight: 'weight', rng: createRng(options.seed ?? 1) })
      : {};
  // Louvain's ids depend on its internal order: renumber by first appearance over sorted names so
  // the same partition always gets the same numbers. Isolated people get a community of their own.
  const renumber = new Map<string, number>();
  const community = new Map<string, number>();
  for (const name of sorted) {
    const raw = communities[name];
    const key = raw === undefined ? `solo:${name}` : String(raw);
    if (!renumber.has(key)) renumber.set(key, renumber.size);
    community.set(name, renumber.get(key)!);
  }

  const people: PersonMetrics[] = sorted.map((person) => {
    let weightedIn = 0;
    let weightedOut = 0;
    graph.forEachInEdge(person, (_edge, attr) => (weightedIn += attr.weight));
    graph.forEachOutEdge(person, (_edge, attr) => (weightedOut += attr.weight));
    return {
      person,
      in_degree: graph.inDegree(person),
      out_degree: graph.outDegree(person),
      weighted_in_degree: weightedIn,
      weighted_out_degree: weightedOut,
      pagerank: ranks[person] ?? 0,
      betweenness: n > 2 ? (between[person] ?? 0) : 0,
      clustering: clustering.get(person) ?? 0,
      community: community.get(person)!,
    };
  });

  // Daily series over the window; a day without a row is a day without activity (0).
  let windowStart: number | null = null;
  let lastDay: number | null = null;
  const series = new Map<string, Float64Array>();
  const activeDays = new Map<string, number>();
  if (input.daily.length > 0 || options.windowEnd) {
    let windowEnd: number;
    if (options.windowEnd) windowEnd = dayIndex(options.windowEnd);
    else {
      // A loop, not Math.max(...): the daily list can be far longer than the argument limit.
      windowEnd = -Infinity;
      for (const d of input.daily) windowEnd = Math.max(windowEnd, dayIndex(d.day));
    }
    windowStart = windowEnd - windowDays + 1;
    lastDay = windowEnd;
    for (const d of input.daily) {
      const t = dayIndex(d.day) - windowStart;
      if (t < 0 || t >= windowDays || !(d.count > 0)) continue;
      let s = series.get(d.person);
      if (!s) {
        s = new Float64Array(windowDays);
        series.set(d.person, s);
      }
      if (s[t] === 0) activeDays.set(d.person, (activeDays.get(d.person) ?? 0) + 1);
      s[t]! += d.count;
    }
  }

  const pairs: PairInfluence[] = [];
  // Only connected people are candidates: both directions of every undirected link are tested.
  undirected.forEachEdge((_edge, _attr, a, b) => {
    const sa = series.get(a);
    const sb = series.get(b);
    if (!sa || !sb || (activeDays.get(a) ?? 0) < minDays || (activeDays.get(b) ?? 0) < minDays) return;
    for (const [source, target, x, y] of [
      [a, b, sa, sb],
      [b, a, sb, sa],
    ] as const) {
      const result = grangerInfluence(x, y, lag);
      if (result) pairs.push({ source, target, score: result.score, days: result.days });
    }
  });
  pairs.sort((p, q) =>
    p.source < q.source
      ? -1
      : p.source > q.source
        ? 1
        : p.target < q.target
          ? -1
          : p.target > q.target
            ? 1
            : 0,
  );

  return {
    people,
    pairs,
    communities: renumber.size,
    window_start: windowStart === null ? null : dayText(windowStart),
    window_end: lastDay === null ? null : dayText(lastDay),
  };
}

export type MetricRow = { subject: string; metric: string; value: number };

export const PERSON_METRICS = [
  'in_degree',
  'out_degree',
  'weighted_in_degree',
  'weighted_out_degree',
  'pagerank',
  'betweenness',
  'clustering',
  'community',
] as const;

/** The subject of a pair metric: "source->target". */
export const pairSubject = (source: string, target: string) => `${source}->${target}`;

/** Flattens an analysis into (subject, metric, value) rows, as organism_metrics stores them. */
export function analysisToMetricRows(analysis: OrganismAnalysis): MetricRow[] {
  const rows: MetricRow[] = [];
  for (const p of analysis.people) {
    for (const metric of PERSON_METRICS) rows.push({ subject: p.person, metric, value: p[metric] });
  }
  for (const pair of analysis.pairs) {
    const subject = pairSubject(pair.source, pair.target);
    rows.push({ subject, metric: 'granger_influence', value: pair.score });
    rows.push({ subject, metric: 'granger_days', value: pair.days });
  }
  return rows;
}
