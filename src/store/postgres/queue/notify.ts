import pg from 'pg';
import { prepared } from '../write-batch.js';
import { queueError, type QueueConnection } from './connection.js';
import type { WriteSet } from './write-set.js';

/** NOTIFY channel: payload `q:<queue>` (tasks ready) or `h` (hooks pending). */
export const QUEUE_CHANNEL = 'weft_queue';

const NOTIFY_SQL = `SELECT pg_notify('${QUEUE_CHANNEL}', p) FROM unnest($1::text[]) AS p`;

/** Wakes the workers of the queues a transaction made tasks ready on, and hook runners. */
export async function notifyWakes(client: pg.PoolClient, writes: WriteSet): Promise<void> {
  const payloads = [...writes.wake].map((name) => `q:${name}`);
  if (writes.wakeHooks) payloads.push('h');
  if (payloads.length > 0) await client.query(prepared(NOTIFY_SQL, [payloads]));
}

/** How long after losing its connection the listener connects again. */
const RELISTEN_MS = 1000;

/**
 * LISTENs on its own connection (not the pool's); returns how to stop. A lost connection is
 * replaced by ONE new one a moment later, again until it listens; the worker's fallback poll
 * covers the notifications sent meanwhile.
 */
export async function listen(
  conn: QueueConnection,
  onWake: (queue: string | null) => void,
): Promise<() => Promise<void>> {
  let stopped = false;
  let client: pg.Client | undefined;
  let retry: NodeJS.Timeout | undefined;
  const ignore = () => undefined;
  const again = () => {
    if (stopped || conn.closed || retry !== undefined) return;
    retry = setTimeout(() => {
      retry = undefined;
      open().catch(again);
    }, RELISTEN_MS);
    retry.unref();
  };
  const open = async (): Promise<void> => {
    // Bounded like the pool's connections: a connect that hangs would stop listening for good.
    const next = new pg.Client({ connectionString: conn.url, connectionTimeoutMillis: 10_000 });
    let listening = false;
    next.on('notification', (message) => {
      if (message.channel !== QUEUE_CHANNEL) return;
      const payload = message.payload ?? '';
      if (payload === 'h') onWake(null);
      else if (payload.startsWith('q:')) onWake(payload.slice(2));
    });
    // A connection that dies while connecting or LISTENing both rejects below and emits 'error':
    // only one of the two may start the next attempt, or every such loss doubles the listeners.
    next.on('error', () => {
      if (!listening) return;
      listening = false;
      conn.listeners.delete(next);
      if (client === next) client = undefined;
      void next.end().catch(ignore);
      again();
    });
    try {
      await next.connect();
      await next.query(`LISTEN ${QUEUE_CHANNEL}`);
    } catch (error) {
      void next.end().catch(ignore);
      throw error;
    }
    if (stopped || conn.closed) {
      await next.end().catch(ignore);
      return;
    }
    listening = true;
    client = next;
    conn.listeners.add(next);
  };
  try {
    await open();
  } catch (error) {
    throw queueError(conn.location, 'cannot listen on', error);
  }
  return async () => {
    stopped = true;
    clearTimeout(retry);
    if (client) {
      conn.listeners.delete(client);
      await client.end().catch(ignore);
    }
  };
}
