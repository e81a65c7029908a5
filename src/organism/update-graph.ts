import type pg from 'pg';
import { parseDuration } from '../core/duration.js';
import { isPlainObject } from '../core/json.js';
import { NonRetryableError } from '../errors.js';
import type { Handler, HandlerContext } from '../handlers/types.js';
import { CONNECTION_ARG_SCHEMA, type ConnectionArgs, getRedis, resolveRedisUrl } from './connections.js';
import type { InteractionBatch } from './fetch-interactions.js';
import { compareStreamIds, type Interaction, parseTimestamp } from './interaction.js';
import { organismPool } from './db.js';

export interface UpdateGraphArgs extends ConnectionArgs {
  batch: InteractionBatch;
  /** Ledger rows older than this (and below the oldest pending id) are deleted; default "7d". */
  ledger_retention?: string | number;
}

export type UpdateGraphResult = { applied: number; duplicates: number; people: number; edges: number };

function checkBatch(batch: unknown): InteractionBatch {
  if (!isPlainObject(batch) || typeof batch.stream !== 'string' || typeof batch.group !== 'string') {
    throw new NonRetryableError(
      'batch: expected the output of organism.fetch_interactions ({ stream, group, entries })',
    );
  }
  if (!Array.isArray(batch.entries)) throw new NonRetryableError('batch.entries: expected an array');
  for (const [i, entry] of batch.entries.entries()) {
    const e = entry as Partial<Interaction> | null;
    if (
      !e ||
      typeof e.id !== 'string' ||
      typeof e.source !== 'string' ||
      typeof e.target !== 'string' ||
      typeof e.kind !== 'string' ||
      typeof e.weight !== 'number' ||
      typeof e.ts !== 'string' ||
      parseTimestamp(e.ts) === null
    ) {
      throw new NonRetryableError(`batch.entries[${i}]: expected { id, source, target, kind, weight, ts }`);
    }
  }
  return batch as unknown as InteractionBatch;
}

interface Span {
  first: number;
  last: number;
}
interface EdgeAgg extends Span {
  source: string;
  target: string;
  kind: string;
  count: number;
  weight: number;
}
interface DailyAgg {
  person: string;
  day: string;
  kind: string;
  countOut: number;
  countIn: number;
  weightOut: number;
  weightIn: number;
}

function widen(map: Map<string, Span>, key: string, ms: number): void {
  const span = map.get(key);
  if (!span) map.set(key, { first: ms, last: ms });
  else {
    if (ms < span.first) span.first = ms;
    if (ms > span.last) span.last = ms;
  }
}

function daily(map: Map<string, DailyAgg>, person: string, day: string, kind: string): DailyAgg {
  const key = `${person}\u0000${day}\u0000${kind}`;
  let agg = map.get(key);
  if (!agg) {
    agg = { person, day, kind, countOut: 0, countIn: 0, weightOut: 0, weightIn: 0 };
    map.set(key, agg);
  }
  return agg;
}

