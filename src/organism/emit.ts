import type { Redis } from 'ioredis';
import { DEFAULT_STREAM } from './fetch-interactions.js';
import { createRng } from './rng.js';

export interface EmitOptions {
  redis: Redis;
  stream?: string;
  /** Number of interactions (default 10,000). */
  count?: number;
  /** Number of people (default 200). */
  people?: number;
  /** Number of teams (default people / 12). */
  teams?: number;
  seed?: number;
  /** First day (default: `days` days before now), ISO or Date. */
  start?: string | Date;
  /** Days covered (default 28). */
  days?: number;
  /** Entries per pipelined round trip (default 5,000). */
  chunk?: number;
}

export interface EmitResult {
  stream: string;
  emitted: number;
  people: number;
  teams: number;
  hubs: string[];
  first_ts: string | null;
  last_ts: string | null;
}

const DAY_MS = 86_400_000;
// Relative activity by hour of day (UTC): quiet nights, a morning peak, a post-lunch peak.
const HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 4, 10, 30, 45, 50, 45, 25, 35, 45, 45, 35, 20, 10, 6, 4, 3, 2, 1];
const KINDS = [
  { kind: 'message', p: 0.7, weight: () => 1 },
  { kind: 'meeting', p: 0.2, weight: (r: number) => 2 + Math.floor(r * 3) },
  { kind: 'review', p: 0.1, weight: () => 1.5 },
] as const;

function pickWeighted(weights: readonly number[], r: number): number {
  const total = weights.reduce((a, b) => a + b, 0);
  let x = r * total;
  for (let i = 0; i < weights.length; i++) {
    x -= weights[i]!;
    if (x < 0) return i;
  }
  return weights.length - 1;
}

/**
 * Fills a stream with a realistic, seeded organisation: people in teams (most interactions stay in
 * the team), a few hubs talking to everyone, weekday and daytime heavy, messages/meetings/reviews.
 * XADDs are pipelined in chunks, so 100k entries take a few seconds.
 */
export async function emitInteractions(options: EmitOptions): Promise<EmitResult> {
  const stream = options.stream ?? DEFAULT_STREAM;
  const count = options.count ?? 10_000;
  const nPeople = Math.max(2, options.people ?? 200);
  const nTeams = Math.max(1, Math.min(nPeople, options.teams ?? Math.ceil(nPeople / 12)));
  const days = Math.max(1, options.days ?? 28);
  const chunk = options.chunk ?? 5000;
  const rng = createRng(options.seed ?? 1);
  const start = options.start ? new Date(options.start) : new Date(Date.now() - days * DAY_MS);
  const startDay = Math.floor(start.getTime() / DAY_MS) * DAY_MS;

  const width = String(nPeople).length;
  const people = Array.from({ length: nPeople }, (_, i) => `p${String(i + 1).padStart(width, '0')}`);
  const teamOf = (i: number) => Math.floor((i * nTeams) / nPeople);
  const teams: number[][] = Array.from({ length: nTeams }, () => []);
  people.forEach((_, i) => teams[teamOf(i)]!.push(i));
  const nHubs = Math.max(1, Math.round(nPeople * 0.02));
  const hubs = Array.from({ length: nHubs }, (_, k) => Math.floor((k * nPeople) / nHubs));
  // Each person has their own activity level (some people are much busier than others).
  const activity = people.map(() => 0.3 + rng() * rng() * 3);
  const dayWeights = Array.from({ length: days }, (_, d) => {
    const weekday = new Date(startDay + d * DAY_MS).getUTCDay();
    return weekday === 0 || weekday === 6 ? 0.15 : 1;
  });

  // Timestamps first, sorted, so the stream reads in time order as a real feed would.
  const times = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const day = pickWeighted(dayWeights, rng());
    const hour = pickWeighted(HOUR_WEIGHTS, rng());
    times[i] = startDay + day * DAY_MS + hour * 3_600_000 + Math.floor(rng() * 3_600_000);
  }
  times.sort();

  const pickSource = () => {
    if (rng() < 0.15) return hubs[Math.floor(rng() * hubs.length)]!;
    // Rejection sampling by activity level.
    for (;;) {
      const i = Math.floor(rng() * nPeople);
      if (rng() * 3.3 < activity[i]!) return i;
    }
  };
  const pickTarget = (source: number) => {
    for (;;) {
      const r = rng();
      let t: number;
      if (r < 0.72) {
        const team = teams[teamOf(source)]!;
        t = team[Math.floor(rng() * team.length)]!;
      } else if (r < 0.82) t = hubs[Math.floor(rng() * hubs.length)]!;
      else t = Math.floor(rng() * nPeople);
      if (t !== source) return t;
    }
  };

  for (let offset = 0; offset < count; offset += chunk) {
    const pipeline = options.redis.pipeline();
    const end = Math.min(count, offset + chunk);
    for (let i = offset; i < end; i++) {
      const s = pickSource();
      const t = pickTarget(s);
      const k =
        KINDS[
          pickWeighted(
            KINDS.map((x) => x.p),
            rng(),
          )
        ]!;
      pipeline.xadd(
        stream,
        '*',
        'source',
        people[s]!,
        'target',
        people[t]!,
        'kind',
        k.kind,
        'weight',
        String(k.weight(rng())),
        'ts',
        new Date(times[i]!).toISOString(),
      );
    }
    const results = await pipeline.exec();
    const failed = results?.find(([error]) => error);
    if (failed) throw failed[0] ?? new Error('pipelined XADD failed');
  }
  return {
    stream,
    emitted: count,
    people: nPeople,
    teams: nTeams,
    hubs: hubs.map((i) => people[i]!),
    first_ts: count > 0 ? new Date(times[0]!).toISOString() : null,
    last_ts: count > 0 ? new Date(times[count - 1]!).toISOString() : null,
  };
}
