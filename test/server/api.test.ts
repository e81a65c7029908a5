/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-explicit-any --
 * Response bodies are untyped JSON, asserted field by field; typing each shape here would only restate the assertions. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunRecord } from '../../src/store/run-store.js';
import {
  createGate,
  Fixture,
  memoryFixture,
  SECRET,
  serve,
  sqliteFixture,
  until,
  XSS,
  type Served,
} from './fixture.js';

interface ApiErrorBody {
  error: { code: string; message: string; details?: string[] };
}

async function get(base: string, path: string, headers: Record<string, string> = {}) {
  const res = await fetch(base + path, { headers });
  const text = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body: body as any, text, headers: res.headers };
}

async function post(base: string, path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text), headers: res.headers };
}

describe('HTTP API over a memory store seeded by the engine', () => {
  let f: Fixture;
  let s: Served;
  let ok: RunRecord;
  let failed: RunRecord;
  let scheduled: RunRecord;

  beforeAll(async () => {
    f = memoryFixture();
    ok = await f.run('demo', { params: { who: `x ${SECRET}` } });
    failed = await f.run('broken');
    scheduled = await f.create('demo', { scheduledFor: '2030-03-01T09:59:00.000Z' });
    scheduled = await f.execute(scheduled.id);
    for (let i = 0; i < 3; i++) await f.run('demo');
    s = await serve(f, { now: () => Date.parse('2030-03-01T12:00:00.000Z') });
  });
  afterAll(async () => {
    await s.close();
    await f.cleanup();
  });

  it('seeded what the tests expect', () => {
    expect([ok.state, failed.state, scheduled.state]).toEqual(['succeeded', 'failed', 'succeeded']);
  });

  it('GET /healthz answers without a token', async () => {
    const r = await get(s.url, '/healthz');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ ok: true, store: 'memory' });
    expect(r.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    expect(r.headers.get('referrer-policy')).toBe('no-referrer');
  });

  it('GET /api/pipelines lists every pipeline with schedule, validity and last run', async () => {
    const r = await get(s.url, '/api/pipelines');
    expect(r.status).toBe(200);
    const names = r.body.pipelines.map((p: { name: string }) => p.name);
    expect(names).toEqual(['broken', 'demo', 'invalid', 'slow']);
    const demo = r.body.pipelines[1];
    expect(demo.schedule).toMatchObject({
      cron: '0 6 * * *',
      description: 'at 06:00 every day',
      timezone: 'Europe/Amsterdam',
      next_fires: ['2030-03-02T05:00:00.000Z', '2030-03-03T05:00:00.000Z', '2030-03-04T05:00:00.000Z'],
    });
    expect(demo.valid).toBe(true);
    expect(demo.params.map((p: { name: string }) => p.name)).toEqual(['who', 'count']);
    expect(demo.last_run.state).toBe('succeeded');
    const broken = r.body.pipelines[0];
    expect(broken.last_run.id).toBe(failed.id);
    const invalid = r.body.pipelines[2];
    expect(invalid.valid).toBe(false);
    expect(invalid.errors[0]).toMatchObject({ code: 'DEPENDENCY_UNKNOWN', line: 5 });
  });

  it('GET /api/pipelines/:name adds the YAML source and the graph', async () => {
    const r = await get(s.url, '/api/pipelines/demo');
    expect(r.status).toBe(200);
    expect(r.body.pipeline.source).toContain('handler: flaky');
    expect(r.body.pipeline.graph.nodes.map((n: { id: string; stage: number }) => [n.id, n.stage])).toEqual([
      ['greet', 0],
      ['flaky', 1],
      ['done', 2],
    ]);
    expect(r.body.pipeline.graph.edges).toEqual([
      { from: 'greet', to: 'flaky' },
      { from: 'flaky', to: 'done' },
    ]);
    expect((await get(s.url, '/api/pipelines/nope')).status).toBe(404);
  });

  it('GET /api/runs pages newest first with next_offset, and filters by pipeline and state', async () => {
    const first = await get(s.url, '/api/runs?limit=2');
    expect(first.status).toBe(200);
    expect(first.body.runs).toHaveLength(2);
    expect(first.body.next_offset).toBe(2);
    const all = await get(s.url, '/api/runs?limit=100');
    expect(all.body.runs).toHaveLength(6);
    expect(all.body.next_offset).toBeNull();
    const created = all.body.runs.map((r: { created_at: string }) => r.created_at);
    expect([...created].sort().reverse()).toEqual(created);
    expect(first.body.runs.map((r: { id: string }) => r.id)).toEqual(
      all.body.runs.slice(0, 2).map((r: { id: string }) => r.id),
    );
    const second = await get(s.url, '/api/runs?limit=2&offset=2');
    expect(second.body.runs.map((r: { id: string }) => r.id)).toEqual(
      all.body.runs.slice(2, 4).map((r: { id: string }) => r.id),
    );
    const failedOnly = await get(s.url, '/api/runs?state=failed');
    expect(failedOnly.body.runs.map((r: { id: string }) => r.id)).toEqual([failed.id]);
    const demoOnly = await get(s.url, '/api/runs?pipeline=demo&limit=100');
    expect(demoOnly.body.runs).toHaveLength(5);
  });

  it('GET /api/runs rejects bad input with 400', async () => {
    for (const q of [
      'state=bogus',
      'limit=0',
      'limit=abc',
      'limit=1000',
      'offset=-1',
      'colour=red',
      'limit=1&limit=2',
    ]) {
      const r = await get(s.url, `/api/runs?${q}`);
      expect(r.status, q).toBe(400);
      expect((r.body as ApiErrorBody).error.code, q).toBe('BAD_REQUEST');
    }
  });

  it('GET /api/runs/:id gives task runs with attempts, durations and errors', async () => {
    const r = await get(s.url, `/api/runs/${ok.id}`);
    expect(r.status).toBe(200);
    expect(r.body.run).toMatchObject({ id: ok.id, pipeline: 'demo', state: 'succeeded' });
    expect(r.body.tasks.map((t: { task: string; state: string }) => [t.task, t.state])).toEqual([
      ['greet', 'succeeded'],
      ['flaky', 'succeeded'],
      ['done', 'succeeded'],
    ]);
    const flaky = r.body.tasks[1];
    expect(flaky.attempts).toBe(2);
    expect(
      flaky.attempt_history.map((a: { state: string; delay_ms: number }) => [a.state, a.delay_ms]),
    ).toEqual([
      ['failed', 0],
      ['succeeded', 20],
    ]);
    expect(flaky.attempt_history[0].error.message).toBe('first attempt fails (key ***)');
    expect(typeof flaky.duration_ms).toBe('number');
    const bad = await get(s.url, `/api/runs/${failed.id}`);
    expect(bad.body.run.error.code).toBeTruthy();
    expect(bad.body.tasks[0].error.message).toContain('boom <img');
    expect(bad.body.tasks[1].state).toBe('skipped');
    expect((await get(s.url, '/api/runs/r_NOPE')).status).toBe(404);
  });

  it('masks secret values everywhere: logs, errors, outputs, params', async () => {
    const detail = await get(s.url, `/api/runs/${ok.id}`);
    const logs = await get(s.url, `/api/runs/${ok.id}/logs`);
    const list = await get(s.url, '/api/runs?limit=100');
    for (const text of [detail.text, logs.text, list.text]) {
      expect(text).not.toContain(SECRET);
      expect(text).toContain('***');
    }
    expect(detail.body.run.params.who).toBe('x ***');
    expect(detail.body.tasks[0].output.key).toBe('***');
    // The store itself holds the value (the engine ran without it in its env): the server masked it.
    expect(JSON.stringify(await f.store.getLogs(ok.id))).toContain(SECRET);
  });

  it('GET /api/runs/:id/logs returns lines after a seq, per task, with the raw <script> as data', async () => {
    const all = await get(s.url, `/api/runs/${ok.id}/logs`);
    expect(all.status).toBe(200);
    const lines = all.body.lines as { seq: number; task: string; message: string }[];
    expect(lines.map((l) => l.message)).toContain(XSS);
    const greet = await get(s.url, `/api/runs/${ok.id}/logs?task=greet`);
    expect(greet.body.lines.every((l: { task: string }) => l.task === 'greet')).toBe(true);
    const after = await get(s.url, `/api/runs/${ok.id}/logs?after=${lines[0]!.seq}`);
    expect(after.body.lines.map((l: { seq: number }) => l.seq)).toEqual(lines.slice(1).map((l) => l.seq));
    expect(after.body.next_after).toBe(lines[lines.length - 1]!.seq);
    expect((await get(s.url, `/api/runs/${ok.id}/logs?task=nope`)).status).toBe(404);
    expect((await get(s.url, `/api/runs/${ok.id}/logs?after=x`)).status).toBe(400);
  });

  it('serves /metrics in the Prometheus text format with cumulative histogram buckets', async () => {
    const r = await get(s.url, '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = r.text;
    const sample =
      /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$/;
    const comment = /^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$/;
    const lines = text.trimEnd().split('\n');
    for (const line of lines) expect(line, line).toMatch(line.startsWith('#') ? comment : sample);
    expect(text).toContain('weft_runs_total{pipeline="demo",state="succeeded"} 5');
    expect(text).toContain('weft_runs_total{pipeline="broken",state="failed"} 1');
    expect(text).toContain('weft_task_runs_total{pipeline="broken",state="skipped"} 1');
    // demo's flaky retried once in each of 5 runs; broken's explode once.
    expect(text).toContain('weft_task_retries_total{pipeline="demo"} 5');
    expect(text).toContain('weft_task_retries_total{pipeline="broken"} 1');
    expect(text).toContain('weft_schedule_lag_seconds_count 1');
    expect(text).toContain('# TYPE weft_task_duration_seconds histogram');
    const buckets = lines
      .filter((l) => l.startsWith('weft_task_duration_seconds_bucket'))
      .map((l) => Number(l.split(' ')[1]));
    expect(buckets.length).toBeGreaterThan(2);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]!).toBeGreaterThanOrEqual(buckets[i - 1]!);
    const count = Number(lines.find((l) => l.startsWith('weft_task_duration_seconds_count'))!.split(' ')[1]);
    expect(buckets[buckets.length - 1]).toBe(count);
    expect(count).toBe(16);
  });

  it('answers unknown routes with 404 and wrong methods with 405, as JSON errors', async () => {
    const r = await get(s.url, '/api/nothing');
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('NOT_FOUND');
    const m = await post(s.url, '/api/runs', {});
    expect(m.status).toBe(405);
    expect(m.headers.get('allow')).toBe('GET');
  });

  it('refuses path tricks: .., %2e%2e, %2F in ids, trailing segments', async () => {
    const raw = async (path: string) => {
      // fetch would normalise "..": send the path as written.
      const { request } = await import('node:http');
      const url = new URL(s.url);
      return new Promise<number>((resolve, reject) => {
        const req = request({ host: url.hostname, port: url.port, path, method: 'GET' }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    };
    expect(await raw(`/api/runs/../pipelines`)).toBe(400);
    expect(await raw(`/api/runs/%2e%2e/logs`)).toBe(400);
    expect(await raw(`/api/runs/%2E%2E`)).toBe(400);
    expect(await raw(`/api/runs/${ok.id}%2Flogs`)).toBe(400);
    expect(await raw(`/api/runs/${ok.id}%5Clogs`)).toBe(400);
    expect(await raw(`/api/runs/${ok.id}/logs/junk`)).toBe(404);
    expect(await raw(`/api/runs/${ok.id}/`)).toBe(404);
    expect(await raw(`/api/runs//${ok.id}`)).toBe(404);
    expect(await raw(`/api/runs/%E0%A4%A`)).toBe(400);
    expect(await raw(`/api/runs/${ok.id}`)).toBe(200);
  });

  it('never answers 500 with a stack: the catch-all is generic and the error is logged', async () => {
    const logged: string[] = [];
    const broken = await serve(f, {
      logger: { error: (message) => logged.push(message) },
      pipelines: () => {
        throw new Error('secret internal detail at /home/x');
      },
    });
    try {
      const r = await get(broken.url, '/api/pipelines');
      expect(r.status).toBe(500);
      expect(r.body).toEqual({
        error: { code: 'INTERNAL', message: 'internal server error; see the server log' },
      });
      expect(r.text).not.toContain('secret internal detail');
      expect(logged).toEqual(['GET /api/pipelines failed']);
    } finally {
      await broken.close();
    }
  });
});

describe('actions: run now, requests, cancel, resume, SSE', () => {
  let f: Fixture;
  let s: Served;
  const resumed: string[] = [];

  beforeAll(async () => {
    f = memoryFixture();
    s = await serve(f, {
      scheduler: {
        resumeRun: (runId: string) => {
          resumed.push(runId);
          void f.execute(runId);
        },
      },
    });
  });
  afterAll(async () => {
    f.gate.open();
    await s.close();
    await f.cleanup();
  });

  it('POST /api/pipelines/:name/runs checks params, records a request, and the request leads to the run', async () => {
    const r = await post(s.url, '/api/pipelines/demo/runs', { params: { who: 'ann', count: 3 } });
    expect(r.status).toBe(202);
    expect(r.body.request).toMatchObject({
      pipeline: 'demo',
      state: 'pending',
      params: { who: 'ann', count: 3 },
      run_id: null,
    });
    const id = r.body.request.id as string;
    expect(r.body.links.request).toBe(`/api/requests/${id}`);
    const [runId] = await f.serveRequests();
    const q = await get(s.url, `/api/requests/${id}`);
    expect(q.status).toBe(200);
    expect(q.body.request).toMatchObject({ id, state: 'done', run_id: runId });
    await until(async () => (await f.store.getRun(runId!))?.state === 'succeeded', 'the requested run');
    expect((await f.store.getRun(runId!))!.params).toEqual({ who: 'ann', count: 3 });
    expect((await get(s.url, '/api/requests/q_NOPE')).status).toBe(404);
  });

  it('defaults params and rejects unknown or mistyped params with 400 PARAM_INVALID', async () => {
    const defaults = await post(s.url, '/api/pipelines/demo/runs', {});
    expect(defaults.status).toBe(202);
    expect(defaults.body.request.params).toEqual({ who: 'world', count: 1 });
    const unknown = await post(s.url, '/api/pipelines/demo/runs', { params: { whom: 'x' } });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.code).toBe('PARAM_INVALID');
    expect(unknown.body.error.message).toContain('did you mean "who"');
    const typed = await post(s.url, '/api/pipelines/demo/runs', { params: { count: '3' } });
    expect(typed.status).toBe(400);
    expect(typed.body.error.details[0]).toContain('expected an integer');
    const proto = await post(
      s.url,
      '/api/pipelines/demo/runs',
      JSON.parse('{"params":{"__proto__":{"x":1}}}'),
    );
    expect(proto.status).toBe(400);
    expect((await post(s.url, '/api/pipelines/demo/runs', { params: [] })).status).toBe(400);
    expect((await post(s.url, '/api/pipelines/demo/runs', { parms: {} })).status).toBe(400);
    expect((await post(s.url, '/api/pipelines/nope/runs', {})).status).toBe(404);
    const invalid = await post(s.url, '/api/pipelines/invalid/runs', {});
    expect(invalid.status).toBe(409);
    expect(invalid.body.error.code).toBe('PIPELINE_INVALID');
    await f.store.claimRunRequests(100, 'drain', new Date().toISOString());
  });

  it('POSTs need a JSON content type (no cross-site form posts) and valid JSON', async () => {
    const form = await fetch(`${s.url}/api/pipelines/demo/runs`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'params=1',
    });
    expect(form.status).toBe(415);
    const broken = await fetch(`${s.url}/api/pipelines/demo/runs`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{nope',
    });
    expect(broken.status).toBe(400);
  });

  it('streams logs over SSE while a run goes on, then ends when it finishes', async () => {
    f.gate = createGate();
    const run = await f.create('slow');
    const done = f.execute(run.id);
    await until(async () => (await f.store.getLogs(run.id)).length > 0, 'the first log line');
    const res = await fetch(`${s.url}/api/runs/${run.id}/logs/stream?task=hold`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const readUntil = async (marker: string) => {
      while (!text.includes(marker)) {
        const chunk = await reader.read();
        if (chunk.done) break;
        text += decoder.decode(chunk.value, { stream: true });
      }
    };
    await readUntil('waiting for the gate');
    expect(text).not.toContain('event: end');
    f.gate.open();
    await done;
    await readUntil('event: end');
    const chunk = await reader.read();
    expect(chunk.done).toBe(true);
    const events = text
      .split('\n\n')
      .filter((b) => b.includes('event:'))
      .map((b) => ({ event: /event: (\w+)/.exec(b)![1], data: JSON.parse(/data: (.*)/.exec(b)![1]!) }));
    expect(events.map((e) => [e.event, e.data.message ?? e.data.state])).toEqual([
      ['log', 'waiting for the gate'],
      ['log', 'gate opened'],
      ['end', 'succeeded'],
    ]);
    expect(text).toMatch(/^id: \d+$/m);
  });

  it('POST /api/runs/:id/cancel cancels a running run; a finished run is 409', async () => {
    f.gate = createGate();
    const run = await f.create('slow');
    const done = f.execute(run.id);
    await until(async () => (await f.store.getRun(run.id))?.state === 'running', 'the run to start');
    const r = await post(s.url, `/api/runs/${run.id}/cancel`, {});
    expect(r.status).toBe(202);
    expect(r.body.run.cancel_requested).toBe(true);
    const final = await done;
    expect(final.state).toBe('cancelled');
    const again = await post(s.url, `/api/runs/${run.id}/cancel`, {});
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('RUN_STATE');
    expect((await post(s.url, '/api/runs/r_NOPE/cancel', {})).status).toBe(404);
  });

  it('POST /api/runs/:id/resume prepares the run and hands it to the scheduler', async () => {
    const failed = await f.run('broken');
    expect(failed.state).toBe('failed');
    const r = await post(s.url, `/api/runs/${failed.id}/resume`, {});
    expect(r.status).toBe(202);
    expect(r.body.run).toMatchObject({ id: failed.id, state: 'queued', attempt: 2 });
    expect(resumed).toEqual([failed.id]);
    await until(async () => (await f.store.getRun(failed.id))?.state === 'failed', 'the resumed run to end');
    expect((await f.store.getAttempts(failed.id, 'explode')).length).toBe(4);
    const ok = await f.run('demo');
    const notResumable = await post(s.url, `/api/runs/${ok.id}/resume`, {});
    expect(notResumable.status).toBe(409);
    const badTask = await post(s.url, `/api/runs/${failed.id}/resume`, { task: 'nope' });
    expect(badTask.status).toBe(400);
  });

  it('resume without a scheduler that can execute it is 503, and the run is left as it was', async () => {
    const other = await serve(f);
    try {
      await until(
        async () => (await f.store.listRuns({ states: ['running', 'queued'] })).length === 0,
        'quiet store',
      );
      const failed = await f.run('broken');
      const r = await post(other.url, `/api/runs/${failed.id}/resume`, {});
      expect(r.status).toBe(503);
      expect(r.body.error.code).toBe('SERVICE_UNAVAILABLE');
      expect((await f.store.getRun(failed.id))!.state).toBe('failed');
    } finally {
      await other.close();
    }
  });
});

describe('the same API over SQLite', () => {
  it('lists runs and answers healthz with the store kind', async () => {
    const f = sqliteFixture();
    const s = await serve(f);
    try {
      const run = await f.run('demo');
      expect((await get(s.url, '/healthz')).body).toEqual({ ok: true, store: 'sqlite' });
      const list = await get(s.url, '/api/runs');
      expect(list.body.runs.map((r: { id: string }) => r.id)).toEqual([run.id]);
      const logs = await get(s.url, `/api/runs/${run.id}/logs?task=greet`);
      expect(logs.body.lines[0].message).toBe(XSS);
    } finally {
      await s.close();
      await f.cleanup();
    }
  });
});
