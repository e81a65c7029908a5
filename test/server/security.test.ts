import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeftError } from '../../src/errors.js';
import type { Scheduler } from '../../src/schedule/scheduler.js';
import type { SchedulerView } from '../../src/server/index.js';
import { checkBindSecurity, createHttpServer, isLoopbackHost, ROUTES } from '../../src/server/index.js';
import { compilePattern, parsePath } from '../../src/server/router.js';
import { memoryFixture, serve, XSS, type Fixture, type Served } from './fixture.js';

const TOKEN = 'test-token-0123456789abcdef';

describe('the route table', () => {
  it('gives every route an explicit access rule, and only health, assets and page shells are public', () => {
    expect(ROUTES.length).toBeGreaterThan(10);
    for (const route of ROUTES) {
      expect(['public', 'token'], `${route.method} ${route.pattern}`).toContain(route.auth);
    }
    const publicRoutes = ROUTES.filter((r) => r.auth === 'public').map((r) => `${r.method} ${r.pattern}`);
    expect(publicRoutes.sort()).toEqual(
      [
        'GET /',
        'GET /assets/app.css',
        'GET /assets/app.js',
        'GET /favicon.ico',
        'GET /healthz',
        'GET /pipelines/:name',
        'GET /runs/:id',
      ].sort(),
    );
    for (const route of ROUTES) {
      if (
        route.pattern.startsWith('/api/') ||
        route.pattern.startsWith('/ui/') ||
        route.pattern === '/metrics'
      ) {
        expect(route.auth, route.pattern).toBe('token');
      }
    }
  });

  it('has no two routes that match the same method and path', () => {
    const seen = new Set<string>();
    for (const route of ROUTES) {
      const key = `${route.method} ${route.pattern.replace(/:\w+/g, ':')}`;
      expect(seen.has(key), key).toBe(false);
      seen.add(key);
    }
  });
});

describe('wiring', () => {
  it('takes the scheduler of `weft serve` as it is (type-level: this file would not compile otherwise)', () => {
    const fits: Scheduler extends SchedulerView ? true : false = true;
    expect(fits).toBe(true);
  });
});

describe('paths', () => {
  it('decodes each segment once and refuses what could change meaning', () => {
    expect(parsePath('/api/runs/a%20b')).toEqual(['api', 'runs', 'a b']);
    expect(parsePath('/api/runs/%2525')).toEqual(['api', 'runs', '%25']);
    for (const bad of ['/a/..', '/a/%2e%2e', '/a/%2E', '/a/b%2fc', '/a/b%5Cc', '/a/%00', '/a/%zz']) {
      expect(() => parsePath(bad), bad).toThrow(expect.objectContaining({ status: 400 }));
    }
    expect(() => parsePath('/a//b')).toThrow(expect.objectContaining({ status: 404 }));
    expect(compilePattern('/api/runs/:id')(['api', 'runs', 'x', 'y'])).toBeNull();
    expect(compilePattern('/api/runs/:id')(['api', 'runs', 'x'])).toEqual({ id: 'x' });
  });
});

