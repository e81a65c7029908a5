import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { parseDuration } from '../core/duration.js';
import { failpoint } from '../core/failpoint.js';
import { NonRetryableError } from '../errors.js';
import type { Handler, HandlerContext } from '../handlers/types.js';
import {
  CONNECTION_ARG_SCHEMA,
  type ConnectionArgs,
  getRedis,
  REDIS_COMMAND_TIMEOUT_MS,
  resolveRedisUrl,
} from './connections.js';
import { compareStreamIds, fieldsToRecord, type Interaction, parseInteraction } from './interaction.js';

export interface FetchInteractionsArgs extends ConnectionArgs {
  stream?: string;
  group?: string;
  consumer?: string;
  count?: number;
  block?: string | number;
  claim_idle?: string | number;
  dead_letter_stream?: string;
  max_deliveries?: number;
  start_id?: string;
}

/** The fetch output, passed to update_graph_incremental as `batch`. */
export type InteractionBatch = {
  stream: string;
  group: string;
  entries: Interaction[];
  dead_lettered: number;
  reclaimed: number;
};

type RawEntry = [id: string, fields: string[]];

export const DEFAULT_STREAM = 'organism:interactions';

function durationArg(value: string | number, name: string): number {
  const ms = parseDuration(value);
  if (ms === null) throw new NonRetryableError(`${name}: "${value}" is not a duration (e.g. "60s", "250ms")`);
  return ms;
}

async function ensureGroup(redis: Redis, stream: string, group: string, startId: string): Promise<void> {
  try {
    await redis.xgroup('CREATE', stream, group, startId, 'MKSTREAM');
  } catch (error) {
    if (!(error instanceof Error && error.message.startsWith('BUSYGROUP'))) throw error;
  }
}

/** XAUTOCLAIM pages through the pending list; we stop once we hold `limit` entries. */
async function reclaim(
  redis: Redis,
  stream: string,
  group: string,
  consumer: string,
  idleMs: number,
  limit: number,
): Promise<RawEntry[]> {
  const claimed: RawEntry[] = [];
  let cursor = '0-0';
  do {
    const reply = (await redis.xautoclaim(
      stream,
      group,
      consumer,
      idleMs,
      cursor,
      'COUNT',
      limit - claimed.length,
    )) as [string, (RawEntry | null)[], string[]?];
    cursor = reply[0];
    // Redis < 7 reports entries deleted from the stream as nulls; Redis 7 lists them apart.
    for (const entry of reply[1]) if (entry) claimed.push(entry);
  } while (cursor !== '0-0' && claimed.length < limit);
  return claimed;
}

/** Delivery counts of the given pending entries (all claimed by `consumer` just now). */
async function deliveryCounts(
  redis: Redis,
  stream: string,
  group: string,
  consumer: string,
  entries: RawEntry[],
) {
  const counts = new Map<string, number>();
  if (entries.length === 0) return counts;
  const ids = entries.map(([id]) => id).sort(compareStreamIds);
  const rows = (await redis.xpending(stream, group, ids[0]!, ids[ids.length - 1]!, ids.length, consumer)) as [
    string,
    string,
    number,
    number,
  ][];
  for (const [id, , , deliveries] of rows) counts.set(id, Number(deliveries));
  return counts;
}

