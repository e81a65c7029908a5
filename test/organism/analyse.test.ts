import { describe, expect, it } from 'vitest';
import {
  analyseOrganism,
  analysisToMetricRows,
  grangerInfluence,
  localClustering,
  residualSumOfSquares,
} from '../../src/organism/index.js';

// Two triangles {a,b,c} and {d,e,f} joined by the bridge c—d; directed, weighted.
const EDGES = [
  ['a', 'b', 1],
  ['b', 'a', 1],
  ['a', 'c', 3],
  ['c', 'a', 1],
  ['b', 'c', 3],
  ['c', 'b', 1],
  ['c', 'd', 1],
  ['d', 'c', 1],
  ['d', 'e', 1],
  ['e', 'd', 1],
  ['d', 'f', 2],
  ['f', 'd', 1],
  ['e', 'f', 1],
  ['f', 'e', 1],
].map(([source, target, weight]) => ({
  source: source as string,
  target: target as string,
  weight: weight as number,
}));

describe('analyseOrganism on a hand-checked organisation', () => {
  const result = analyseOrganism({ edges: EDGES, daily: [], people: ['g'] });
  const by = Object.fromEntries(result.people.map((p) => [p.person, p]));

  it('ranks PageRank d > c > f > e > a = b (values from networkx.pagerank, weighted, alpha 0.85)', () => {
    const expected = { d: 0.230455, c: 0.211443, f: 0.188413, e: 0.154047, a: 0.107821, b: 0.107821 };
    // g is isolated (a dangling node) and is not in the networkx reference: compare ratios.
    const total = ['a', 'b', 'c', 'd', 'e', 'f'].reduce((s, p) => s + by[p]!.pagerank, 0);
    for (const [person, value] of Object.entries(expected))
      expect(by[person]!.pagerank / total).toBeCloseTo(value, 4);
    const order = [...result.people]
      .filter((p) => p.person !== 'g')
      .sort((x, y) => y.pagerank - x.pagerank)
      .map((p) => p.person);
    expect(order.slice(0, 4)).toEqual(['d', 'c', 'f', 'e']);
    expect(result.people.reduce((s, p) => s + p.pagerank, 0)).toBeCloseTo(1, 6);
  });

  it('gives the bridge ends betweenness 12/30 and everyone else 0', () => {
    // 7 nodes with g: c lies on the 2·(2·3) directed shortest paths between the triangles;
    // normalised by (n−1)(n−2) = 30.
    expect(by.c!.betweenness).toBeCloseTo(12 / 30, 10);
    expect(by.d!.betweenness).toBeCloseTo(12 / 30, 10);
    for (const p of ['a', 'b', 'e', 'f', 'g']) expect(by[p]!.betweenness).toBe(0);
  });

  it('computes clustering on the undirected projection: triangle corners 1, bridge ends 1/3, isolated 0', () => {
    expect(by.a!.clustering).toBe(1);
    expect(by.e!.clustering).toBe(1);
    expect(by.c!.clustering).toBeCloseTo(1 / 3, 12);
    expect(by.g!.clustering).toBe(0);
  });

  it('counts distinct neighbours and summed weights per direction', () => {
    expect(by.c).toMatchObject({
      in_degree: 3,
      out_degree: 3,
      weighted_in_degree: 7,
      weighted_out_degree: 3,
    });
    expect(by.g).toMatchObject({ in_degree: 0, out_degree: 0, weighted_in_degree: 0 });
  });

  it('finds the two triangles as communities, reproducibly', () => {
    expect(by.a!.community).toBe(by.b!.community);
    expect(by.a!.community).toBe(by.c!.community);
    expect(by.d!.community).toBe(by.f!.community);
    expect(by.a!.community).not.toBe(by.d!.community);
    expect(by.g!.community).not.toBe(by.a!.community);
    expect(result.communities).toBe(3);
    const again = analyseOrganism({ edges: EDGES, daily: [], people: ['g'] });
    expect(again.people.map((p) => p.community)).toEqual(result.people.map((p) => p.community));
  });

  it('flattens to 8 metric rows per person', () => {
    expect(analysisToMetricRows(result)).toHaveLength(7 * 8);
  });
});

