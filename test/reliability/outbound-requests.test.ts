import { createRequire, syncBuiltinESMExports } from 'node:module';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createRun } from '../../src/engine/create-run.js';
import { executeRun } from '../../src/engine/execute-run.js';
import { isNonRetryable } from '../../src/errors.js';
import { httpRequestHandler, type HttpRequestArgs } from '../../src/handlers/builtin/http-request.js';
import { notifyWebhookHandler } from '../../src/handlers/builtin/notify-webhook.js';
import { createOutboundPolicy, isRestrictedAddress } from '../../src/handlers/builtin/outbound-guard.js';
import { createBuiltinRegistry } from '../../src/handlers/builtins.js';
import { loadPipelineText } from '../../src/project/load-pipeline.js';
import { createMemoryStore } from '../../src/store/memory/memory-store.js';
import { createTestContext } from '../support/handler-context.js';

/**
 * Item 11: http.request and notify.webhook refuse internal addresses (SSRF) unless the task
 * allows them in `allow_hosts`, in every spelling, through DNS and through redirects, and never
 * send a byte to a refused address.
 */

// The CommonJS dns module: assigning to it and syncing changes what `import { lookup } from 'node:dns'` sees.
const dnsModule = createRequire(import.meta.url)('node:dns') as typeof import('node:dns');

let internal: Server;
let other: Server;
let port: number;
let otherPort: number;
let hits: string[] = [];
let otherHits = 0;
let route: (url: string) => { status: number; headers?: Record<string, string>; body?: string } = () => ({
  status: 200,
  body: 'ok',
});

beforeAll(async () => {
  internal = createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => {
      const answer = route(req.url ?? '/');
      res.writeHead(answer.status, answer.headers ?? {});
      res.end(answer.body ?? '');
    });
  });
  await new Promise<void>((resolve) => internal.listen(0, '127.0.0.1', resolve));
  port = (internal.address() as AddressInfo).port;
  // A second internal service on another loopback address, never allowed.
  other = createServer((req, res) => {
    otherHits += 1;
    res.end('secret');
  });
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.2', resolve));
  otherPort = (other.address() as AddressInfo).port;
});

afterAll(async () => {
  internal.closeAllConnections();
  other.closeAllConnections();
  await Promise.all([new Promise((r) => internal.close(r)), new Promise((r) => other.close(r))]);
});

beforeEach(() => {
  hits = [];
  otherHits = 0;
  route = () => ({ status: 200, body: 'ok' });
});

async function outcome(args: HttpRequestArgs): Promise<{ ok: unknown } | { error: Error; ms: number }> {
  const started = performance.now();
  try {
    return { ok: await httpRequestHandler.run({ timeout: '3s', ...args }, createTestContext().ctx) };
  } catch (error) {
    return { error: error as Error, ms: performance.now() - started };
  }
}

async function refused(args: HttpRequestArgs): Promise<Error> {
  const result = await outcome(args);
  if ('ok' in result) throw new Error(`${args.url} was not refused: ${JSON.stringify(result.ok)}`);
  expect(isNonRetryable(result.error), `${args.url}: ${result.error.message}`).toBe(true);
  // Refused before connecting: no connect timeout to an unroutable 10.x address.
  expect(result.ms, args.url).toBeLessThan(1000);
  return result.error;
}

