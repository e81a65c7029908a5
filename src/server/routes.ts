import type { IncomingMessage, ServerResponse } from 'node:http';
import { dictFromEntries, isPlainObject, type JsonValue } from '../core/json.js';
import { RUN_STATES, isRunFinished, type RunState } from '../core/states.js';
import { prepareResume, requestCancel } from '../engine/index.js';
import { resolveParams } from '../pipeline/params.js';
import { requestRun } from '../schedule/request-run.js';
import { ApiError, badRequest, notFound } from './api-error.js';
import { APP_JS } from './assets/app-js.js';
import { STYLES_CSS } from './assets/styles-css.js';
import type { ServerContext } from './context.js';
import type { StreamRegistry } from './log-stream.js';
import { streamLogs } from './log-stream.js';
import { maskerFor, maskJson } from './mask-json.js';
import { collectMetrics, renderMetrics } from './metrics.js';
import { findPipeline } from './pipelines.js';
import {
  listPipelines,
  logsJson,
  pipelineDetail,
  requestJson,
  requirePipeline,
  requireRun,
  runDetail,
  runJson,
} from './queries.js';
import { html } from './html.js';
import { htmlReply, json, readJsonBody, type Reply } from './reply.js';
import { readInteger, readQuery } from './router.js';
import { renderHomeView, renderPipelineView, renderRunView, type ViewQuery } from './views/pages.js';
import { renderShell } from './views/shell.js';

export type Access = 'public' | 'token';
export type Method = 'GET' | 'POST';

export interface RouteRequest {
  ctx: ServerContext;
  req: IncomingMessage;
  res: ServerResponse;
  params: Record<string, string>;
  search: URLSearchParams;
  streams: StreamRegistry;
  /** Whether the server has a token: pages then ship without data (the JS fetches it with the token). */
  tokenRequired: boolean;
}

export interface Route {
  method: Method;
  /** Segments; `:name` matches one decoded segment. */
  pattern: string;
  /**
   * IMPORTANT: every route states its access rule here, and only here. `public` routes must
   * never return run data: the health check, static assets and the empty page shells.
   */
  auth: Access;
  handler: (r: RouteRequest) => Promise<Reply>;
}

const RUN_LIST_MAX = 200;
const LOG_LIST_MAX = 5000;

function pageShell(view: (r: RouteRequest) => Promise<Reply>, fragment: (r: RouteRequest) => string) {
  return async (r: RouteRequest): Promise<Reply> => {
    const fragmentUrl = fragment(r);
    // Without a token the page is rendered in full here; with one, the shell holds no data and
    // its script fetches the same fragment with the Authorization header.
    if (r.tokenRequired) return htmlReply(renderShell({ fragmentUrl, content: null }));
    try {
      const reply = await view(r);
      return htmlReply(renderShell({ fragmentUrl, content: reply.kind === 'html' ? reply.body : null }));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      const message = html`<p class="notice error">${error.message}</p>`.value;
      return htmlReply(renderShell({ fragmentUrl: null, content: message }), error.status);
    }
  };
}

function withSearch(path: string, search: URLSearchParams): string {
  const text = search.toString();
  return text ? `${path}?${text}` : path;
}

function encodeSegment(s: string): string {
  return encodeURIComponent(s);
}

function viewQuery(search: URLSearchParams): ViewQuery {
  const query = readQuery(search, ['pipeline', 'state', 'offset']);
  const state = query.state;
  if (state && !(RUN_STATES as readonly string[]).includes(state))
    throw badRequest(`unknown run state "${state}"`);
  return {
    pipeline: query.pipeline || undefined,
    state: (state || undefined) as RunState | undefined,
    offset: readInteger(query, 'offset', { min: 0, max: 1_000_000, fallback: 0 }),
  };
}