describe('grangerInfluence', () => {
  it('scores 1 when y is x shifted by one day', () => {
    const x = Float64Array.from([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8]);
    const y = Float64Array.from([0, ...x.slice(0, -1)]);
    const forward = grangerInfluence(x, y, 1)!;
    expect(forward.score).toBeCloseTo(1, 9);
    expect(forward.days).toBe(11);
    expect(grangerInfluence(y, x, 1)!.score).toBeLessThan(0.5);
  });

  it('matches numpy.linalg.lstsq on a small hand example', () => {
    // From numpy.linalg.lstsq (lag 1, 5 observations).
    const RSS_R = 8.307692307692308;
    const RSS_F = 0.8403361344537812;
    const x = Float64Array.from([1, 0, 2, 0, 3, 1]);
    const y = Float64Array.from([2, 1, 0, 3, 1, 4]);
    const r = grangerInfluence(x, y, 1)!;
    expect(r.rssRestricted).toBeCloseTo(RSS_R, 9);
    expect(r.rssFull).toBeCloseTo(RSS_F, 9);
    expect(r.score).toBeCloseTo(0.8988484282601931, 9);
  });

  it('adds nothing for a constant x (collinear with the intercept) and rejects too-short series', () => {
    const y = Float64Array.from([2, 1, 0, 3, 1, 4, 2, 2]);
    expect(grangerInfluence(new Float64Array(8).fill(5), y, 1)!.score).toBeCloseTo(0, 12);
    expect(grangerInfluence(Float64Array.from([1, 2, 3]), Float64Array.from([3, 1, 2]), 1)).toBeNull();
  });

  it('computes RSS of a plain mean fit', () => {
    const y = Float64Array.from([1, 2, 3, 4]);
    expect(residualSumOfSquares(y, [new Float64Array(4).fill(1)])).toBeCloseTo(5, 12);
  });
});

describe('analyseOrganism influence over daily series', () => {
  it('fills missing days with 0 and reports the window', () => {
    const days = [
      '2024-03-01',
      '2024-03-02',
      '2024-03-03',
      '2024-03-04',
      '2024-03-05',
      '2024-03-06',
      '2024-03-07',
      '2024-03-08',
      '2024-03-09',
      '2024-03-10',
    ];
    const xs = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3];
    const daily = days.flatMap((day, i) => [
      { person: 'x', day, count: xs[i]! },
      ...(i > 0 ? [{ person: 'y', day, count: xs[i - 1]! }] : []),
    ]);
    const result = analyseOrganism({
      edges: [{ source: 'x', target: 'y', weight: 1 }],
      daily,
      options: { windowDays: 10, minDays: 5 },
    });
    expect(result.window_start).toBe('2024-03-01');
    expect(result.window_end).toBe('2024-03-10');
    const xy = result.pairs.find((p) => p.source === 'x' && p.target === 'y')!;
    expect(xy.score).toBeCloseTo(1, 9);
    expect(xy.days).toBe(9);
    expect(result.pairs).toHaveLength(2);
    const strict = analyseOrganism({
      edges: [{ source: 'x', target: 'y', weight: 1 }],
      daily,
      options: { windowDays: 10, minDays: 11 },
    });
    expect(strict.pairs).toHaveLength(0);
  });
});

describe('localClustering', () => {
  it('is 2T / (k(k−1)) for a square with one diagonal', () => {
    const n = new Map([
      ['a', new Set(['b', 'd', 'c'])],
      ['b', new Set(['a', 'c'])],
      ['c', new Set(['b', 'd', 'a'])],
      ['d', new Set(['c', 'a'])],
    ]);
    const c = localClustering(n);
    expect(c.get('a')).toBeCloseTo(2 / 3, 12);
    expect(c.get('b')).toBe(1);
  });
});