describe('isRestrictedAddress', () => {
  it('refuses every internal range, in IPv4, IPv6 and the IPv6 forms that carry IPv4', () => {
    const internalAddresses = [
      '127.0.0.1',
      '127.255.255.254',
      '0.0.0.0',
      '0.1.2.3',
      '10.0.0.1',
      '10.255.255.255',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.0.1',
      '169.254.169.254',
      '169.254.0.1',
      '100.64.0.1',
      '100.127.255.255',
      '224.0.0.1',
      '255.255.255.255',
      '198.18.0.1',
      '::1',
      '::',
      'fd00::1',
      'fc00::1',
      'fe80::1',
      'fe80::1%eth0',
      'ff02::1',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      '::ffff:169.254.169.254',
      '::ffff:a9fe:a9fe',
      '::ffff:10.0.0.1',
      '64:ff9b::7f00:1',
      '64:ff9b::10.1.2.3',
      '::127.0.0.1',
      '[::1]',
      'not-an-address',
    ];
    for (const address of internalAddresses) expect(isRestrictedAddress(address), address).toBe(true);
    const publicAddresses = [
      '8.8.8.8',
      '1.1.1.1',
      '93.184.216.34',
      '172.32.0.1',
      '172.15.255.255',
      '100.128.0.1',
      '169.255.0.1',
      '2606:4700:4700::1111',
      '2001:4860:4860::8888',
      '::ffff:8.8.8.8',
      '64:ff9b::808:808',
    ];
    for (const address of publicAddresses) expect(isRestrictedAddress(address), address).toBe(false);
  });

  it('allow_hosts takes names, addresses and CIDRs, and refuses anything else for good', () => {
    const policy = createOutboundPolicy(['db.internal', '10.0.0.0/8', '127.0.0.1', 'fd00::/8']);
    expect(policy.isHostAllowed('DB.internal.')).toBe(true);
    expect(policy.isHostAllowed('other.internal')).toBe(false);
    expect(policy.isAddressAllowed('10.9.8.7')).toBe(true);
    expect(policy.isAddressAllowed('11.0.0.1')).toBe(true); // public
    expect(policy.isAddressAllowed('192.168.0.1')).toBe(false);
    expect(policy.isAddressAllowed('127.0.0.1')).toBe(true);
    expect(policy.isAddressAllowed('::ffff:127.0.0.1')).toBe(true);
    expect(policy.isAddressAllowed('127.0.0.2')).toBe(false);
    expect(policy.isAddressAllowed('fd12::1')).toBe(true);
    expect(policy.isAddressAllowed('fe80::1')).toBe(false);
    for (const bad of ['10.0.0.0/33', 'fd00::/200', 'a b', 'http://x', '1.2.3.4/x', '']) {
      let error: unknown;
      try {
        createOutboundPolicy([bad]);
      } catch (caught) {
        error = caught;
      }
      expect(isNonRetryable(error), bad).toBe(true);
    }
  });
});