async function runsPage(ctx: ServerContext, search: URLSearchParams) {
  const query = readQuery(search, ['pipeline', 'state', 'limit', 'offset']);
  const states = (query.state ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const state of states) {
    if (!(RUN_STATES as readonly string[]).includes(state)) {
      throw badRequest(`unknown run state "${state}" (one of: ${RUN_STATES.join(', ')})`);
    }
  }
  const limit = readInteger(query, 'limit', { min: 1, max: RUN_LIST_MAX, fallback: 50 });
  const offset = readInteger(query, 'offset', { min: 0, max: 1_000_000_000, fallback: 0 });
  const runs = await ctx.store.listRuns({
    ...(query.pipeline ? { pipeline: query.pipeline } : {}),
    ...(states.length > 0 ? { states: states as RunState[] } : {}),
    limit: limit + 1,
    offset,
  });
  const page = runs.slice(0, limit);
  return {
    runs: page.map((run) => runJson(ctx, run)),
    limit,
    offset,
    next_offset: runs.length > limit ? offset + limit : null,
  };
}

function noQuery(search: URLSearchParams): void {
  readQuery(search, []);
}

async function postRun(r: RouteRequest): Promise<Reply> {
  noQuery(r.search);
  const entry = requirePipeline(r.ctx, r.params.name!);
  const body = await readJsonBody(r.req);
  if (!isPlainObject(body)) throw badRequest('the request body must be a JSON object like {"params": {...}}');
  for (const key of Object.keys(body)) {
    if (key !== 'params') throw badRequest(`unknown field "${key}" in the request body (expected: params)`);
  }
  const given = body.params ?? {};
  if (!isPlainObject(given)) throw badRequest('"params" must be a JSON object');
  if (!entry.plan) {
    const first = entry.diagnostics.find((d) => d.severity === 'error');
    throw new ApiError(
      409,
      'PIPELINE_INVALID',
      `pipeline "${entry.name}" has errors and cannot run${first ? `: ${first.file}:${first.line}:${first.column} ${first.message}` : ''}`,
    );
  }
  const resolved = resolveParams(
    entry.plan.params,
    dictFromEntries(Object.entries(given as Record<string, JsonValue>)),
    'json',
  );
  if (resolved.errors.length > 0) {
    throw new ApiError(400, 'PARAM_INVALID', resolved.errors[0]!, resolved.errors);
  }
  const now = r.ctx.now();
  const request = await requestRun(r.ctx.store, {
    plan: entry.plan,
    params: resolved.params,
    env: r.ctx.env,
    now,
  });
  const masker = maskerFor(entry.plan, r.ctx.env);
  return json(
    { request: maskJson(requestJson(request), masker), links: { request: `/api/requests/${request.id}` } },
    202,
  );
}

async function cancelRun(r: RouteRequest): Promise<Reply> {
  noQuery(r.search);
  await readJsonBody(r.req);
  const run = await requireRun(r.ctx, r.params.id!);
  if (isRunFinished(run.state)) {
    throw new ApiError(409, 'RUN_STATE', `run ${run.id} is ${run.state} already`);
  }
  const after = await requestCancel(r.ctx.store, run.id, { now: r.ctx.now() });
  return json({ run: runJson(r.ctx, after) }, 202);
}

async function resumeRun(r: RouteRequest): Promise<Reply> {
  noQuery(r.search);
  const body = await readJsonBody(r.req);
  if (!isPlainObject(body)) throw badRequest('the request body must be a JSON object');
  for (const key of Object.keys(body)) {
    if (key !== 'task') throw badRequest(`unknown field "${key}" in the request body (expected: task)`);
  }
  if (body.task !== undefined && typeof body.task !== 'string') throw badRequest('"task" must be a string');
  const run = await requireRun(r.ctx, r.params.id!);
  if (run.state !== 'failed' && run.state !== 'cancelled' && run.state !== 'interrupted') {
    throw new ApiError(
      409,
      'RUN_STATE',
      `run ${run.id} is ${run.state}; only failed, cancelled or interrupted runs can be resumed`,
    );
  }
  const scheduler = r.ctx.scheduler;
  if (!scheduler?.resumeRun) {
    // Checked before prepareResume: a run put back in `queued` that nobody executes would look stuck.
    throw new ApiError(
      503,
      'SERVICE_UNAVAILABLE',
      'no scheduler runs in this server to execute a resumed run; use `weft resume`',
    );
  }
  const ready = await prepareResume(r.ctx.store, run.id, {
    now: r.ctx.now(),
    env: r.ctx.env,
    ...(typeof body.task === 'string' ? { task: body.task } : {}),
  });
  await scheduler.resumeRun(ready.id);
  return json({ run: runJson(r.ctx, ready) }, 202);
}

