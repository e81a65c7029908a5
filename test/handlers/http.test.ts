import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isNonRetryable } from '../../src/errors.js';
import { httpRequestHandler, type HttpRequestArgs } from '../../src/handlers/builtin/http-request.js';
import {
  buildWebhookPayload,
  notifyWebhookHandler,
  summarise,
  type NotifyWebhookArgs,
} from '../../src/handlers/builtin/notify-webhook.js';
import type { HookInfo } from '../../src/handlers/types.js';
import { createTestContext, type TestContext } from '../support/handler-context.js';

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

type Route = (req: Received, res: ServerResponse) => void;

let server: Server;
let base: string;
let received: Received[] = [];
let route: Route = (_req, res) => res.end();

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const entry = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
      received.push(entry);
      route(entry, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  received = [];
  route = (_req, res) => res.end();
});

function reply(status: number, body: string, contentType = 'text/plain'): Route {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': contentType, etag: '"v1"', 'x-other': 'dropped' });
    res.end(body);
  };
}

// The test server is on loopback, which the handlers refuse unless a task allows it.
const LOCAL = ['127.0.0.1'];

function request(args: HttpRequestArgs, test: TestContext = createTestContext()) {
  return Promise.resolve(httpRequestHandler.run({ allow_hosts: LOCAL, ...args }, test.ctx));
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  const outcome = await promise.then(
    () => null,
    (error: unknown) => error,
  );
  expect(outcome).toBeInstanceOf(Error);
  return outcome as Error;
}

describe('http.request', () => {
  it('GETs and parses a JSON answer, keeping a few headers', async () => {
    route = reply(200, '{"ok":true,"n":[1,2]}', 'application/json; charset=utf-8');
    const out = await request({ url: `${base}/items?x=1`, headers: { 'x-token': 'abc' } });
    expect(out).toEqual({
      status: 200,
      headers: { 'content-type': 'application/json; charset=utf-8', etag: '"v1"' },
      body: { ok: true, n: [1, 2] },
    });
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ method: 'GET', url: '/items?x=1', body: '' });
    expect(received[0]!.headers['x-token']).toBe('abc');
  });

  it('sends json as a JSON body with its content type, and body as is', async () => {
    route = reply(201, 'created');
    const out = await request({ url: `${base}/jobs`, method: 'POST', json: { date: '2024-01-01', n: 3 } });
    expect(out).toMatchObject({ status: 201, body: 'created' });
    expect(received[0]).toMatchObject({ method: 'POST', body: '{"date":"2024-01-01","n":3}' });
    expect(received[0]!.headers['content-type']).toBe('application/json');

    await request({
      url: `${base}/raw`,
      method: 'PUT',
      body: 'a=1',
      headers: { 'Content-Type': 'text/x-custom' },
    });
    expect(received[1]).toMatchObject({ method: 'PUT', body: 'a=1' });
    expect(received[1]!.headers['content-type']).toBe('text/x-custom');
  });

  it('reads the body as the response mode says', async () => {
    route = reply(200, '{"a":1}', 'text/plain');
    expect(await request({ url: base })).toMatchObject({ body: '{"a":1}' });
    expect(await request({ url: base, response: 'json' })).toMatchObject({ body: { a: 1 } });
    route = reply(200, '{"a":1}', 'application/json');
    expect(await request({ url: base, response: 'text' })).toMatchObject({ body: '{"a":1}' });
    route = reply(200, 'not json', 'application/json');
    expect(await request({ url: base })).toMatchObject({ body: 'not json' });
    const error = await failure(request({ url: base, response: 'json' }));
    expect(error.message).toMatch(/^GET http:\/\/127\.0\.0\.1:\d+\/: the response is not JSON/);
    route = (_req, res) => res.writeHead(204).end();
    expect(await request({ url: base, method: 'DELETE' })).toEqual({ status: 204, headers: {}, body: '' });
  });

  it('fails for good on a 4xx, naming the status and the start of the body', async () => {
    route = reply(404, 'no such\n  item');
    const error = await failure(request({ url: `${base}/missing?token=secret` }));
    expect(error.message).toMatch(
      /^GET http:\/\/127\.0\.0\.1:\d+\/missing\?… answered 404 Not Found: no such item$/,
    );
    expect(error.message).not.toContain('secret');
    expect(error.name).toBe('NonRetryableError');
    expect(isNonRetryable(error)).toBe(true);
  });

  it('fails retryably on 5xx, 408 and 429', async () => {
    for (const status of [500, 503, 408, 429]) {
      route = reply(status, '');
      const error = await failure(request({ url: base }));
      expect(error.message).toContain(`answered ${status}`);
      expect(isNonRetryable(error), String(status)).toBe(false);
    }
  });

  it('accepts the statuses in allow_status', async () => {
    route = reply(404, '{"found":false}', 'application/json');
    expect(await request({ url: base, allow_status: [404] })).toMatchObject({
      status: 404,
      body: { found: false },
    });
  });

  it('fails retryably on a network error', async () => {
    // A port nobody listens on: bind, learn the port, close.
    const spare = createServer();
    await new Promise<void>((resolve) => spare.listen(0, '127.0.0.1', resolve));
    const port = (spare.address() as AddressInfo).port;
    await new Promise((resolve) => spare.close(resolve));
    const error = await failure(request({ url: `http://127.0.0.1:${port}/` }));
    expect(error.message).toMatch(/^GET http:\/\/127\.0\.0\.1:\d+\/ failed: .*ECONNREFUSED/);
    expect(isNonRetryable(error)).toBe(false);
  });

  it('times out retryably, and rejects with the abort reason when the task is aborted', async () => {
    route = () => undefined; // never answers
    const slow = await failure(request({ url: base, timeout: '100ms' }));
    expect(slow.message).toMatch(/timed out after 100ms$/);
    expect(isNonRetryable(slow)).toBe(false);

    const test = createTestContext();
    const reason = new Error('task cancelled');
    const pending = request({ url: base }, test);
    setTimeout(() => test.abort(reason), 50);
    await expect(pending).rejects.toBe(reason);
  });

  it('refuses other schemes and json with body, for good, without sending', async () => {
    for (const args of [
      { url: 'file:///etc/passwd' },
      { url: 'ftp://example.test/x' },
      { url: 'not a url' },
      { url: base, method: 'POST', json: {}, body: 'x' },
      { url: base, method: 'GET', body: 'x' },
    ] as HttpRequestArgs[]) {
      const error = await failure(request(args));
      expect(isNonRetryable(error), JSON.stringify(args)).toBe(true);
    }
    expect(received).toHaveLength(0);
  });
});