describe('http.request: internal addresses', () => {
  it('refuses loopback, private, link-local, CGNAT, 0.0.0.0, IPv6 and numeric spellings, sending nothing', async () => {
    const urls = [
      `http://127.0.0.1:${port}/`,
      `http://localhost:${port}/`,
      `http://LOCALHOST:${port}/`,
      'http://10.0.0.1/',
      'http://172.16.5.4/',
      'http://172.31.255.255/',
      'http://192.168.1.1/',
      'http://169.254.169.254/latest/meta-data/iam/security-credentials/',
      'http://100.64.0.1/',
      `http://0.0.0.0:${port}/`,
      `http://0:${port}/`,
      `http://[::1]:${port}/`,
      'http://[fd00::1]/',
      'http://[fe80::1]/',
      `http://[::ffff:127.0.0.1]:${port}/`,
      'http://[::ffff:169.254.169.254]/',
      `http://[64:ff9b::7f00:1]:${port}/`,
      `http://2130706433:${port}/`,
      `http://0x7f.1:${port}/`,
      `http://017700000001:${port}/`,
      `http://127.1:${port}/`,
      `http://0x7f000001:${port}/`,
      `https://127.0.0.1:${port}/`,
      `http://user:pass@127.0.0.1:${port}/`,
    ];
    for (const url of urls) {
      const error = await refused({ url });
      expect(error.message, url).toMatch(
        /refused: .*internal address; list the host or its network in allow_hosts/,
      );
    }
    expect(hits).toEqual([]);
  });

  it('refuses non-HTTP schemes for good', async () => {
    for (const url of [
      'file:///etc/passwd',
      'ftp://example.com/x',
      'gopher://127.0.0.1:70/',
      'data:text/plain,hi',
      'javascript:alert(1)',
      'ws://127.0.0.1/',
      'dict://127.0.0.1:11211/',
    ]) {
      const error = await refused({ url });
      expect(error.message, url).toMatch(/only http: and https: URLs are allowed|not a valid URL/);
    }
  });

  it('reaches an internal host that allow_hosts names, by address, CIDR or name', async () => {
    for (const [url, allow] of [
      [`http://127.0.0.1:${port}/a`, ['127.0.0.1']],
      [`http://127.0.0.1:${port}/b`, ['127.0.0.0/8']],
      [`http://2130706433:${port}/c`, ['127.0.0.1']],
      [`http://localhost:${port}/d`, ['localhost']],
      [`http://localhost:${port}/e`, ['127.0.0.0/8', '::1']],
      [`http://[::ffff:127.0.0.1]:${port}/f`, ['127.0.0.1']],
    ] as const) {
      const result = await outcome({ url, allow_hosts: [...allow] });
      expect('ok' in result ? result.ok : (result as { error: Error }).error.message, url).toMatchObject({
        status: 200,
        body: 'ok',
      });
    }
    expect(hits).toEqual(['GET /a', 'GET /b', 'GET /c', 'GET /d', 'GET /e', 'GET /f']);
  });

  it('checks every address a name resolves to, and connects only to the checked ones', async () => {
    // A fake resolver for *.test names, installed under the binding the handlers import.
    const answers: Record<string, string[]> = {
      'internal.test': ['10.1.2.3'],
      'mixed.test': ['93.184.216.34', '127.0.0.1'],
      'svc.test': ['127.0.0.1'],
    };
    const calls: string[] = [];
    const real = dnsModule.lookup;
    const fake = ((hostname: string, options: unknown, callback: (...args: unknown[]) => void) => {
      if (!(hostname in answers)) return (real as (...args: unknown[]) => void)(hostname, options, callback);
      calls.push(hostname);
      callback(
        null,
        answers[hostname]!.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })),
      );
    }) as typeof real;
    dnsModule.lookup = fake;
    syncBuiltinESMExports();
    try {
      const a = await refused({ url: `http://internal.test:${port}/` });
      expect(a.message).toContain('internal.test (10.1.2.3)');
      // One public address does not make the name safe: the socket could use either.
      const b = await refused({ url: `http://mixed.test:${port}/` });
      expect(b.message).toContain('mixed.test (127.0.0.1)');
      expect(hits).toEqual([]);
      // The address checked is the address connected to: svc.test exists only in the fake
      // resolver, and the request reaches the server at the address it answered.
      const c = await outcome({ url: `http://svc.test:${port}/via-name`, allow_hosts: ['127.0.0.1'] });
      expect('ok' in c && c.ok).toMatchObject({ status: 200 });
      expect(hits).toEqual(['GET /via-name']);
      expect(calls).toEqual(['internal.test', 'mixed.test', 'svc.test']);
    } finally {
      dnsModule.lookup = real;
      syncBuiltinESMExports();
    }
  });

  it('follows redirects only to allowed places, re-checking each one, at most 5', async () => {
    const allow = ['127.0.0.1'];
    // Allowed: a redirect inside the allowed host is followed; a 303 after a POST becomes a GET.
    route = (url) =>
      url === '/start'
        ? { status: 303, headers: { location: '/final' } }
        : { status: 200, body: `at ${url}` };
    const followed = await outcome({
      url: `http://127.0.0.1:${port}/start`,
      method: 'POST',
      body: 'x',
      allow_hosts: allow,
    });
    expect('ok' in followed && followed.ok).toMatchObject({ status: 200, body: 'at /final' });
    expect(hits).toEqual(['POST /start', 'GET /final']);

    for (const target of [
      'http://169.254.169.254/latest/meta-data/',
      'http://10.0.0.1/',
      `http://127.0.0.2:${otherPort}/`,
      `http://[::1]:${port}/`,
      `http://2130706434:${otherPort}/`,
      'file:///etc/passwd',
      'gopher://127.0.0.1/',
    ]) {
      hits = [];
      route = () => ({ status: 302, headers: { location: target } });
      const error = await refused({ url: `http://127.0.0.1:${port}/go`, allow_hosts: allow });
      expect(error.message, target).toMatch(/refused|only http: and https: are followed/);
      expect(hits).toEqual(['GET /go']);
    }
    expect(otherHits).toBe(0);

    hits = [];
    route = (url) => ({ status: 307, headers: { location: `${url}x` } });
    const loop = await refused({ url: `http://127.0.0.1:${port}/r`, allow_hosts: allow });
    expect(loop.message).toMatch(/more than 5 redirects/);
    expect(hits).toHaveLength(6);
  });

  it('drops credentials when a redirect leaves the origin', async () => {
    const seen: (string | undefined)[] = [];
    const a = createServer((req, res) => {
      seen.push(`a ${req.headers.authorization ?? '-'}`);
      res.writeHead(302, { location: `http://127.0.0.1:${port}/landed` }).end();
    });
    await new Promise<void>((resolve) => a.listen(0, '127.0.0.1', resolve));
    const aPort = (a.address() as AddressInfo).port;
    route = () => ({ status: 200, body: 'ok' });
    internal.prependOnceListener('request', (req) => seen.push(`b ${req.headers.authorization ?? '-'}`));
    try {
      const result = await outcome({
        url: `http://127.0.0.1:${aPort}/`,
        headers: { Authorization: 'Bearer t0ken' },
        allow_hosts: ['127.0.0.1'],
      });
      expect('ok' in result).toBe(true);
      expect(seen).toEqual(['a Bearer t0ken', 'b -']);
    } finally {
      a.closeAllConnections();
      await new Promise((r) => a.close(r));
    }
  });
});

