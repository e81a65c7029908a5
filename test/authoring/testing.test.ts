import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defineHandler, NonRetryableError, runHandler, runPipeline } from '../../src/index.js';
import { WeftError } from '../../src/errors.js';

const HELLO = resolve(import.meta.dirname, '..', '..', 'pipelines', 'hello.yaml');

describe('runHandler', () => {
  const fetchRows = defineHandler({
    name: 'rows.fetch',
    args: {
      type: 'object',
      properties: { table: { type: 'string' }, limit: { type: 'integer', minimum: 1 } },
      required: ['table'],
      additionalProperties: false,
    },
    run: async ({ table, limit }, ctx) => {
      if (table === 'missing') throw new NonRetryableError(`no table ${table}`);
      ctx.log.warn(`reading ${table}`);
      await new Promise((r) => setTimeout(r, 1));
      return { table, rows: limit ?? 10, env: ctx.env.REGION ?? null };
    },
  });

  it('validates arguments like the engine, with code HANDLER_ARGS', async () => {
    const error = await runHandler(fetchRows, { table: 't', limit: 0 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WeftError);
    expect((error as WeftError).code).toBe('HANDLER_ARGS');
    expect((error as WeftError).message).toMatch(/with\/limit must be >= 1/);
    await expect(runHandler(fetchRows, { tabel: 't' })).rejects.toMatchObject({ code: 'HANDLER_ARGS' });
  });

  it('returns the output and the log lines; the environment is empty unless given', async () => {
    expect(await runHandler(fetchRows, { table: 'orders' })).toEqual({
      output: { table: 'orders', rows: 10, env: null },
      logs: [{ level: 'warn', message: 'reading orders' }],
    });
    const withEnv = await runHandler(fetchRows, { table: 'o', limit: 2 }, { env: { REGION: 'eu' } });
    expect(withEnv.output).toEqual({ table: 'o', rows: 2, env: 'eu' });
  });

  it('rejects with what the handler threw', async () => {
    await expect(runHandler(fetchRows, { table: 'missing' })).rejects.toThrow(NonRetryableError);
  });

  it('refuses output that is not JSON', async () => {
    const bad = defineHandler({ name: 'bad', run: () => ({ when: new Date(0) }) as never });
    await expect(runHandler(bad, undefined)).rejects.toMatchObject({ code: 'HANDLER_OUTPUT_INVALID' });
  });
});

describe('runPipeline', () => {
  it('runs a pipeline in memory with mocks, reporting every task and call', async () => {
    const result = await runPipeline(HELLO, {
      params: { who: 'ada lovelace' },
      mocks: { shell: { output: { stdout: 'mocked' } } },
    });
    expect(result.run.state).toBe('succeeded');
    expect(result.tasks.greet).toMatchObject({
      state: 'succeeded',
      output: { stdout: 'mocked' },
      attempts: 1,
    });
    expect(result.tasks.cleanup?.state).toBe('succeeded');
    expect(result.calls.greet).toEqual([{ command: "echo hello, 'ada lovelace'" }]);
  });

  it('runs real handlers unless mocked, and retries without the pipeline’s delay', async () => {
    const started = Date.now();
    const result = await runPipeline(HELLO, {
      mocks: { greet: { fail: 'flaky', times: 1, output: { stdout: 'hi' } }, count_files: { output: null } },
    });
    expect(Date.now() - started).toBeLessThan(900); // retry_delay is 1s in hello.yaml
    expect(result.tasks.greet).toMatchObject({ state: 'succeeded', attempts: 2 });
    // report ran the real shell handler with greet's mocked output.
    expect(result.tasks.report?.output).toMatchObject({ stdout: 'greeted with "hi"' });
  });

  it('takes project handlers and rejects an invalid pipeline with PIPELINE_INVALID', async () => {
    const error = await runPipeline(resolve(import.meta.dirname, 'nope.yaml')).catch((e: unknown) => e);
    expect((error as WeftError).code).toBe('PIPELINE_INVALID');
    await expect(runPipeline(HELLO, { mocks: { gret: { output: 1 } } })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
    });
    await expect(runPipeline(HELLO, { params: { whom: 'x' } })).rejects.toMatchObject({
      code: 'PARAM_INVALID',
    });
  });
});
