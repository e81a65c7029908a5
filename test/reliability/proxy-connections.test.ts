// Item 14: connections dropped. The reference incremental pipeline runs in-process against
// PostgreSQL and Redis reached through TCP proxies that cut every connection, refuse new ones for a
// while (CI 3 s, full 30 s) in the middle of the drain, then blip a few times. Runs fail and are
// retried, the stream still drains, and the stores show 0 lost, 0 applied twice, nothing pending,
// every run terminal, with no unhandled rejection or uncaught exception in the process. Then one
// run of the real CLI with a blip in its middle: it exits 0 or 1 (never crashes) and a following
// run drains the rest.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import type { Plan } from '../../src/compile/plan.js';
import { createRun } from '../../src/engine/create-run.js';
import { executeRun } from '../../src/engine/execute-run.js';
import { closeOrganismConnections, emitInteractions } from '../../src/organism/index.js';
import { createDefaultRegistry } from '../../src/project/default-handlers.js';
import { loadPipelineText } from '../../src/project/load-pipeline.js';
import type { RunStore } from '../../src/store/run-store.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import {
  createTestDatabase,
  deleteKeys,
  randomSuffix,
  REDIS_URL,
  servicesAvailable,
} from '../organism/services.js';
import {
  deadLetteredIds,
  expectedGraph,
  graphViolations,
  groupViolations,
  pendingCount,
  sqliteStoreViolations,
} from './invariants.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';
import { count, isFullTier, seededRng } from './tier.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const WEFT_BIN = join(ROOT, 'bin', 'weft.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('tcp proxy', () => {
  let echo: Server;
  let echoPort: number;
  let proxy: TcpProxy;
  const sockets: Socket[] = [];

  beforeAll(async () => {
    echo = createServer((socket) => {
      sockets.push(socket);
      socket.on('error', () => undefined);
      socket.pipe(socket);
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    echoPort = (echo.address() as { port: number }).port;
    proxy = await startTcpProxy({ host: '127.0.0.1', port: echoPort });
  });

  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await proxy?.close();
    await new Promise((r) => echo?.close(r));
  });

  /** Connects through the proxy; resolves with what happened: the echo of `text`, or how it ended. */
  const exchange = (text: string) =>
    new Promise<{ echoed: string; ended: 'close' | 'error'; code?: string }>((done) => {
      const socket = connect({ host: '127.0.0.1', port: proxy.port });
      sockets.push(socket);
      let echoed = '';
      socket.on('data', (chunk: Buffer) => {
        echoed += chunk.toString();
        if (echoed === text) socket.end();
      });
      socket.on('error', (error: NodeJS.ErrnoException) => done({ echoed, ended: 'error', code: error.code! }));
      socket.on('close', () => done({ echoed, ended: 'close' }));
      socket.write(text);
    });

  it('forwards, cuts, refuses (reset and closed), heals on time, blips, and counts', async () => {
    expect(await exchange('hello')).toEqual({ echoed: 'hello', ended: 'close' });
    expect(proxy.stats.accepted).toBe(1);

    // An open connection is cut: the client sees its socket reset.
    const open = connect({ host: '127.0.0.1', port: proxy.port });
    sockets.push(open);
    const openEnded = new Promise<string>((done) => {
      open.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? 'error'));
      open.on('close', () => done('close'));
    });
    open.write('x');
    await until('the pair to open', () => proxy.stats.open === 1);
    expect(proxy.cutAll()).toBe(1);
    expect(await openEnded).toBe('ECONNRESET');
    expect(proxy.stats).toMatchObject({ cut: 1, open: 0, cuts: 1 });

    await proxy.refuse();
    expect(proxy.isRefusing).toBe(true);
    const reset = await exchange('no');
    expect(reset).toMatchObject({ echoed: '', ended: 'error', code: 'ECONNRESET' });
    expect(proxy.stats.refused).toBe(1);

    await proxy.refuse(undefined, 'closed');
    expect(await exchange('no')).toMatchObject({ echoed: '', ended: 'error', code: 'ECONNREFUSED' });
    await proxy.heal();
    expect(await exchange('again')).toEqual({ echoed: 'again', ended: 'close' });

    // A timed refusal heals by itself.
    const started = Date.now();
    await proxy.refuse(150, 'closed');
    expect((await exchange('no')).code).toBe('ECONNREFUSED');
    await until('the timed heal', () => !proxy.isRefusing);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(await exchange('healed')).toEqual({ echoed: 'healed', ended: 'close' });

    // A blip cuts what is open and accepts again at once, even while refusing.
    const second = connect({ host: '127.0.0.1', port: proxy.port });
    sockets.push(second);
    second.on('error', () => undefined);
    second.write('y');
    await until('the second pair', () => proxy.stats.open === 1);
    await proxy.refuse();
    expect(await proxy.blip()).toBe(1);
    expect(proxy.isRefusing).toBe(false);
    expect(await exchange('after blip')).toEqual({ echoed: 'after blip', ended: 'close' });
    expect(proxy.stats).toMatchObject({ accepted: 6, refused: 1, cut: 2, cuts: 2, open: 0 });
  });

  it('rewrites a URL to point at the proxy', () => {
    expect(proxy.url('postgres://postgres@127.0.0.1:5432/db_x?sslmode=disable')).toBe(
      `postgres://postgres@127.0.0.1:${proxy.port}/db_x?sslmode=disable`,
    );
    expect(proxy.url('redis://localhost:6379/2')).toBe(`redis://127.0.0.1:${proxy.port}/2`);
  });
});