describe('notify.webhook: internal addresses', () => {
  it('refuses the metadata address and loopback unless allowed, then posts', async () => {
    const ctx = () => createTestContext({ pipeline: 'etl', task: 'notify' }).ctx;
    for (const url of [
      'http://169.254.169.254/hook',
      `http://127.0.0.1:${port}/hook`,
      `http://[::ffff:7f00:1]:${port}/hook`,
    ]) {
      let error: unknown;
      try {
        await notifyWebhookHandler.run({ url }, ctx());
      } catch (caught) {
        error = caught;
      }
      expect(isNonRetryable(error), url).toBe(true);
    }
    expect(hits).toEqual([]);
    const posted = await notifyWebhookHandler.run(
      { url: `http://127.0.0.1:${port}/hook`, allow_hosts: ['127.0.0.1'] },
      ctx(),
    );
    expect(posted).toEqual({ status: 200 });
    expect(hits).toEqual(['POST /hook']);
  });

  it('in a pipeline: a refused request fails the task at once, without its retries', async () => {
    const text = JSON.stringify({
      name: 'ssrf',
      params: { url: { type: 'string' } },
      tasks: {
        fetch: {
          handler: 'http.request',
          retries: 3,
          retry_delay: '10s',
          with: { url: '${{ params.url }}' },
        },
      },
    });
    const registry = createBuiltinRegistry();
    const loaded = loadPipelineText('ssrf.yaml', text, { registry });
    expect(loaded.plan).not.toBeNull();
    const store = createMemoryStore();
    const run = await createRun(store, {
      plan: loaded.plan!,
      params: { url: 'http://169.254.169.254/latest/meta-data/' },
      trigger: 'manual',
      now: Date.now(),
    });
    const done = await executeRun(run.id, { store, registry, owner: 'test:1', env: {} });
    expect(done.state).toBe('failed');
    const [taskRun] = await store.getTaskRuns(run.id);
    expect(taskRun!.attempts).toBe(1);
    expect(taskRun!.error!.message).toMatch(
      /169\.254\.169\.254 is a loopback, private, link-local or otherwise internal address/,
    );
  });
});
