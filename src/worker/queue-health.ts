import type { QueueHealth, TaskQueue } from './queue-port.js';

export interface QueueProblem {
  queue: string;
  ready: number;
  message: string;
}

/**
 * Queues with tasks ready to run and no live worker to take them: what `weft serve` warns about
 * (a scheduler on PostgreSQL only enqueues; without `weft worker` processes nothing runs).
 */
export async function queueHealth(
  queue: TaskQueue,
): Promise<{ queues: QueueHealth[]; problems: QueueProblem[] }> {
  const queues = await queue.queueHealth();
  return { queues, problems: describeQueueHealth(queues) };
}

export function describeQueueHealth(queues: readonly QueueHealth[]): QueueProblem[] {
  return queues
    .filter((q) => q.workers === 0 && q.ready + q.delayed > 0)
    .map((q) => ({
      queue: q.queue,
      ready: q.ready,
      message: `queue "${q.queue}" has ${q.ready + q.delayed} task(s) waiting and no live worker: start one with \`weft worker --queue ${q.queue}\``,
    }));
}
