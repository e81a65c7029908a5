import type { QueueHealth, WorkerInfo } from '../../../worker/queue-port.js';
import type { QueueConnection } from './connection.js';

/** Workers whose heartbeat is older than this count as gone in queueHealth. */
const LIVE_WORKER_MS = 30_000;

const REGISTER_WORKER_SQL = `
INSERT INTO queue_workers (id, queues, concurrency, host, pid) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (id) DO UPDATE SET queues = EXCLUDED.queues, concurrency = EXCLUDED.concurrency, heartbeat_at = now()`;

const UNREGISTER_WORKER_SQL = `DELETE FROM queue_workers WHERE id = $1`;

/** $1: how recent a worker's heartbeat must be to count as alive (ms). */
const QUEUE_HEALTH_SQL = `
WITH q AS (
  SELECT queue,
         count(*) FILTER (WHERE state = 'ready' AND available_at <= now()) AS ready,
         count(*) FILTER (WHERE state = 'ready' AND available_at > now()) AS delayed,
         count(*) FILTER (WHERE state = 'leased') AS running
  FROM queue_tasks GROUP BY queue
), w AS (
  SELECT unnest(queues) AS queue, count(*) AS workers FROM queue_workers
  WHERE heartbeat_at > now() - $1 * interval '1 millisecond' GROUP BY 1
)
SELECT COALESCE(q.queue, w.queue) AS queue, COALESCE(q.ready, 0) AS ready, COALESCE(q.delayed, 0) AS delayed,
       COALESCE(q.running, 0) AS running, COALESCE(w.workers, 0) AS workers
FROM q FULL JOIN w ON w.queue = q.queue
ORDER BY 1`;

export async function registerWorker(conn: QueueConnection, info: WorkerInfo): Promise<void> {
  await conn.query(REGISTER_WORKER_SQL, [info.id, [...info.queues], info.concurrency, info.host, info.pid]);
}

export async function unregisterWorker(conn: QueueConnection, workerId: string): Promise<void> {
  await conn.query(UNREGISTER_WORKER_SQL, [workerId]);
}

/** Per queue: tasks ready, delayed and running, and the live workers that serve it. */
export async function queueHealth(conn: QueueConnection): Promise<QueueHealth[]> {
  const rows = await conn.query<QueueHealth>(QUEUE_HEALTH_SQL, [LIVE_WORKER_MS]);
  return rows.map((r) => ({
    queue: r.queue,
    ready: Number(r.ready),
    delayed: Number(r.delayed),
    running: Number(r.running),
    workers: Number(r.workers),
  }));
}