describe('bind security', () => {
  it('knows loopback addresses', () => {
    for (const host of [
      '127.0.0.1',
      '127.1.2.3',
      'localhost',
      '::1',
      '[::1]',
      '0:0:0:0:0:0:0:1',
      '::ffff:127.0.0.1',
    ]) {
      expect(isLoopbackHost(host), host).toBe(true);
    }
    for (const host of [
      '0.0.0.0',
      '::',
      '',
      '10.0.0.1',
      '192.168.1.10',
      'example.com',
      '128.0.0.1',
      'localhost.example.com',
    ]) {
      expect(isLoopbackHost(host), host).toBe(false);
    }
  });

  it('refuses a non-loopback bind without a token, with a clear WeftError', () => {
    let caught: unknown;
    try {
      checkBindSecurity('0.0.0.0', undefined);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(WeftError);
    expect((caught as WeftError).code).toBe('USAGE');
    expect((caught as WeftError).hint).toContain('WEFT_API_TOKEN');
    expect(() => checkBindSecurity('0.0.0.0', '')).toThrow(WeftError);
    expect(() => checkBindSecurity('0.0.0.0', TOKEN)).not.toThrow();
    expect(() => checkBindSecurity('127.0.0.1', undefined)).not.toThrow();
  });

  it('listen() applies it before opening a port', async () => {
    const f = memoryFixture();
    const server = createHttpServer({ store: f.store, pipelines: () => [] });
    await expect(server.listen(0, '0.0.0.0')).rejects.toMatchObject({ code: 'USAGE' });
    await server.close();
  });
});

describe('with a token', () => {
  let f: Fixture;
  let s: Served;
  let runId: string;
  let requestId: string;

  beforeAll(async () => {
    f = memoryFixture();
    runId = (await f.run('demo')).id;
    requestId = (
      await f.store.requestRun({
        id: 'q_1',
        pipeline: 'demo',
        params: {},
        requestedAt: new Date().toISOString(),
      })
    ).id;
    s = await serve(f, { token: TOKEN });
  });
  afterAll(async () => {
    await s.close();
    await f.cleanup();
  });

  const concrete = (pattern: string) =>
    pattern.replace(':name', 'demo').replace(':id', pattern.startsWith('/api/requests/') ? requestId : runId);

  it('every token route refuses no token and a wrong token with 401, and accepts the right one', async () => {
    for (const route of ROUTES.filter((r) => r.auth === 'token')) {
      const path = concrete(route.pattern);
      const init = (auth?: string): RequestInit => ({
        method: route.method,
        headers: { 'Content-Type': 'application/json', ...(auth ? { Authorization: auth } : {}) },
        ...(route.method === 'POST' ? { body: '{}' } : {}),
      });
      for (const auth of [undefined, 'Bearer wrong-token', `Bearer ${TOKEN}x`, TOKEN, `Basic ${TOKEN}`]) {
        const res = await fetch(s.url + path, init(auth));
        expect(res.status, `${route.method} ${path} with ${auth}`).toBe(401);
        expect(res.headers.get('www-authenticate')).toContain('Bearer');
        const body = (await res.json()) as { error: { code: string } };
        expect(body.error.code).toBe('UNAUTHORIZED');
      }
      if (route.method === 'GET' && !route.pattern.endsWith('/stream')) {
        const res = await fetch(s.url + path, init(`Bearer ${TOKEN}`));
        expect(res.status, `${route.method} ${path}`).toBe(200);
        await res.text();
      }
    }
  });

  it('keeps /healthz public and page shells free of data', async () => {
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    const shell = await fetch(`${s.url}/runs/${runId}`);
    expect(shell.status).toBe(200);
    const html = await shell.text();
    expect(html).toContain(`data-fragment="/ui/runs/${runId}"`);
    expect(html).not.toContain('greet');
    expect(html).not.toContain('succeeded');
  });

  it('checks path tricks before anything else, even with a valid token', async () => {
    const res = await fetch(`${s.url}/api/runs/${runId}%2Flogs`, {
      headers: { Authorization: `Bearer ${TOKEN}` },
    });
    expect(res.status).toBe(400);
  });
});

describe('without a token (loopback)', () => {
  it('refuses a foreign Host header (DNS rebinding)', async () => {
    const f = memoryFixture();
    const s = await serve(f);
    try {
      const { request } = await import('node:http');
      const url = new URL(s.url);
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(
          { host: url.hostname, port: url.port, path: '/api/runs', headers: { Host: 'evil.example:80' } },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end();
      });
      expect(status).toBe(403);
    } finally {
      await s.close();
      await f.cleanup();
    }
  });
});

describe('the HTML pages', () => {
  let f: Fixture;
  let s: Served;
  let okId: string;
  let failedId: string;

  beforeAll(async () => {
    f = memoryFixture();
    okId = (await f.run('demo')).id;
    failedId = (await f.run('broken')).id;
    s = await serve(f);
  });
  afterAll(async () => {
    await s.close();
    await f.cleanup();
  });

  it('render server-side without a token, with strict security headers', async () => {
    const res = await fetch(`${s.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toMatch(
      /default-src 'self'; script-src 'self'; style-src 'self'/,
    );
    const html = await res.text();
    expect(html).toContain('<a href="/pipelines/demo">demo</a>');
    expect(html).toContain('Run now');
    expect(html).toContain('at 06:00 every day');
    // No inline script or style anywhere.
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/\sstyle=/);
    expect(html).not.toMatch(/<[^>]*\son[a-z]+=/);
  });

  it('escape everything shown: descriptions, errors, task output', async () => {
    const home = await (await fetch(`${s.url}/`)).text();
    expect(home).toContain('Says &lt;b&gt;hello&lt;/b&gt;');
    expect(home).not.toContain('<b>hello</b>');
    const failed = await (await fetch(`${s.url}/runs/${failedId}`)).text();
    expect(failed).toContain('boom &lt;img src=x onerror=alert(2)&gt;');
    expect(failed).not.toContain('<img src=x');
    const pipeline = await (await fetch(`${s.url}/pipelines/demo`)).text();
    expect(pipeline).toContain('description: &quot;Says &lt;b&gt;hello&lt;/b&gt;&quot;');
    expect(pipeline).toMatch(/<svg\s+class="dag"/);
    expect(pipeline).toMatch(/<svg\s+class="chart"/);
  });

  it('draw the run DAG as SVG with task states, and a timeline with the retry wait', async () => {
    const run = await (await fetch(`${s.url}/runs/${okId}`)).text();
    expect(run).toMatch(/<rect\s+class="node st-succeeded"/);
    expect(run).toContain('data-task="flaky"');
    expect(run).toMatch(/<rect\s+class="wait"/);
    expect(run).toMatch(/<rect\s+class="bar att-failed"/);
    expect(run).toContain('data-log-task="greet"');
    expect(run).not.toContain(XSS);
  });

  it('answer an unknown run page with 404 and a message, escaped', async () => {
    const res = await fetch(`${s.url}/runs/%3Cscript%3E`);
    expect(res.status).toBe(404);
    const html = await res.text();
    expect(html).toContain('no run with id &lt;script&gt;');
  });

  it('serve the script and stylesheet with the right types', async () => {
    const js = await fetch(`${s.url}/assets/app.js`);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(await js.text()).toContain('localStorage.getItem(TOKEN_KEY)');
    const css = await fetch(`${s.url}/assets/app.css`);
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
  });
});
