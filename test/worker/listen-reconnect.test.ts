import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { createPostgresTaskQueue } from '../../src/store/postgres/queue.js';
import { useTestDatabase, waitFor } from './pg-support.js';

/**
 * The queue's LISTEN connection, lost, is replaced by exactly one new one — also when the loss
 * hits while the new one is sending LISTEN (pg then both rejects the query and emits 'error';
 * each used to start a reconnection, so every such loss doubled the listeners and the wakes).
 */
const db = await useTestDatabase('test/worker/listen-reconnect.test.ts');

/** A proxy to PostgreSQL that can cut every connection, and reset the next ones that LISTEN. */
async function startProxy(target: URL) {
  const sockets = new Set<Socket>();
  let resetListens = 0;
  const server: Server = createServer((client) => {
    const upstream = connect({ host: target.hostname, port: Number(target.port || 5432) });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    upstream.pipe(client);
    client.on('data', (chunk: Buffer) => {
      if (resetListens > 0 && chunk.includes('LISTEN weft_queue')) {
        resetListens -= 1;
        client.resetAndDestroy();
        return;
      }
      upstream.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(db.url());
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as { port: number }).port);
  return {
    url: url.toString(),
    /** Cuts every connection; the next `n` that send LISTEN are reset right then. */
    cut(n: number) {
      resetListens = n;
      for (const socket of sockets) socket.resetAndDestroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

const listeners = async () =>
  (
    await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE datname = current_database() AND query = 'LISTEN weft_queue'`,
    )
  )[0]!.n;

describe.skipIf(!db.available)('LISTEN after a lost connection', () => {
  let proxy: Awaited<ReturnType<typeof startProxy>> | undefined;
  afterAll(async () => {
    await proxy?.close();
  });

  it('listens again on one connection, even when the loss hits its LISTEN', async () => {
    await db.openQueue(); // migrates, directly
    proxy = await startProxy(new URL(db.url()));
    const proxied = await createPostgresTaskQueue(proxy.url, { migrate: false, poolSize: 1 });
    const wakes: (string | null)[] = [];
    const stop = await proxied.listen((queueName) => wakes.push(queueName));
    try {
      expect(await listeners()).toBe(1);
      // Lost, and the first two attempts to listen again die in their LISTEN.
      proxy.cut(2);
      await waitFor(async () => (await listeners()) === 0, 5000, 'the listener to be gone');
      await waitFor(async () => (await listeners()) > 0, 10_000, 'listening again');
      // Give a doubled reconnection the time to show (it would listen a second later).
      await new Promise((resolve) => setTimeout(resolve, 2500));
      expect(await listeners()).toBe(1);
      // One notification, one wake.
      await db.query(`SELECT pg_notify('weft_queue', 'q:reconnected')`);
      await waitFor(() => Promise.resolve(wakes.length > 0), 5000, 'the wake');
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(wakes).toEqual(['reconnected']);
    } finally {
      await stop();
      await proxied.close();
    }
    expect(await listeners()).toBe(0);
  }, 30_000);
});
