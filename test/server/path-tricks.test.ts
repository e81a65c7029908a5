import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTES, type Route } from '../../src/server/index.js';
import { isFullTier } from '../reliability/tier.js';
import { memoryFixture, serve, type Fixture, type Served } from './fixture.js';

/**
 * Every route of the route table (imported, so a route added later is covered without editing this
 * file) is sent raw requests — node:http, because fetch and URL would normalise `..`, `//` and
 * friends away before they reach the server — without a token, with a wrong one and with the right
 * one, on its canonical path, on path tricks and with other methods. Each handler is wrapped to
 * stamp the response with the route it belongs to, so the test sees which handler a request
 * reached, not only the status it got.
 */

const TOKEN = 'path-tricks-token-0123456789abcdef';
const ROUTE_HEADER = 'x-test-route';
const CONCURRENCY = 8;

type AuthCase = 'none' | 'wrong' | 'right';
const AUTH_CASES: readonly AuthCase[] = ['none', 'wrong', 'right'];
const AUTH_HEADER: Record<AuthCase, string | undefined> = {
  none: undefined,
  wrong: 'Bearer wrong-token',
  right: `Bearer ${TOKEN}`,
};

/** Methods no route declares besides OPTIONS (node's server drops CONNECT without answering). */
const OTHER_METHODS = ['PUT', 'DELETE', 'PATCH', 'TRACE', 'PROPFIND'] as const;

const routeKey = (route: Pick<Route, 'method' | 'pattern'>): string => `${route.method} ${route.pattern}`;

interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

interface Case {
  method: string;
  /** Sent byte for byte as the request target. */
  path: string;
  auth: AuthCase;
  /**
   * `reject`: a trick the path parser must refuse (400, or 404 for an empty segment) before any
   * route is chosen. `literal`: a path of plain characters whose route the independent
   * `expectedRoute` below names; the server must pick exactly that route, or none.
   */
  kind: 'reject' | 'literal';
  why: string;
  /** Sent as well: headers some proxies and frameworks read as the "real" path or method. */
  headers?: Record<string, string>;
}

/** The route a plain path names: segments decoded once, `:name` matches any one segment. */
function expectedRoute(method: string, target: string): { route?: Route; pathMatches: boolean } {
  const path = target.split('?')[0]!;
  const segments = path === '/' ? [] : path.slice(1).split('/').map(decodeURIComponent);
  const byPath = ROUTES.filter((route) => {
    const parts = route.pattern === '/' ? [] : route.pattern.slice(1).split('/');
    return (
      parts.length === segments.length &&
      parts.every((part, i) => part.startsWith(':') || part === segments[i])
    );
  });
  const wanted = method === 'HEAD' ? 'GET' : method;
  return { route: byPath.find((route) => route.method === wanted), pathMatches: byPath.length > 0 };
}

interface Variant {
  path: string;
  why: string;
}

const toVariants = (pairs: readonly (readonly [string, string])[]): Variant[] =>
  pairs.map(([path, why]) => ({ path, why }));

