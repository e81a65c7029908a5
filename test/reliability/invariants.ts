/**
 * The reliability suite's invariants, as queries against the real stores: the PostgreSQL graph and
 * ledger, the Redis consumer group, the SQLite run store, and the process table. Each check
 * returns the violations it found (empty = holds), so a test can print all of them at once.
 */
import { readdirSync, readFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Redis } from 'ioredis';
import type pg from 'pg';

export interface ExpectedGraph {
  people: Set<string>;
  /** "source|target|kind" -> count and weight of the interactions that must be applied. */
  edges: Map<string, { count: number; weight: number }>;
  interactions: number;
}

const field = (fields: string[], name: string): string => fields[fields.indexOf(name) + 1] ?? '';

/**
 * What the graph must hold once everything is applied: every entry the test produced except those
 * the dead-letter stream holds (by original id).
 */
export function expectedGraph(
  produced: readonly [id: string, fields: string[]][],
  deadIds: ReadonlySet<string> = new Set(),
): ExpectedGraph {
  const people = new Set<string>();
  const edges = new Map<string, { count: number; weight: number }>();
  let interactions = 0;
  for (const [id, f] of produced) {
    if (deadIds.has(id)) continue;
    interactions += 1;
    people.add(field(f, 'source'));
    people.add(field(f, 'target'));
    const key = `${field(f, 'source')}|${field(f, 'target')}|${field(f, 'kind')}`;
    const edge = edges.get(key) ?? { count: 0, weight: 0 };
    edge.count += 1;
    edge.weight += Number(field(f, 'weight'));
    edges.set(key, edge);
  }
  return { people, edges, interactions };
}

/** Original ids of the entries in a dead-letter stream. */
export async function deadLetteredIds(redis: Redis, deadStream: string): Promise<Set<string>> {
  const entries = await redis.xrange(deadStream, '-', '+');
  return new Set(entries.map(([, f]) => field(f, 'original_id')));
}

/**
 * 0 lost and 0 applied twice: every expected edge has exactly its count and weight, no other edge
 * exists, the ledger holds exactly the applied ids, and the people are exactly those expected.
 */
export async function graphViolations(
  pool: pg.Pool,
  expected: ExpectedGraph,
  stream: string,
): Promise<string[]> {
  const out: string[] = [];
  const edges = await pool.query<{ key: string; count: number; weight: number }>(
    `SELECT source || '|' || target || '|' || kind AS key, count::int AS count, weight_sum AS weight
       FROM interaction_edges`,
  );
  const seen = new Set<string>();
  let total = 0;
  for (const row of edges.rows) {
    seen.add(row.key);
    total += row.count;
    const want = expected.edges.get(row.key);
    if (!want) out.push(`edge ${row.key} should not exist (count ${row.count})`);
    else if (want.count !== row.count || Math.abs(want.weight - row.weight) > 1e-6)
      out.push(
        `edge ${row.key}: count ${row.count} weight ${row.weight}, expected ${want.count} / ${want.weight}`,
      );
  }
  for (const key of expected.edges.keys()) if (!seen.has(key)) out.push(`edge ${key} is missing`);
  if (total !== expected.interactions) {
    out.push(
      `${total} interactions applied, expected ${expected.interactions} (${total - expected.interactions} extra)`,
    );
  }
  const counts = (
    await pool.query<{ people: number; ledger: number }>(
      `SELECT (SELECT count(*) FROM people)::int AS people,
              (SELECT count(*) FROM applied_stream_entries WHERE stream = $1)::int AS ledger`,
      [stream],
    )
  ).rows[0]!;
  if (counts.people !== expected.people.size)
    out.push(`${counts.people} people, expected ${expected.people.size}`);
  if (counts.ledger !== expected.interactions)
    out.push(`ledger holds ${counts.ledger} ids, expected ${expected.interactions}`);
  return out;
}

/** The consumer group's pending list (read, never acknowledged). */
export async function pendingCount(redis: Redis, stream: string, group: string): Promise<number> {
  return Number(((await redis.xpending(stream, group)) as [number])[0]);
}

/**
 * How much a consumer group still has to do: its pending entries, plus 1 when entries were added
 * after the last one it delivered (their number does not matter to a drain loop).
 */
