import type { IncomingMessage, ServerResponse } from 'node:http';
import { isRunFinished } from '../core/states.js';
import type { RunRecord } from '../store/run-store.js';
import type { ServerContext } from './context.js';
import { logsJson } from './queries.js';

/** Streams that are open, so that closing the server ends them instead of waiting for them. */
export type StreamRegistry = Set<AbortController>;

const KEEPALIVE_MS = 15_000;
const BATCH = 1000;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Server-sent events following a run's log: `event: log` per line (its `id` is the line's seq,
 * so a reconnecting client resumes with Last-Event-ID), then `event: end` with the run's state
 * once the run is finished (or interrupted) and every line has been sent.
 */
export async function streamLogs(
  ctx: ServerContext,
  streams: StreamRegistry,
  req: IncomingMessage,
  res: ServerResponse,
  run: RunRecord,
  options: { task?: string; afterSeq: number },
): Promise<void> {
  const controller = new AbortController();
  streams.add(controller);
  const stop = () => controller.abort();
  req.on('close', stop);
  res.on('close', stop);
  res.statusCode = 200;
  res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
  res.setHeader('Connection', 'keep-alive');
  res.setHeader('X-Accel-Buffering', 'no');
  res.flushHeaders();
  res.write('retry: 2000\n\n');
  let afterSeq = options.afterSeq;
  let lastWrite = Date.now();
  const send = async (): Promise<void> => {
    for (;;) {
      const lines = await ctx.store.getLogs(run.id, {
        afterSeq,
        limit: BATCH,
        ...(options.task === undefined ? {} : { task: options.task }),
      });
      for (const line of logsJson(run, lines, ctx)) {
        res.write(`id: ${line.seq}\nevent: log\ndata: ${JSON.stringify(line)}\n\n`);
        afterSeq = Math.max(afterSeq, line.seq);
        lastWrite = Date.now();
      }
      if (lines.length < BATCH) return;
    }
  };
  try {
    while (!controller.signal.aborted) {
      const current = await ctx.store.getRun(run.id);
      await send();
      if (!current || isRunFinished(current.state) || current.state === 'interrupted') {
        // Lines written between the state read and the last fetch were sent by send() above.
        res.write(
          `event: end\ndata: ${JSON.stringify({ state: current?.state ?? null, last_seq: afterSeq })}\n\n`,
        );
        break;
      }
      if (Date.now() - lastWrite > KEEPALIVE_MS) {
        res.write(': keep-alive\n\n');
        lastWrite = Date.now();
      }
      await sleep(ctx.streamPollMs, controller.signal);
    }
  } finally {
    streams.delete(controller);
    req.off('close', stop);
    res.end();
  }
}