export async function fetchInteractions(
  args: FetchInteractionsArgs,
  ctx: HandlerContext,
): Promise<InteractionBatch> {
  const stream = args.stream ?? DEFAULT_STREAM;
  const group = args.group ?? 'weft';
  const consumer = args.consumer ?? `weft-${hostname()}`;
  const count = args.count ?? 1000;
  const blockMs = durationArg(args.block ?? '0', 'block');
  const claimIdleMs = durationArg(args.claim_idle ?? '60s', 'claim_idle');
  const deadLetterStream = args.dead_letter_stream ?? `${stream}:dead`;
  const maxDeliveries = args.max_deliveries ?? 5;
  const redis = getRedis(resolveRedisUrl(args, ctx));

  await ensureGroup(redis, stream, group, args.start_id ?? '0');

  // Entries a crashed consumer read but never acknowledged come first: they are the oldest work.
  const reclaimedRaw = await reclaim(redis, stream, group, consumer, claimIdleMs, count);
  const deliveries = await deliveryCounts(redis, stream, group, consumer, reclaimedRaw);

  let fresh: RawEntry[] = [];
  const room = count - reclaimedRaw.length;
  if (room > 0) {
    const readArgs: (string | number)[] = ['GROUP', group, consumer, 'COUNT', room];
    // BLOCK 0 means "forever" to Redis; a scheduled task must never do that, so 0 means "don't block".
    // A blocking read gets its own connection so it does not stall the shared client's other commands.
    // duplicate() copies the options, not the listeners: it needs its own 'error' listener (or
    // ioredis prints "Unhandled error event" on every reconnect), and a command timeout that
    // leaves room for the block.
    const reader =
      blockMs > 0 ? redis.duplicate({ commandTimeout: blockMs + REDIS_COMMAND_TIMEOUT_MS }) : redis;
    if (reader !== redis) reader.on('error', () => undefined);
    if (blockMs > 0) readArgs.push('BLOCK', blockMs);
    try {
      const reply = (await (reader.xreadgroup as (...a: (string | number)[]) => Promise<unknown>)(
        ...readArgs,
        'STREAMS',
        stream,
        '>',
      )) as [string, RawEntry[]][] | null;
      fresh = reply?.[0]?.[1] ?? [];
    } finally {
      if (reader !== redis) reader.disconnect();
    }
  }
  // Entries now pending for this consumer, nothing applied or acknowledged yet.
  failpoint('after-stream-read');

  const entries: Interaction[] = [];
  const dead: { id: string; reason: string; fields: string[]; deliveries: number }[] = [];
  for (const [raw, isReclaimed] of [
    ...reclaimedRaw.map((entry) => [entry, true] as const),
    ...fresh.map((entry) => [entry, false] as const),
  ]) {
    const [id, fields] = raw;
    const delivered = isReclaimed ? (deliveries.get(id) ?? 1) : 1;
    if (delivered > maxDeliveries) {
      dead.push({
        id,
        reason: `delivered ${delivered} times (max_deliveries ${maxDeliveries})`,
        fields,
        deliveries: delivered,
      });
      continue;
    }
    const parsed = parseInteraction(id, fieldsToRecord(fields));
    if (parsed.ok) entries.push(parsed.value);
    else dead.push({ id, reason: parsed.reason, fields, deliveries: delivered });
  }

  if (dead.length > 0) {
    // MULTI makes "copied to the dead-letter stream" and "acknowledged here" one step: a crash
    // cannot leave an entry acknowledged but not dead-lettered.
    const tx = redis.multi();
    for (const item of dead) {
      tx.xadd(
        deadLetterStream,
        '*',
        'original_id',
        item.id,
        'original_stream',
        stream,
        'group',
        group,
        'reason',
        item.reason,
        'deliveries',
        String(item.deliveries),
        ...item.fields.flatMap((value, i) => (i % 2 === 0 ? [`field:${value}`] : [value])),
      );
    }
    tx.xack(stream, group, ...dead.map((item) => item.id));
    const results = await tx.exec();
    const failed = results?.find(([error]) => error);
    if (!results || failed) throw failed?.[0] ?? new Error('dead-letter transaction aborted');
    for (const item of dead) ctx.log.warn(`dead-lettered ${item.id}: ${item.reason}`);
  }

  ctx.log.info(
    `fetched ${entries.length} interaction(s) from ${stream} (${reclaimedRaw.length} reclaimed, ${dead.length} dead-lettered)`,
  );
  return { stream, group, entries, dead_lettered: dead.length, reclaimed: reclaimedRaw.length };
}

export const fetchInteractionsHandler: Handler<FetchInteractionsArgs> = {
  name: 'organism.fetch_interactions',
  services: ['redis'],
  description:
    'Reads a batch of interactions from a Redis stream consumer group: reclaims stale pending entries, ' +
    'reads new ones, dead-letters malformed or over-delivered entries.',
  args: {
    type: 'object',
    additionalProperties: false,
    properties: {
      stream: {
        type: 'string',
        minLength: 1,
        default: DEFAULT_STREAM,
        description: 'The Redis stream to read.',
      },
      group: {
        type: 'string',
        minLength: 1,
        default: 'weft',
        description: 'Consumer group (created if missing).',
      },
      consumer: {
        type: 'string',
        minLength: 1,
        description: 'Consumer name within the group; defaults to weft-<hostname>.',
      },
      count: {
        type: 'integer',
        minimum: 1,
        maximum: 100_000,
        default: 1000,
        description: 'Most entries per batch.',
      },
      block: {
        type: ['string', 'number'],
        default: '0',
        description: 'How long to wait for new entries when none are ready ("5s"); 0 returns at once.',
      },
      claim_idle: {
        type: ['string', 'number'],
        default: '60s',
        description:
          'Pending entries idle longer than this (read by a consumer that died) are reclaimed first.',
      },
      dead_letter_stream: {
        type: 'string',
        minLength: 1,
        description: 'Where malformed entries go, with a reason; defaults to <stream>:dead.',
      },
      max_deliveries: {
        type: 'integer',
        minimum: 1,
        default: 5,
        description: 'An entry delivered more often than this is dead-lettered instead of retried again.',
      },
      start_id: {
        type: 'string',
        default: '0',
        description: 'Where a newly created group starts: "0" (the whole stream) or "$" (only new entries).',
      },
      ...CONNECTION_ARG_SCHEMA,
    },
  },
  describe: (args) =>
    `read up to ${args.count ?? 1000} interactions from ${args.stream ?? DEFAULT_STREAM} as group ${args.group ?? 'weft'}`,
  run: (args, ctx) => fetchInteractions(args, ctx),
};
