/**
 * Local clustering coefficient on the undirected, unweighted projection (graphology-metrics has no
 * clustering coefficient): C(v) = 2·T(v) / (k(v)·(k(v) − 1)), where k is the number of distinct
 * neighbours and T the number of links among them; 0 when k < 2. Same as networkx `clustering`.
 */
export function localClustering(neighbours: ReadonlyMap<string, ReadonlySet<string>>): Map<string, number> {
  const result = new Map<string, number>();
  for (const [node, around] of neighbours) {
    const k = around.size;
    if (k < 2) {
      result.set(node, 0);
      continue;
    }
    let links = 0;
    for (const u of around) {
      const next = neighbours.get(u);
      if (!next) continue;
      // Iterate the smaller set of the two for hubs with thousands of neighbours.
      if (next.size < around.size) {
        for (const w of next) if (w !== node && around.has(w)) links++;
      } else {
        for (const w of around) if (w !== u && next.has(w)) links++;
      }
    }
    // Every link among neighbours was counted once from each end.
    result.set(node, links / (k * (k - 1)));
  }
  return result;
}
