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

/** LISTENs on its own connection (not the pool's); returns how to stop. */
export async function listen(
  conn: QueueConnection,
  onWake: (queue: string | null) => void,
): Promise<() => Promise<void>> {
  let stopped = false;
  let client: pg.Client | undefined;
  let retry: NodeJS.Timeout | undefined;
  const connect = async (): Promise<void> => {
    const next = new pg.Client({ connectionString: conn.url });
    next.on('notification', (message) => {
      if (message.channel !== QUEUE_CHANNEL) return;
      const payload = message.payload ?? '';
      if (payload === 'h') onWake(null);
      else if (payload.startsWith('q:')) onWake(payload.slice(2));
    });
    // A lost connection: listen again shortly; the worker's fallback poll covers the gap.
    const lost = () => {
      conn.listeners.delete(next);
      next.removeAllListeners('error');
      next.on('error', () => undefined);
      void next.end().catch(() => undefined);
      if (stopped || conn.closed) return;
      retry = setTimeout(() => void connect().catch(lost), 1000);
      retry.unref();
    };
    next.on('error', lost);
    await next.connect();
    await next.query(`LISTEN ${QUEUE_CHANNEL}`);
    client = next;
    conn.listeners.add(next);
  };
  try {
    await connect();
  } catch (error) {
    throw queueError(conn.location, 'cannot listen on', error);
  }
  return async () => {
    stopped = true;
    clearTimeout(retry);
    if (client) {
      conn.listeners.delete(client);
      await client.end().catch(() => undefined);
    }
  };
}