async function getLogs(r: RouteRequest): Promise<Reply> {
  const query = readQuery(r.search, ['task', 'after', 'limit']);
  const run = await requireRun(r.ctx, r.params.id!);
  const task = taskFilter(run.plan.tasks, query.task);
  const after = readInteger(query, 'after', { min: 0, max: Number.MAX_SAFE_INTEGER, fallback: 0 });
  const limit = readInteger(query, 'limit', { min: 1, max: LOG_LIST_MAX, fallback: 1000 });
  const lines = await r.ctx.store.getLogs(run.id, {
    afterSeq: after,
    limit,
    ...(task === undefined ? {} : { task }),
  });
  const out = logsJson(run, lines, r.ctx);
  return json({
    run_id: run.id,
    run_state: run.state,
    lines: out,
    next_after: out.length > 0 ? out[out.length - 1]!.seq : after,
    more: lines.length === limit,
  });
}

function taskFilter(tasks: Record<string, unknown>, task: string | undefined): string | undefined {
  if (task === undefined || task === '') return undefined;
  if (!Object.hasOwn(tasks, task)) throw notFound(`the run has no task named "${task}"`);
  return task;
}

async function streamRunLogs(r: RouteRequest): Promise<Reply> {
  const query = readQuery(r.search, ['task', 'after']);
  const run = await requireRun(r.ctx, r.params.id!);
  const task = taskFilter(run.plan.tasks, query.task);
  const lastEventId = r.req.headers['last-event-id'];
  const fromHeader =
    typeof lastEventId === 'string' && /^\d+$/.test(lastEventId) ? Number(lastEventId) : undefined;
  const after =
    fromHeader ?? readInteger(query, 'after', { min: 0, max: Number.MAX_SAFE_INTEGER, fallback: 0 });
  await streamLogs(r.ctx, r.streams, r.req, r.res, run, {
    afterSeq: after,
    ...(task === undefined ? {} : { task }),
  });
  return { kind: 'streamed' };
}

/**
 * The one route table. Order does not matter (patterns never overlap); a test enumerates it and
 * checks that each route has an access rule and that token routes refuse a missing token.
 */
