// Causal Organism figures (printed, not asserted). Needs Redis and PostgreSQL, and `npm run build`.
//   node bench/organism.mjs [--interactions 100000] [--batch 2000] [--people 5000] [--analysis-interactions 200000]
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import {
  analyseOrganism,
  closeOrganismConnections,
  emitInteractions,
  fetchInteractions,
  updateGraphIncremental,
} from '../dist/organism/index.js';

const { values } = parseArgs({
  options: {
    interactions: { type: 'string', default: '100000' },
    batch: { type: 'string', default: '2000' },
    people: { type: 'string', default: '5000' },
    'analysis-interactions': { type: 'string', default: '200000' },
  },
});
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const suffix = randomBytes(4).toString('hex');
const dbName = `weft_bench_organism_${suffix}`;
const stream = `weft-bench-${suffix}:interactions`;
const mb = (bytes) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;
let peakRss = 0;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);

const silent = { debug() {}, info() {}, warn() {}, error() {}, stdout() {}, stderr() {} };
const admin = new pg.Client({ connectionString: ADMIN_URL });
await admin.connect();
await admin.query(`CREATE DATABASE ${dbName}`);
const dbUrl = new URL(ADMIN_URL);
dbUrl.pathname = `/${dbName}`;
const env = { REDIS_URL, DATABASE_URL: dbUrl.toString() };
const ctx = () => ({
  pipeline: 'bench',
  task: 'bench',
  run: { id: `bench-${suffix}`, pipeline: 'bench', scheduledFor: null, attempt: 1 },
  attempt: 1,
  params: {},
  upstream: {},
  signal: new AbortController().signal,
  log: silent,
  env,
});
const redis = new Redis(REDIS_URL);

try {
  // 1. Ingest: emit, then fetch + update in batches until the stream is drained.
  const total = Number(values.interactions);
  const batchSize = Number(values.batch);
  let t = performance.now();
  await emitInteractions({ redis, stream, count: total, people: 1000, seed: 1, days: 28 });
  const emitS = (performance.now() - t) / 1000;
  console.log(`emit: ${total} interactions in ${emitS.toFixed(2)} s (${Math.round(total / emitS)}/s)`);
  // Migrate before timing (the first handler call applies the schema).
  await fetchInteractions({ stream, group: 'bench', consumer: 'warm', count: 1 }, ctx()).then((b) =>
    updateGraphIncremental({ batch: b }, ctx()),
  );
  t = performance.now();
  let applied = 1;
  let fetchMs = 0;
  for (;;) {
    const f0 = performance.now();
    const batch = await fetchInteractions(
      { stream, group: 'bench', consumer: 'bench', count: batchSize },
      ctx(),
    );
    fetchMs += performance.now() - f0;
    if (batch.entries.length === 0) break;
    applied += (await updateGraphIncremental({ batch }, ctx())).applied;
  }
  const ingestS = (performance.now() - t) / 1000;
  console.log(
    `ingest: ${applied} interactions applied in ${ingestS.toFixed(2)} s with batches of ${batchSize} ` +
      `(${Math.round(applied / ingestS)} interactions/s end to end; fetch ${(fetchMs / 1000).toFixed(2)} s of it)`,
  );

  // 2. Analysis of a large organisation, in memory (the pure function run_causal_analysis calls).
  const people = Number(values.people);
  const n = Number(values['analysis-interactions']);
  const edges = new Map();
  const daily = new Map();
  let seed = 7;
  const rand = () => (seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0) / 4_294_967_296;
  const teamSize = 12;
  for (let i = 0; i < n; i++) {
    const s = Math.floor(rand() * people);
    const team = Math.floor(s / teamSize) * teamSize;
    let d = rand() < 0.8 ? team + Math.floor(rand() * teamSize) : Math.floor(rand() * people);
    if (d >= people) d = people - 1;
    if (d === s) continue;
    const key = `p${s}\u0000p${d}`;
    edges.set(key, (edges.get(key) ?? 0) + 1);
    const day = `2024-06-${String(1 + Math.floor(rand() * 28)).padStart(2, '0')}`;
    for (const person of [`p${s}`, `p${d}`]) {
      const dk = `${person}\u0000${day}`;
      daily.set(dk, (daily.get(dk) ?? 0) + 1);
    }
  }
  const edgeList = [...edges].map(([k, weight]) => {
    const [source, target] = k.split('\u0000');
    return { source, target, weight };
  });
  const dailyList = [...daily].map(([k, count]) => {
    const [person, day] = k.split('\u0000');
    return { person, day, count };
  });
  peakRss = process.memoryUsage().rss;
  t = performance.now();
  const result = analyseOrganism({
    edges: edgeList,
    daily: dailyList,
    options: { windowDays: 28, minDays: 7 },
  });
  const analysisS = (performance.now() - t) / 1000;
  console.log(
    `analysis: ${result.people.length} people, ${edgeList.length} directed edges from ${n} interactions, ` +
      `${result.pairs.length} influence pairs, ${result.communities} communities in ${analysisS.toFixed(2)} s; peak RSS ${mb(peakRss)}`,
  );
} finally {
  clearInterval(sampler);
  await closeOrganismConnections();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `weft-bench-${suffix}:*`, 'COUNT', 100);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== '0');
  await redis.quit();
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
}