const FAILURE_HOOK: HookInfo = {
  event: 'run_failure',
  task: 'load',
  error: { code: 'HANDLER_FAILED', message: 'connection refused <db>' },
  attempts: 4,
  runState: 'failed',
  consecutiveFailures: 1,
};

function hookContext(hook: HookInfo | undefined) {
  return createTestContext({
    pipeline: 'etl',
    task: 'notify',
    run: { id: 'r_01', scheduledFor: '2024-05-01T02:00:00.000Z' },
    ...(hook ? { hook } : {}),
  });
}

describe('notify.webhook', () => {
  function post(args: NotifyWebhookArgs, test: TestContext) {
    return Promise.resolve(notifyWebhookHandler.run({ allow_hosts: LOCAL, ...args }, test.ctx));
  }

  it('posts a Slack-compatible summary with structured fields when used as a hook', async () => {
    route = reply(200, 'ok');
    const out = await post({ url: `${base}/services/T/B/secret` }, hookContext(FAILURE_HOOK));
    expect(out).toEqual({ status: 200 });
    expect(received).toHaveLength(1);
    expect(received[0]!.method).toBe('POST');
    expect(received[0]!.url).toBe('/services/T/B/secret');
    expect(received[0]!.headers['content-type']).toBe('application/json');
    expect(JSON.parse(received[0]!.body)).toEqual({
      text: ':x: pipeline *etl* run r_01 failed: task "load" failed after 4 attempts: connection refused &lt;db&gt;',
      pipeline: 'etl',
      run_id: 'r_01',
      event: 'run_failure',
      state: 'failed',
      task: 'load',
      error: { code: 'HANDLER_FAILED', message: 'connection refused <db>' },
      attempts: 4,
      consecutive_failures: 1,
      scheduled_for: '2024-05-01T02:00:00.000Z',
    });
  });

  it('uses the given text and merges extra last', async () => {
    route = reply(200, 'ok');
    await post(
      { url: base, text: 'export done', extra: { channel: '#data', pipeline: 'renamed' } },
      hookContext(undefined),
    );
    expect(JSON.parse(received[0]!.body)).toMatchObject({
      text: 'export done',
      channel: '#data',
      pipeline: 'renamed',
      run_id: 'r_01',
      task: 'notify',
      event: null,
      error: null,
    });
  });

  it('fails on a non-2xx answer without showing the secret path', async () => {
    route = reply(404, 'no_team');
    const gone = await failure(post({ url: `${base}/services/secret-path` }, hookContext(FAILURE_HOOK)));
    expect(gone.message).toMatch(/^webhook POST http:\/\/127\.0\.0\.1:\d+ answered 404 Not Found: no_team$/);
    expect(isNonRetryable(gone)).toBe(true);
    route = reply(503, 'busy');
    const busy = await failure(post({ url: `${base}/services/secret-path` }, hookContext(FAILURE_HOOK)));
    expect(busy.message).not.toContain('secret-path');
    expect(isNonRetryable(busy)).toBe(false);
  });

  it('summarises each hook event in one readable line', () => {
    const line = (hook: Partial<HookInfo>) => summarise(hookContext({ ...FAILURE_HOOK, ...hook }).ctx);
    expect(line({ event: 'task_failure', runState: 'running', attempts: 1 })).toBe(
      ':x: pipeline *etl* run r_01: task "load" failed: connection refused &lt;db&gt;',
    );
    expect(
      line({
        task: null,
        error: { code: 'RUN_TIMEOUT', message: 'run timed out after 1h' },
        consecutiveFailures: 3,
      }),
    ).toBe(':x: pipeline *etl* run r_01 failed: run timed out after 1h (3rd failure in a row)');
    expect(
      line({ event: 'run_success', task: null, error: null, runState: 'succeeded', consecutiveFailures: 0 }),
    ).toBe(':white_check_mark: pipeline *etl* run r_01 succeeded');
    expect(
      line({ event: 'run_recovery', task: null, error: null, runState: 'succeeded', consecutiveFailures: 2 }),
    ).toBe(':large_green_circle: pipeline *etl* run r_01 succeeded again after 2 failed runs');
    expect(summarise(hookContext(undefined).ctx)).toBe(
      ':information_source: pipeline *etl* run r_01, task "notify"',
    );
  });

  it('quotes the rest of a multi-line error (a stderr tail) in a code block', () => {
    const hook = {
      ...FAILURE_HOOK,
      error: { code: 'HANDLER_FAILED', message: 'command exited with code 2\nline a\nline b' },
    };
    expect(summarise(hookContext(hook).ctx)).toBe(
      ':x: pipeline *etl* run r_01 failed: task "load" failed after 4 attempts: command exited with code 2\n```\nline a\nline b\n```',
    );
    expect(buildWebhookPayload(hookContext(hook).ctx).error).toEqual(hook.error);
  });
});