const iso = (ms: number) => new Date(ms).toISOString();
// Sorted keys give every writer the same row-lock order, so two concurrent batches cannot deadlock.
const byKey = <T>(map: Map<string, T>) => [...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

/** Aggregates the batch in memory, then one multi-row upsert per table. */
async function applyEntries(
  client: pg.PoolClient,
  entries: Interaction[],
): Promise<{ people: number; edges: number }> {
  const people = new Map<string, Span>();
  const edges = new Map<string, EdgeAgg>();
  const days = new Map<string, DailyAgg>();
  for (const e of entries) {
    const ms = Date.parse(e.ts);
    const day = e.ts.slice(0, 10); // ts is normalised to UTC ISO by the fetch: days are UTC days
    widen(people, e.source, ms);
    widen(people, e.target, ms);
    const key = `${e.source}\u0000${e.target}\u0000${e.kind}`;
    const edge = edges.get(key);
    if (!edge)
      edges.set(key, {
        source: e.source,
        target: e.target,
        kind: e.kind,
        count: 1,
        weight: e.weight,
        first: ms,
        last: ms,
      });
    else {
      edge.count += 1;
      edge.weight += e.weight;
      if (ms < edge.first) edge.first = ms;
      if (ms > edge.last) edge.last = ms;
    }
    const out = daily(days, e.source, day, e.kind);
    out.countOut += 1;
    out.weightOut += e.weight;
    const inn = daily(days, e.target, day, e.kind);
    inn.countIn += 1;
    inn.weightIn += e.weight;
  }

  const p = byKey(people);
  await client.query(
    `INSERT INTO people (id, first_seen, last_seen)
     SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[])
     ON CONFLICT (id) DO UPDATE SET
       first_seen = LEAST(people.first_seen, EXCLUDED.first_seen),
       last_seen = GREATEST(people.last_seen, EXCLUDED.last_seen)`,
    [p.map(([id]) => id), p.map(([, s]) => iso(s.first)), p.map(([, s]) => iso(s.last))],
  );
  const ed = byKey(edges).map(([, e]) => e);
  await client.query(
    `INSERT INTO interaction_edges (source, target, kind, count, weight_sum, first_seen, last_seen)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::float8[], $6::timestamptz[], $7::timestamptz[])
     ON CONFLICT (source, target, kind) DO UPDATE SET
       count = interaction_edges.count + EXCLUDED.count,
       weight_sum = interaction_edges.weight_sum + EXCLUDED.weight_sum,
       first_seen = LEAST(interaction_edges.first_seen, EXCLUDED.first_seen),
       last_seen = GREATEST(interaction_edges.last_seen, EXCLUDED.last_seen)`,
    [
      ed.map((e) => e.source),
      ed.map((e) => e.target),
      ed.map((e) => e.kind),
      ed.map((e) => e.count),
      ed.map((e) => e.weight),
      ed.map((e) => iso(e.first)),
      ed.map((e) => iso(e.last)),
    ],
  );
  const d = byKey(days).map(([, a]) => a);
  await client.query(
    `INSERT INTO interactions_daily (person, day, kind, count_out, count_in, weight_out, weight_in)
     SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::bigint[], $5::bigint[], $6::float8[], $7::float8[])
     ON CONFLICT (person, day, kind) DO UPDATE SET
       count_out = interactions_daily.count_out + EXCLUDED.count_out,
       count_in = interactions_daily.count_in + EXCLUDED.count_in,
       weight_out = interactions_daily.weight_out + EXCLUDED.weight_out,
       weight_in = interactions_daily.weight_in + EXCLUDED.weight_in`,
    [
      d.map((a) => a.person),
      d.map((a) => a.day),
      d.map((a) => a.kind),
      d.map((a) => a.countOut),
      d.map((a) => a.countIn),
      d.map((a) => a.weightOut),
      d.map((a) => a.weightIn),
    ],
  );
  return { people: people.size, edges: edges.size };
}

const PRUNE_INTERVAL_MS = 60_000;
const lastPrune = new Map<string, number>();

/**
 * Applies a fetched batch to the graph exactly once.
 *
 * IMPORTANT: the ledger insert and the graph upserts commit together, and XACK comes only after
 * COMMIT. A crash before COMMIT leaves nothing applied and the entries pending (they are reclaimed);
 * a crash after COMMIT but before XACK leaves them pending too, and their second application finds
 * every id already in the ledger and changes nothing.
 */
export async function updateGraphIncremental(
  args: UpdateGraphArgs,
  ctx: HandlerContext,
): Promise<UpdateGraphResult> {
  const batch = checkBatch(args.batch);
  if (batch.entries.length === 0) return { applied: 0, duplicates: 0, people: 0, edges: 0 };
  const pool = await organismPool(args, ctx);

  const unique = new Map<string, Interaction>();
  for (const entry of batch.entries) unique.set(entry.id, entry);
  const ids = [...unique.keys()];

  const client = await pool.connect();
  let result: UpdateGraphResult;
  try {
    await client.query('BEGIN');
    try {
      const fresh = await client.query<{ entry_id: string }>(
        `INSERT INTO applied_stream_entries (stream, entry_id)
         SELECT $1, unnest($2::text[])
         ON CONFLICT DO NOTHING
         RETURNING entry_id`,
        [batch.stream, ids],
      );
      const toApply = fresh.rows.map((row) => unique.get(row.entry_id)!);
      const touched = toApply.length > 0 ? await applyEntries(client, toApply) : { people: 0, edges: 0 };
      await client.query('COMMIT');
      result = { applied: toApply.length, duplicates: batch.entries.length - toApply.length, ...touched };
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  } finally {
    client.release();
  }

  const redis = getRedis(resolveRedisUrl(args, ctx));
  await redis.xack(batch.stream, batch.group, ...ids);
  const retentionMs = parseDuration(args.ledger_retention ?? '7d');
  if (retentionMs === null)
    throw new NonRetryableError(`ledger_retention: "${args.ledger_retention}" is not a duration`);
  // Pruning scans the ledger: once a minute per stream is plenty (and keeps batches fast).
  const key = `${resolveRedisUrl(args, ctx)} ${batch.stream}`;
  const now = Date.now();
  if (retentionMs === 0 || now - (lastPrune.get(key) ?? 0) >= PRUNE_INTERVAL_MS) {
    lastPrune.set(key, now);
    await pruneLedger(pool, redis, batch, ids, retentionMs);
  }
  ctx.log.info(`applied ${result.applied} interaction(s), ${result.duplicates} already applied`);
  return result;
}

/**
 * An id can reach this handler again in two ways, and the ledger must remember it while either is
 * possible:
 *  1. Redis redelivers it: only while it is in the group's pending list. An acknowledged entry is
 *     never redelivered, and new reads only return ids above every id delivered before, so ids
 *     below the oldest pending id are safe from this. (Moving the group back with XGROUP SETID
 *     re-delivers acknowledged entries and is not covered.)
 *  2. The engine replays a batch: a retried update task gets the same upstream output again, after
 *     an XACK that may have succeeded. That window is bounded by the run's retries, so rows older
 *     than `retention` are safe from this.
 * A row is deleted only when both hold. (A high-water mark alone would be wrong: entries reclaimed
 * from a dead consumer are older than ids other consumers applied since.)
 */
async function pruneLedger(
  pool: pg.Pool,
  redis: ReturnType<typeof getRedis>,
  batch: InteractionBatch,
  ids: string[],
  retentionMs: number,
): Promise<void> {
  const summary = (await redis.xpending(batch.stream, batch.group)) as [
    number,
    string | null,
    string | null,
    unknown,
  ];
  let bound: string;
  let inclusive: boolean;
  if (Number(summary[0]) > 0 && summary[1]) {
    bound = summary[1];
    inclusive = false;
  } else {
    // Nothing pending: everything delivered so far (at least up to this batch) is acknowledged.
    bound = ids.reduce((max, id) => (compareStreamIds(id, max) > 0 ? id : max));
    inclusive = true;
  }
  const [ms, seq] = bound.split('-');
  await pool.query(
    `DELETE FROM applied_stream_entries
      WHERE stream = $1
        AND applied_at < now() - make_interval(secs => $4::double precision / 1000)
        AND (split_part(entry_id, '-', 1)::numeric, split_part(entry_id, '-', 2)::numeric)
            ${inclusive ? '<=' : '<'} ($2::numeric, $3::numeric)`,
    [batch.stream, ms, seq ?? '0', retentionMs],
  );
}

export const updateGraphIncrementalHandler: Handler<UpdateGraphArgs> = {
  name: 'organism.update_graph_incremental',
  services: ['redis', 'postgres'],
  description:
    'Applies a batch of interactions to the PostgreSQL graph in one transaction, exactly once, then acknowledges it.',
  args: {
    type: 'object',
    additionalProperties: false,
    required: ['batch'],
    properties: {
      batch: {
        type: 'object',
        required: ['stream', 'group', 'entries'],
        description: 'The output of organism.fetch_interactions: "${{ tasks.fetch_interactions.output }}".',
        properties: {
          stream: { type: 'string', description: 'Stream the entries came from (for XACK and the ledger).' },
          group: { type: 'string', description: 'Consumer group to acknowledge the entries in.' },
          entries: {
            type: 'array',
            description: 'Validated interactions: { id, source, target, kind, weight, ts }.',
          },
        },
      },
      ledger_retention: {
        type: ['string', 'number'],
        default: '7d',
        description:
          'How long applied entry ids are remembered (they are kept longer while older entries are still pending); ' +
          'must exceed how long a batch can be replayed by task retries.',
      },
      ...CONNECTION_ARG_SCHEMA,
    },
  },
  describe: () => 'apply the fetched interactions to the graph (exactly once) and acknowledge them',
  run: (args, ctx) => updateGraphIncremental(args, ctx),
};
