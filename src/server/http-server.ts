import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RunStore } from '../store/run-store.js';
import { ApiError, notFound, toApiError } from './api-error.js';
import { isAuthorized } from './auth.js';
import { checkBindSecurity, isLoopbackHost } from './bind-security.js';
import type { ServerContext, ServerLogger } from './context.js';
import type { StreamRegistry } from './log-stream.js';
import type { PipelineEntry, SchedulerView } from './pipelines.js';
import { errorReply, sendReply, setSecurityHeaders } from './reply.js';
import { compilePattern, parsePath } from './router.js';
import { ROUTES, type Route } from './routes.js';

export interface HttpServerOptions {
  store: RunStore;
  /** The pipelines as they are now (called on every request, so a reload shows at once). */
  pipelines: () => readonly PipelineEntry[];
  scheduler?: SchedulerView;
  /** Required by every route but /healthz, as `Authorization: Bearer <token>`. */
  token?: string;
  /** Default Date.now. */
  now?: () => number;
  /** Default: errors to stderr. */
  logger?: ServerLogger;
  /** Where the values of a pipeline's `secrets:` are read from, to mask them. Default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Recent runs /metrics is computed from. Default 500. */
  metricsWindow?: number;
  /** How often a log stream polls the store. Default 250 ms. */
  streamPollMs?: number;
}

export interface HttpServer {
  /** Refuses (UsageError) a non-loopback host without a token; resolves with the URL it serves. */
  listen(port: number, host: string): Promise<{ url: string }>;
  /** Stops accepting, ends open log streams and connections. */
  close(): Promise<void>;
  /** For tests and for embedding in another server. */
  readonly handle: (req: IncomingMessage, res: ServerResponse) => void;
}

const defaultLogger: ServerLogger = {
  error(message, error) {
    process.stderr.write(
      `weft serve: ${message}${error instanceof Error ? `: ${error.stack ?? error.message}` : ''}\n`,
    );
  },
};

interface CompiledRoute {
  route: Route;
  match: ReturnType<typeof compilePattern>;
}

/** The dashboard and JSON API over `node:http`, with no framework. */
export function createHttpServer(options: HttpServerOptions): HttpServer {
  const token = options.token && options.token.length > 0 ? options.token : undefined;
  const ctx: ServerContext = {
    store: options.store,
    pipelines: options.pipelines,
    scheduler: options.scheduler,
    now: options.now ?? Date.now,
    env: options.env ?? process.env,
    logger: options.logger ?? defaultLogger,
    metricsWindow: options.metricsWindow ?? 500,
    streamPollMs: options.streamPollMs ?? 250,
  };
  const routes: CompiledRoute[] = ROUTES.map((route) => ({ route, match: compilePattern(route.pattern) }));
  const streams: StreamRegistry = new Set();
  let server: Server | undefined;

  async function dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    setSecurityHeaders(res);
    const method = (req.method ?? 'GET').toUpperCase();
    const target = req.url ?? '/';
    if (!target.startsWith('/')) throw new ApiError(400, 'BAD_REQUEST', 'the request target must be a path');
    const queryAt = target.indexOf('?');
    const rawPath = queryAt === -1 ? target : target.slice(0, queryAt);
    const search = new URLSearchParams(queryAt === -1 ? '' : target.slice(queryAt + 1));
    const segments = parsePath(rawPath);
    let params: Record<string, string> | null = null;
    let found: Route | undefined;
    const allowed: string[] = [];
    for (const { route, match } of routes) {
      const m = match(segments);
      if (!m) continue;
      allowed.push(route.method);
      if (route.method === method || (method === 'HEAD' && route.method === 'GET')) {
        found = route;
        params = m;
      }
    }
    if (!found || !params) {
      if (allowed.length > 0) {
        res.setHeader('Allow', [...new Set(allowed)].join(', '));
        throw new ApiError(
          405,
          'METHOD_NOT_ALLOWED',
          `${method} is not allowed here (allowed: ${allowed.join(', ')})`,
        );
      }
      throw notFound();
    }
    if (!token) {
      // Without a token the server is bound to loopback; a foreign Host header means DNS rebinding.
      const host = (req.headers.host ?? '').replace(/:\d+$/, '');
      if (host !== '' && !isLoopbackHost(host)) {
        throw new ApiError(
          403,
          'FORBIDDEN',
          'this server answers only to localhost names; set a token to serve other hosts',
        );
      }
    }
    if (found.auth === 'token' && token && !isAuthorized(req.headers.authorization, token)) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="weft"');
      throw new ApiError(
        401,
        'UNAUTHORIZED',
        'missing or wrong API token (send Authorization: Bearer <token>)',
      );
    }
    const reply = await found.handler({
      ctx,
      req,
      res,
      params,
      search,
      streams,
      tokenRequired: token !== undefined,
    });
    sendReply(res, reply, method === 'HEAD');
  }

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    dispatch(req, res).catch((caught: unknown) => {
      const { error, unexpected } = toApiError(caught);
      if (unexpected) ctx.logger.error(`${req.method ?? '?'} ${req.url ?? '?'} failed`, caught);
      if (res.headersSent) {
        res.end();
        return;
      }
      sendReply(res, errorReply(error), req.method === 'HEAD');
    });
  };

  return {
    handle,
    async listen(port, host) {
      checkBindSecurity(host, token);
      if (server) throw new Error('the server is listening already');
      const s = createServer(handle);
      server = s;
      return new Promise<{ url: string }>((resolve, reject) => {
        s.once('error', (error) => {
          server = undefined;
          reject(error);
        });
        s.listen(port, host, () => {
          s.removeAllListeners('error');
          const address = s.address() as AddressInfo;
          const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
          resolve({ url: `http://${shown}:${address.port}` });
        });
      });
    },
    async close() {
      const s = server;
      server = undefined;
      for (const stream of streams) stream.abort();
      if (!s) return;
      await new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeIdleConnections();
        // Streams end on their own once aborted; anything still open after that is cut.
        setTimeout(() => s.closeAllConnections(), 100).unref();
      });
    },
  };
}
