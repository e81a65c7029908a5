/**
 * A small TCP proxy for the reliability suite: clients connect to 127.0.0.1:<port> and every
 * connection is forwarded to a target host:port, so a test can cut, refuse and blip the network
 * between weft and PostgreSQL or Redis without touching the servers themselves.
 */
import { readFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * How new connections are turned away while refusing: `reset` accepts them and destroys them at
 * once with a TCP RST (the server process died); `closed` stops listening, so connecting fails
 * with ECONNREFUSED (the host is up, the service is not); `hangup` accepts them and closes them
 * a moment later (a load balancer with no healthy backend: the client sees "connected", then EOF).
 */
export type RefuseMode = 'reset' | 'closed' | 'hangup';

/** How long a `hangup` refusal keeps the accepted connection before closing it. */
const HANGUP_AFTER_MS = 20;

export interface ProxyStats {
  /** Connections forwarded to the target. */
  accepted: number;
  /** Connections accepted and turned away while refusing (`closed` never sees them). */
  refused: number;
  /** Connection pairs destroyed by cutAll/blip. */
  cut: number;
  /** Connection pairs open now. */
  open: number;
  /** Connections whose target side failed (the target refused or reset them). */
  targetErrors: number;
  /** Times cutAll was called (blips included). */
  cuts: number;
}

export interface TcpProxy {
  readonly host: string;
  readonly port: number;
  readonly target: { host: string; port: number };
  readonly stats: Readonly<ProxyStats>;
  readonly isRefusing: boolean;
  /** Destroys every open connection pair (both sides); returns how many. */
  cutAll(): number;
  /** Turns new connections away until heal(), or for `ms` when given. Open ones are left alone. */
  refuse(ms?: number, mode?: RefuseMode): Promise<void>;
  /** Accepts again (and cancels a pending timed heal). */
  heal(): Promise<void>;
  /** Cuts every open connection and accepts new ones at once. */
  blip(): Promise<number>;
  /** `url` with its host and port replaced by the proxy's. */
  url(url: string): string;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
}

/** The kernel's ephemeral port range (Linux), from which connect() and listen(0) take ports. */
function ephemeralPorts(): { low: number; high: number } | null {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    return low && high ? { low, high } : null;
  } catch {
    return null;
  }
}

export async function startTcpProxy(
  target: { host: string; port: number },
  options: { port?: number } = {},
): Promise<TcpProxy> {
  const host = '127.0.0.1';
  const pairs = new Set<Pair>();
  const stats: ProxyStats = { accepted: 0, refused: 0, cut: 0, open: 0, targetErrors: 0, cuts: 0 };
  let refusing: RefuseMode | null = null;
  let healTimer: NodeJS.Timeout | undefined;
  let server: Server | null = null;
  let closed = false;
  let healFailure: Error | undefined;

  const destroyPair = (pair: Pair) => {
    if (!pairs.delete(pair)) return;
    stats.open = pairs.size;
    pair.client.destroy();
    pair.upstream.destroy();
  };

  const onConnection = (client: Socket) => {
    // Every socket gets an error listener: an unhandled 'error' would crash the test process,
    // and the test is about weft's errors, not the proxy's.
    client.on('error', () => undefined);
    if (refusing !== null || closed) {
      stats.refused += 1;
      if (refusing === 'hangup') setTimeout(() => client.destroy(), HANGUP_AFTER_MS);
      else client.resetAndDestroy();
      return;
    }
    stats.accepted += 1;
    const upstream = connect({ host: target.host, port: target.port });
    upstream.setNoDelay(true);
    client.setNoDelay(true);
    const pair: Pair = { client, upstream };
    pairs.add(pair);
    stats.open = pairs.size;
    upstream.on('error', () => {
      stats.targetErrors += 1;
      destroyPair(pair);
    });
    client.on('close', () => destroyPair(pair));
    upstream.on('close', () => destroyPair(pair));
    // pipe() buffers what the client sends until the upstream connection is up.
    client.pipe(upstream);
    upstream.pipe(client);
  };

  const listen = (port: number) =>
    new Promise<Server>((resolve, reject) => {
      const next = createServer(onConnection);
      next.once('error', reject);
      next.listen(port, host, () => {
        next.off('error', reject);
        next.on('error', () => undefined);
        resolve(next);
      });
    });

  const stopListening = () =>
    new Promise<void>((resolve) => {
      const current = server;
      server = null;
      if (!current) return resolve();
      // close() stops accepting at once; its callback waits for open connections, which we don't.
      current.close();
      resolve();
    });

  /**
   * A `closed` refusal stops listening and heal() listens on the same port again. A port of the
   * ephemeral range may meanwhile become the local end of any new connection on the machine (another
   * test file's, or a client's reconnect to the proxy itself), and the heal would fail: so a random
   * free port below that range, where only an explicit bind can land.
   */
  const listenFirst = async (): Promise<Server> => {
    if (options.port !== undefined) return listen(options.port);
    const range = ephemeralPorts();
    const floor = 10_000;
    for (let tries = 0; range !== null && range.low > floor && tries < 20; tries++) {
      try {
        return await listen(floor + Math.floor(Math.random() * (range.low - floor)));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
      }
    }
    return listen(0);
  };
  server = await listenFirst();
  const port = (server.address() as { port: number }).port;

  const heal = async () => {
    clearTimeout(healTimer);
    healTimer = undefined;
    refusing = null;
    // The same port again: clients keep their URL. (Freed by our own close() a moment ago.)
    if (!server && !closed) server = await listen(port);
  };

  const cutAll = () => {
    stats.cuts += 1;
    const n = pairs.size;
    for (const pair of [...pairs]) {
      stats.cut += 1;
      // RST rather than FIN: an abrupt loss, as when a cable or a NAT entry goes.
      pair.client.resetAndDestroy();
      pair.upstream.resetAndDestroy();
      destroyPair(pair);
    }
    return n;
  };

  return {
    host,
    port,
    target,
    stats,
    get isRefusing() {
      return refusing !== null;
    },
    cutAll,
    async refuse(ms, mode = 'reset') {
      clearTimeout(healTimer);
      refusing = mode;
      if (mode === 'closed') await stopListening();
      // Re-listening can fail (someone took the port meanwhile): close() reports it, rather than
      // an unhandled rejection from a timer.
      if (ms !== undefined)
        healTimer = setTimeout(() => {
          heal().catch((error: unknown) => {
            healFailure = error instanceof Error ? error : new Error(String(error));
          });
        }, ms);
    },
    heal,
    async blip() {
      const n = cutAll();
      await heal();
      return n;
    },
    url(url) {
      const parsed = new URL(url);
      parsed.hostname = host;
      parsed.port = String(port);
      return parsed.toString();
    },
    async close() {
      closed = true;
      clearTimeout(healTimer);
      for (const pair of [...pairs]) destroyPair(pair);
      await stopListening();
      if (healFailure !== undefined) throw healFailure;
    },
  };
}