export async function groupBacklog(redis: Redis, stream: string, group: string): Promise<number> {
  const last = await redis.xrevrange(stream, '+', '-', 'COUNT', 1);
  if (last.length === 0) return 0;
  const groups = (await redis.xinfo('GROUPS', stream)) as unknown[][];
  const info = groups.find((g) => field(g.map(String), 'name') === group);
  if (info === undefined) return 1;
  const delivered = field(info.map(String), 'last-delivered-id');
  const [ms, seq] = last[0]![0].split('-').map(BigInt) as [bigint, bigint];
  const [dms, dseq] = delivered.split('-').map(BigInt) as [bigint, bigint];
  const unread = ms > dms || (ms === dms && seq > dseq) ? 1 : 0;
  return (await pendingCount(redis, stream, group)) + unread;
}

export async function groupViolations(redis: Redis, stream: string, group: string): Promise<string[]> {
  const pending = await pendingCount(redis, stream, group);
  return pending === 0 ? [] : [`${pending} entries still pending in group ${group} of ${stream}`];
}

export const NOT_TERMINAL = ['queued', 'running', 'retrying', 'interrupted'] as const;

/**
 * The embedded run store after everything settled: `PRAGMA integrity_check` is ok, no run is left
 * queued/running/retrying/interrupted, no hook pending, no attempt open.
 */
export function sqliteStoreViolations(path: string): string[] {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const out: string[] = [];
    const integrity = db.pragma('integrity_check', { simple: true });
    if (integrity !== 'ok') out.push(`integrity_check: ${String(integrity)}`);
    const runs = db
      .prepare(`SELECT id, state FROM runs WHERE state IN (${NOT_TERMINAL.map(() => '?').join(', ')})`)
      .all(...NOT_TERMINAL) as { id: string; state: string }[];
    for (const run of runs) out.push(`run ${run.id} is ${run.state}`);
    const hooks = db.prepare(`SELECT run_id, key FROM hooks WHERE state = 'pending'`).all() as {
      run_id: string;
      key: string;
    }[];
    for (const hook of hooks) out.push(`hook ${hook.key} of run ${hook.run_id} is still pending`);
    const attempts = db
      .prepare(`SELECT run_id, task, attempt FROM attempts WHERE state = 'running'`)
      .all() as {
      run_id: string;
      task: string;
      attempt: number;
    }[];
    for (const a of attempts) out.push(`attempt ${a.task}#${a.attempt} of run ${a.run_id} is still running`);
    return out;
  } finally {
    db.close();
  }
}

/** Only `PRAGMA integrity_check`: after each restart, while runs may legitimately be unfinished. */
export function sqliteIntegrity(path: string): string {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return String(db.pragma('integrity_check', { simple: true }));
  } finally {
    db.close();
  }
}

/** Pids of live processes whose command line contains `marker` (Linux /proc). */
export function processesWith(marker: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ');
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // A zombie has exited already; it only waits for its parent to read its status.
      if (cmdline.includes(marker) && !/\) Z /.test(stat)) found.push(Number(name));
    } catch {
      // Gone between readdir and read.
    }
  }
  return found;
}

/**
 * The PostgreSQL run store after everything settled: no run queued/running/retrying/interrupted,
 * no hook pending, no attempt left `running`, and no task the queue still holds leased.
 */
export async function postgresStoreViolations(pool: pg.Pool): Promise<string[]> {
  const out: string[] = [];
  const runs = await pool.query<{ id: string; state: string }>(
    `SELECT id, state FROM runs WHERE state = ANY ($1::text[]) ORDER BY id`,
    [NOT_TERMINAL],
  );
  for (const run of runs.rows) out.push(`run ${run.id} is ${run.state}`);
  const hooks = await pool.query<{ run_id: string; key: string }>(
    `SELECT run_id, key FROM hooks WHERE state = 'pending' ORDER BY run_id, key`,
  );
  for (const hook of hooks.rows) out.push(`hook ${hook.key} of run ${hook.run_id} is still pending`);
  const attempts = await pool.query<{ run_id: string; task: string; attempt: number }>(
    `SELECT run_id, task, attempt FROM attempts WHERE state = 'running' ORDER BY run_id, task, attempt`,
  );
  for (const a of attempts.rows)
    out.push(`attempt ${a.task}#${a.attempt} of run ${a.run_id} is still running`);
  const queued = await pool.query<{ run_id: string; task: string }>(
    `SELECT run_id, task FROM queue_tasks WHERE state = 'leased' ORDER BY run_id, task`,
  );
  for (const q of queued.rows) out.push(`task ${q.task} of run ${q.run_id} is still leased in the queue`);
  return out;
}