export const ROUTES: readonly Route[] = [
  {
    method: 'GET',
    pattern: '/healthz',
    auth: 'public',
    handler: (r) => {
      noQuery(r.search);
      return Promise.resolve(json({ ok: true, store: r.ctx.store.kind }));
    },
  },
  {
    method: 'GET',
    pattern: '/metrics',
    auth: 'token',
    handler: async (r) => {
      noQuery(r.search);
      const body = renderMetrics(await collectMetrics(r.ctx.store, r.ctx.metricsWindow));
      return { kind: 'text', status: 200, body, contentType: 'text/plain; version=0.0.4; charset=utf-8' };
    },
  },
  {
    method: 'GET',
    pattern: '/api/pipelines',
    auth: 'token',
    handler: async (r) => {
      noQuery(r.search);
      return json({ pipelines: await listPipelines(r.ctx) });
    },
  },
  {
    method: 'GET',
    pattern: '/api/pipelines/:name',
    auth: 'token',
    handler: async (r) => {
      noQuery(r.search);
      return json({ pipeline: await pipelineDetail(r.ctx, r.params.name!) });
    },
  },
  { method: 'POST', pattern: '/api/pipelines/:name/runs', auth: 'token', handler: postRun },
  {
    method: 'GET',
    pattern: '/api/requests/:id',
    auth: 'token',
    handler: async (r) => {
      noQuery(r.search);
      const request = await r.ctx.store.getRunRequest(r.params.id!);
      if (!request) throw notFound(`no run request with id ${r.params.id!}`);
      const plan = findPipeline(r.ctx.pipelines(), request.pipeline)?.plan ?? null;
      return json({ request: maskJson(requestJson(request), maskerFor(plan, r.ctx.env)) });
    },
  },
  {
    method: 'GET',
    pattern: '/api/runs',
    auth: 'token',
    handler: async (r) => json(await runsPage(r.ctx, r.search)),
  },
  {
    method: 'GET',
    pattern: '/api/runs/:id',
    auth: 'token',
    handler: async (r) => {
      noQuery(r.search);
      return json(await runDetail(r.ctx, await requireRun(r.ctx, r.params.id!)));
    },
  },
  { method: 'GET', pattern: '/api/runs/:id/logs', auth: 'token', handler: getLogs },
  { method: 'GET', pattern: '/api/runs/:id/logs/stream', auth: 'token', handler: streamRunLogs },
  { method: 'POST', pattern: '/api/runs/:id/cancel', auth: 'token', handler: cancelRun },
  { method: 'POST', pattern: '/api/runs/:id/resume', auth: 'token', handler: resumeRun },

  // Pages: shells are public (no data unless no token is configured), fragments carry the data.
  {
    method: 'GET',
    pattern: '/',
    auth: 'public',
    handler: pageShell(
      (r) => renderHomeView(r.ctx, viewQuery(r.search)),
      (r) => withSearch('/ui/home', r.search),
    ),
  },
  {
    method: 'GET',
    pattern: '/pipelines/:name',
    auth: 'public',
    handler: pageShell(
      (r) => {
        noQuery(r.search);
        return renderPipelineView(r.ctx, r.params.name!);
      },
      (r) => `/ui/pipelines/${encodeSegment(r.params.name!)}`,
    ),
  },
  {
    method: 'GET',
    pattern: '/runs/:id',
    auth: 'public',
    handler: pageShell(
      (r) => {
        noQuery(r.search);
        return renderRunView(r.ctx, r.params.id!);
      },
      (r) => `/ui/runs/${encodeSegment(r.params.id!)}`,
    ),
  },
  {
    method: 'GET',
    pattern: '/ui/home',
    auth: 'token',
    handler: (r) => renderHomeView(r.ctx, viewQuery(r.search)),
  },
  {
    method: 'GET',
    pattern: '/ui/pipelines/:name',
    auth: 'token',
    handler: (r) => {
      noQuery(r.search);
      return renderPipelineView(r.ctx, r.params.name!);
    },
  },
  {
    method: 'GET',
    pattern: '/ui/runs/:id',
    auth: 'token',
    handler: (r) => {
      noQuery(r.search);
      return renderRunView(r.ctx, r.params.id!);
    },
  },
  {
    method: 'GET',
    pattern: '/assets/app.js',
    auth: 'public',
    handler: () =>
      Promise.resolve({
        kind: 'text',
        status: 200,
        body: APP_JS,
        contentType: 'text/javascript; charset=utf-8',
      }),
  },
  {
    method: 'GET',
    pattern: '/favicon.ico',
    auth: 'public',
    // Browsers ask for it on every page; an empty answer keeps their consoles free of 404s.
    handler: () => Promise.resolve({ kind: 'text', status: 204, body: '', contentType: 'image/x-icon' }),
  },
  {
    method: 'GET',
    pattern: '/assets/app.css',
    auth: 'public',
    handler: () =>
      Promise.resolve({
        kind: 'text',
        status: 200,
        body: STYLES_CSS,
        contentType: 'text/css; charset=utf-8',
      }),
  },
];