/** Tricks on a canonical path such as `/api/runs/r_1/logs`: ones to refuse, and plain look-alikes. */
function pathVariants(canonical: string, origin: string): { reject: Variant[]; literal: Variant[] } {
  const rest = canonical.slice(1); // '' for '/'
  const tail = canonical === '/' ? '' : canonical;
  const segments = rest === '' ? [] : rest.split('/');
  const joinedWith = (separator: string, at: number) =>
    '/' + segments.slice(0, at).join('/') + separator + segments.slice(at).join('/');
  const reject = toVariants([
    [`${tail}/..`, 'trailing ..'],
    [`/x/../${rest}`, 'leading x/..'],
    [`/./${rest}`, 'leading ./'],
    [`/healthz/..${tail}`, 'traversal from the public /healthz'],
    [`/assets/app.js/../..${tail}`, 'traversal from a public asset'],
    [`/healthz/%2e%2e${tail}`, '%2e%2e segment'],
    [`/healthz/%2e${tail}`, '%2e segment'],
    [`/healthz/%2E%2E%2F${rest}`, '%2E%2E%2F glued to the next segment'],
    [`/healthz/..%2F${rest}`, '..%2F glued to the next segment'],
    [`/healthz/%2e%2e%5C${rest}`, '%2e%2e%5C glued to the next segment'],
    [`/runs/..%2F..%2F${rest.replaceAll('/', '%2F')}`, 'encoded traversal inside a public page id'],
    [`/healthz\\..\\${rest.replaceAll('/', '\\')}`, 'raw backslash traversal'],
    [`/healthz#/..${tail}`, '# then ..'],
    [`/${rest}`.replace(/^\//, '//'), 'leading //'],
    [canonical === '/' ? '//' : `${canonical}/`, 'trailing /'],
    [`${canonical}%2F`, 'trailing %2F'],
    [`${tail}/%00`, 'NUL segment'],
    [`/%c0%ae%c0%ae${tail}`, 'overlong UTF-8 dots'],
    [`${tail}/%zz`, 'malformed percent-encoding'],
    [`${origin}${canonical}`, 'absolute-form target'],
  ]);
  // Every spelling for the separator before the last segment, the main ones before the second.
  const separators = new Map<number, string[]>();
  if (segments.length >= 3) separators.set(1, ['%2F', '%5c', '//']);
  if (segments.length >= 2) separators.set(segments.length - 1, ['%2F', '%2f', '%5C', '%5c', '\\', '//']);
  for (const [at, spellings] of separators) {
    for (const separator of spellings) {
      reject.push({
        path: joinedWith(separator, at),
        why: `${separator} as the separator before segment ${at}`,
      });
    }
  }
  const letterAt = canonical.search(/[a-z]/);
  const literal = toVariants([
    [`${tail}/x`, 'trailing /x segment'],
    [`${canonical};x=1`, ';params on the last segment'],
    [canonical.toUpperCase(), 'upper case'],
    [`${canonical}?/../healthz`, 'traversal in the query string'],
    [`/healthz/%252e%252e${tail}`, 'double-encoded dots (a literal "%2e%2e" segment)'],
    [`/healthz/..;${tail}`, 'Tomcat\'s "..;" (a literal segment here)'],
    [`/healthz/%EF%BC%8E%EF%BC%8E${tail}`, 'full-width dots (a literal segment)'],
  ]);
  if (segments.length >= 2) {
    literal.push({ path: joinedWith(';jsessionid=1/', 1), why: ';params on the first segment' });
  }
  if (letterAt !== -1) {
    const letter = canonical[letterAt]!;
    const replaced = (by: string) => canonical.slice(0, letterAt) + by + canonical.slice(letterAt + 1);
    literal.push({ path: replaced(letter.toUpperCase()), why: 'one letter in upper case' });
    literal.push({
      path: replaced(`%${letter.charCodeAt(0).toString(16)}`),
      why: 'a percent-encoded letter (decodes to the canonical path)',
    });
  }
  return { reject, literal };
}

function rawRequest(
  origin: URL,
  agent: Agent,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request({ host: origin.hostname, port: origin.port, method, path, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', reject);
    });
    req.setTimeout(5000, () => req.destroy(new Error(`no answer to ${method} ${path} within 5 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

async function inPool<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  });
  await Promise.all(lanes);
}

describe('path tricks, tokens and methods on every route (raw HTTP)', () => {
  let f: Fixture;
  let s: Served;
  let origin: URL;
  let agent: Agent;
  const paramValues: Record<string, string> = {};
  const originals = new Map<Route, Route['handler']>();

  beforeAll(async () => {
    f = memoryFixture();
    paramValues.name = 'demo';
    paramValues.id = (await f.run('demo')).id;
    paramValues.requestId = (
      await f.store.requestRun({
        id: 'q_tricks',
        pipeline: 'demo',
        params: {},
        requestedAt: new Date().toISOString(),
      })
    ).id;
    // The server looks handlers up on the route objects at dispatch, so wrapping them here is
    // seen by it; vitest gives each test file its own module graph, so no other file sees it.
    for (const route of ROUTES) {
      const handler = route.handler;
      originals.set(route, handler);
      route.handler = (r) => {
        r.res.setHeader(ROUTE_HEADER, routeKey(route));
        return handler(r);
      };
    }
    s = await serve(f, { token: TOKEN });
    origin = new URL(s.url);
    agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  });
  afterAll(async () => {
    agent.destroy();
    await s.close();
    await f.cleanup();
    for (const [route, handler] of originals) route.handler = handler;
  });

  /** A path for a pattern; a parameter this file has no value for gets `x` (still a valid segment). */
  const concrete = (pattern: string): string =>
    pattern.replace(/:(\w+)/g, (_, name: string) =>
      name === 'id' && pattern.startsWith('/api/requests/')
        ? paramValues.requestId!
        : (paramValues[name] ?? 'x'),
    );

  // The timeout allows for load: some 1,200 requests take about 1.5 s of CPU, but on a busy
  // two-core machine most of the wall time is spent waiting for a core.
  it('a token route never answers without the right token, and no trick reaches another handler', async () => {
    const cases: Case[] = [];
    for (const [routeIndex, route] of ROUTES.entries()) {
      const canonical = concrete(route.pattern);
      const { reject, literal } = pathVariants(canonical, origin.origin);
      const otherMethod = route.method === 'GET' ? 'POST' : 'GET';
      // Methods no route declares all take one path (405); the CI tier sends each to some routes.
      const undeclared = isFullTier ? OTHER_METHODS : [OTHER_METHODS[routeIndex % OTHER_METHODS.length]!];
      const otherMethods = [otherMethod, 'HEAD', 'OPTIONS', ...undeclared];
      for (const auth of AUTH_CASES) {
        cases.push({ method: route.method, path: canonical, auth, kind: 'literal', why: 'canonical' });
      }
      // Beyond the canonical request a wrong token is sent the way no token is (the server can
      // tell them apart only by comparing with its own). Each trick goes without the token (a
      // token route must deny it) or with it (it must still reach no other handler), alternating
      // so that every route and every trick meet both; WEFT_CHAOS=full sends every trick with
      // every token case.
      const trickAuths = (i: number): readonly AuthCase[] =>
        isFullTier ? AUTH_CASES : [(routeIndex + i) % 2 === 0 ? 'none' : 'right'];
      for (const [i, { path, why }] of reject.entries()) {
        for (const auth of trickAuths(i))
          cases.push({ method: route.method, path, auth, kind: 'reject', why });
      }
      for (const [i, { path, why }] of literal.entries()) {
        for (const auth of trickAuths(i))
          cases.push({ method: route.method, path, auth, kind: 'literal', why });
      }
      for (const auth of isFullTier ? AUTH_CASES : (['none', 'right'] as const)) {
        for (const method of otherMethods) {
          cases.push({ method, path: canonical, auth, kind: 'literal', why: `method ${method}` });
        }
        // The server routes on the request line only; these headers must change nothing.
        const rewrite = { 'X-Original-URL': canonical, 'X-Rewrite-URL': canonical };
        cases.push({
          method: 'GET',
          path: '/healthz',
          auth,
          kind: 'literal',
          why: 'rewrite headers',
          headers: rewrite,
        });
        cases.push({
          method: otherMethod,
          path: canonical,
          auth,
          kind: 'literal',
          why: 'method-override headers',
          headers: { 'X-HTTP-Method-Override': route.method, 'X-Method-Override': route.method },
        });
      }
      // HEAD is answered by GET handlers: it must not be a way around the parser either.
      for (const { path, why } of reject.slice(0, 4)) {
        cases.push({ method: 'HEAD', path, auth: 'right', kind: 'reject', why: `HEAD, ${why}` });
      }
    }
    cases.push({ method: 'OPTIONS', path: '*', auth: 'right', kind: 'reject', why: 'asterisk-form target' });
    cases.push({ method: 'GET', path: '*', auth: 'right', kind: 'reject', why: 'asterisk-form target' });

    const failures: string[] = [];
    const seen = new Map<string, number>();
    await inPool(cases, CONCURRENCY, async (c) => {
      const authorization = AUTH_HEADER[c.auth];
      const headers: Record<string, string> = { ...c.headers };
      if (authorization) headers.Authorization = authorization;
      let body: string | undefined;
      if (c.method === 'POST') {
        headers['Content-Type'] = 'application/json';
        body = '{}';
      }
      const res = await rawRequest(origin, agent, c.method, c.path, headers, body);
      const reached = res.headers[ROUTE_HEADER] as string | undefined;
      const label = `${c.method} ${c.path} [${c.auth} token; ${c.why}] -> ${res.status}${reached ? ` via ${reached}` : ''}`;
      const fail = (why: string) => failures.push(`${label}: ${why}`);
      if (reached) seen.set(reached, (seen.get(reached) ?? 0) + 1);

      // Whatever the case: data only from a public route or with the right token.
      const reachedRoute = ROUTES.find((route) => routeKey(route) === reached);
      if (res.status >= 200 && res.status < 400) {
        if (!reachedRoute) fail('a success that no route handler produced');
        else if (reachedRoute.auth !== 'public' && c.auth !== 'right') fail('a token route answered');
      }
      if (reachedRoute && reachedRoute.auth !== 'public' && c.auth !== 'right') {
        fail('a token route handler ran');
      }
      // `greet` is a task of the demo run: it shows only in run data.
      if (c.auth !== 'right' && res.body.includes('greet')) fail('run data in an answer without the token');

      if (c.kind === 'reject') {
        if (reached) fail('a path trick reached a handler');
        if (res.status !== 400 && res.status !== 404) fail('expected 400 or 404');
        return;
      }
      const expected = expectedRoute(c.method, c.path);
      if (!expected.route) {
        if (reached) fail('reached a handler where no route matches');
        const status = expected.pathMatches ? 405 : 404;
        if (res.status !== status) fail(`expected ${status}`);
        if (status === 405 && !res.headers.allow) fail('a 405 without an Allow header');
        return;
      }
      // Anything not declared public is expected to want the token: a route whose access rule is
      // missing or misspelt fails here rather than being served to anyone.
      if (expected.route.auth !== 'public' && c.auth !== 'right') {
        if (res.status !== 401) fail('expected 401');
        if (!String(res.headers['www-authenticate']).startsWith('Bearer')) fail('no WWW-Authenticate');
        return;
      }
      if (reached !== routeKey(expected.route)) fail(`expected the handler of ${routeKey(expected.route)}`);
    });

    expect(failures, `${failures.length} of ${cases.length} cases failed`).toEqual([]);
    // Every handler was reached at least once (its canonical path with the token), so the
    // stamps are on and a handler that stopped answering would show here.
    for (const route of ROUTES) expect(seen.get(routeKey(route)), routeKey(route)).toBeGreaterThan(0);
  }, 60_000);
});

describe('the trigger route takes only the pipeline’s declared params', () => {
  let f: Fixture;
  let s: Served;
  let origin: URL;
  let agent: Agent;

  beforeAll(async () => {
    f = memoryFixture();
    s = await serve(f, { token: TOKEN });
    origin = new URL(s.url);
    agent = new Agent({ keepAlive: true });
  });
  afterAll(async () => {
    agent.destroy();
    await s.close();
    await f.cleanup();
  });

  const trigger = (pipeline: string, body: string, query = '', contentType = 'application/json') =>
    rawRequest(
      origin,
      agent,
      'POST',
      `/api/pipelines/${pipeline}/runs${query}`,
      { Authorization: `Bearer ${TOKEN}`, 'Content-Type': contentType },
      body,
    );

  it('refuses undeclared params, wrong types and prototype keys, and records nothing for them', async () => {
    const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort();
    // demo declares `who: string` (default world) and `count: integer` (default 1).
    const accepted = await trigger('demo', '{"params":{"who":"ann","count":2}}');
    expect(accepted.status, accepted.body).toBe(202);
    const acceptedId = (JSON.parse(accepted.body) as { request: { id: string } }).request.id;

    // Raw JSON text: JSON.parse makes `__proto__` an own key, as an attacker's body would.
    const refused: [pipeline: string, body: string, status: number, code: string][] = [
      ['demo', '{"params":{"whom":"x"}}', 400, 'PARAM_INVALID'],
      ['demo', '{"params":{"who":"ann","extra":1}}', 400, 'PARAM_INVALID'],
      ['broken', '{"params":{"anything":1}}', 400, 'PARAM_INVALID'],
      ['demo', '{"params":{"who":5}}', 400, 'PARAM_INVALID'],
      ['demo', '{"params":{"who":null}}', 400, 'PARAM_INVALID'],
      ['demo', '{"params":{"count":"2"}}', 400, 'PARAM_INVALID'],
      ['demo', '{"params":{"count":1.5}}', 400, 'PARAM_INVALID'],
      ['demo', '{"params":{"count":true}}', 400, 'PARAM_INVALID'],
      ['demo', '{"params":{"count":[1]}}', 400, 'PARAM_INVALID'],
      ['demo', '{"params":{"__proto__":{"polluted":"yes"}}}', 400, 'PARAM_INVALID'],
      ['demo', '{"params":{"who":"ann","__proto__":{"polluted":"yes"}}}', 400, 'PARAM_INVALID'],
      ['demo', '{"params":{"constructor":{"prototype":{"polluted":"yes"}}}}', 400, 'PARAM_INVALID'],
      ['demo', '{"params":{"toString":"x"}}', 400, 'PARAM_INVALID'],
      ['demo', '{"params":{"hasOwnProperty":"x"}}', 400, 'PARAM_INVALID'],
      ['demo', '{"__proto__":{"polluted":"yes"},"params":{}}', 400, 'BAD_REQUEST'],
      ['demo', '{"constructor":{"prototype":{"polluted":"yes"}}}', 400, 'BAD_REQUEST'],
      ['demo', '{"params":{},"who":"ann"}', 400, 'BAD_REQUEST'],
      ['demo', '{"params":[]}', 400, 'BAD_REQUEST'],
      ['demo', '{"params":"who=ann"}', 400, 'BAD_REQUEST'],
      ['demo', '[{"params":{}}]', 400, 'BAD_REQUEST'],
      ['demo', '"params"', 400, 'BAD_REQUEST'],
      ['demo', '{"params":', 400, 'BAD_REQUEST'],
    ];
    for (const [pipeline, body, status, code] of refused) {
      const res = await trigger(pipeline, body);
      expect(res.status, `${pipeline} ${body}: ${res.body}`).toBe(status);
      expect((JSON.parse(res.body) as { error: { code: string } }).error.code, body).toBe(code);
    }
    // Params by any other way in: the query string, or a form.
    expect((await trigger('demo', '{}', '?who=ann')).status).toBe(400);
    expect((await trigger('demo', '{}', '?__proto__[polluted]=yes')).status).toBe(400);
    expect((await trigger('demo', 'params[who]=ann', '', 'application/x-www-form-urlencoded')).status).toBe(
      415,
    );
    // Pipelines named like prototype members are not found, not inherited.
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      expect((await trigger(name, '{}')).status, name).toBe(404);
    }

    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeKeys);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const recorded = await f.store.claimRunRequests(100, 'test', new Date().toISOString());
    expect(recorded.map((request) => request.id)).toEqual([acceptedId]);
    expect(recorded[0]!.params).toEqual({ who: 'ann', count: 2 });
  });
});
