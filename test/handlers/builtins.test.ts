import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { isNonRetryable } from '../../src/errors.js';
import { createBuiltinHandlers, createBuiltinRegistry } from '../../src/handlers/builtins.js';
import { failHandler } from '../../src/handlers/builtin/fail.js';
import { httpRequestHandler } from '../../src/handlers/builtin/http-request.js';
import { noopHandler } from '../../src/handlers/builtin/noop.js';
import { notifyWebhookHandler } from '../../src/handlers/builtin/notify-webhook.js';
import { describeShellCommand, shellHandler } from '../../src/handlers/builtin/shell.js';
import { sleepHandler } from '../../src/handlers/builtin/sleep.js';
import type { JsonSchema } from '../../src/handlers/types.js';
import { createTestContext } from '../support/handler-context.js';

const DESCRIBE_CTX = { pipeline: 'etl', task: 't' };

/** Every property, at any depth of `properties`, with its path. */
function propertiesOf(schema: JsonSchema, path = ''): [string, JsonSchema][] {
  const props = (schema.properties ?? {}) as Record<string, JsonSchema>;
  return Object.entries(props).flatMap(([name, sub]) => [
    [`${path}/${name}`, sub] as [string, JsonSchema],
    ...propertiesOf(sub, `${path}/${name}`),
  ]);
}

describe('built-in handlers', () => {
  it('registers the six built-ins by name', () => {
    const registry = createBuiltinRegistry();
    expect(registry.names()).toEqual(['fail', 'http.request', 'noop', 'notify.webhook', 'shell', 'sleep']);
    expect(registry.get('shell')?.shellQuoted).toEqual(['command']);
    // A fresh registry each time: registering on one does not leak into the next.
    registry.register({ name: 'mine', run: () => null });
    expect(createBuiltinRegistry().has('mine')).toBe(false);
  });

  describe.each(createBuiltinHandlers().filter((h) => h.args !== undefined))(
    '$name args schema',
    (handler) => {
      const schema = handler.args!;

      it('compiles under ajv 2020-12 strict mode', () => {
        const ajv = new Ajv2020({ strict: true, allErrors: true });
        expect(() => ajv.compile(schema)).not.toThrow();
      });

      it('is a closed object with a description and examples on every property', () => {
        expect(schema.type).toBe('object');
        expect(schema.additionalProperties).toBe(false);
        expect(typeof schema.description).toBe('string');
        const props = propertiesOf(schema);
        expect(props.length).toBeGreaterThan(0);
        for (const [path, prop] of props) {
          expect(typeof prop.description, `${path} description`).toBe('string');
          expect(Array.isArray(prop.examples) && prop.examples.length > 0, `${path} examples`).toBe(true);
        }
      });

      it('accepts its own examples', () => {
        const ajv = new Ajv2020({ strict: true });
        const validate = ajv.compile(schema);
        const required = (schema.required ?? []) as string[];
        for (const [path, prop] of propertiesOf(schema)) {
          const name = path.slice(1);
          for (const example of prop.examples as unknown[]) {
            const args: Record<string, unknown> = { [name]: example };
            for (const key of required) if (!(key in args)) args[key] = key === 'duration' ? '1s' : 'x';
            expect(
              validate(args),
              `${path} = ${JSON.stringify(example)}: ${JSON.stringify(validate.errors)}`,
            ).toBe(true);
          }
        }
      });
    },
  );

  it('rejects bad arguments in the schemas', () => {
    const ajv = new Ajv2020({ strict: true });
    const sleep = ajv.compile(sleepHandler.args!);
    expect(sleep({ duration: '5s' })).toBe(true);
    expect(sleep({ duration: 2.5 })).toBe(true);
    expect(sleep({ duration: 'soon' })).toBe(false);
    expect(sleep({})).toBe(false);
    const shell = ajv.compile(shellHandler.args!);
    expect(shell({ command: ['ls', '-l'], env: { A: '1' } })).toBe(true);
    expect(shell({ command: [] })).toBe(false);
    expect(shell({ command: 'ls', env: { A: 1 } })).toBe(false);
    expect(shell({ command: 'ls', shell: true })).toBe(false);
    const http = ajv.compile(httpRequestHandler.args!);
    expect(http({ url: 'https://x.test', method: 'POST', json: { a: [1] }, allow_status: [404] })).toBe(true);
    expect(http({ url: 'https://x.test', method: 'FETCH' })).toBe(false);
    expect(http({ url: 'https://x.test', allow_status: [99] })).toBe(false);
    const fail = ajv.compile(failHandler.args!);
    expect(fail({ times: 2, retryable: false })).toBe(true);
    expect(fail({ times: -1 })).toBe(false);
  });

  it('noop returns null and declares no args', async () => {
    const { ctx } = createTestContext();
    expect(noopHandler.args).toBeUndefined();
    expect(await noopHandler.run(undefined, ctx)).toBeNull();
  });

  it('describes what each handler would do, in one line', () => {
    expect(noopHandler.describe!(undefined, DESCRIBE_CTX)).toBe('do nothing');
    expect(sleepHandler.describe!({ duration: 90 }, DESCRIBE_CTX)).toBe('sleep 1m30s');
    expect(sleepHandler.describe!({ duration: '250ms' }, DESCRIBE_CTX)).toBe('sleep 250ms');
    expect(failHandler.describe!(undefined, DESCRIBE_CTX)).toBe('fail every attempt');
    expect(failHandler.describe!({ times: 2, retryable: false }, DESCRIBE_CTX)).toBe(
      'fail the first 2 attempt(s) (not retryable)',
    );
    expect(shellHandler.describe!({ command: ['echo', "it's", 'a b', '$HOME'] }, DESCRIBE_CTX)).toBe(
      `echo 'it'\\''s' 'a b' '$HOME' (no shell)`,
    );
    expect(shellHandler.describe!({ command: 'echo "$X" | wc -c' }, DESCRIBE_CTX)).toBe(
      `sh -c 'echo "$X" | wc -c'`,
    );
    expect(describeShellCommand({ command: 'make', cwd: '/srv/app dir', env: { A: '1', B: '2' } })).toBe(
      `sh -c make (cwd '/srv/app dir'; env A, B)`,
    );
    expect(describeShellCommand({ command: 'set -e\necho one\necho two' })).toBe(
      `sh -c 'set -e …' (3 lines)`,
    );
    expect(
      httpRequestHandler.describe!(
        {
          url: 'https://user:pw@api.test/v1/jobs?token=secret',
          method: 'POST',
          json: {},
          allow_status: [404],
        },
        DESCRIBE_CTX,
      ),
    ).toBe('POST https://api.test/v1/jobs?… with a JSON body (also accepting 404)');
    expect(httpRequestHandler.describe!({ url: 'http://h.test/x' }, DESCRIBE_CTX)).toBe(
      'GET http://h.test/x',
    );
    expect(
      notifyWebhookHandler.describe!({ url: 'https://hooks.slack.com/services/T/B/X' }, DESCRIBE_CTX),
    ).toBe('post a message about pipeline etl to hooks.slack.com');
  });
});

describe('sleep', () => {
  it('resolves after the duration', async () => {
    const { ctx } = createTestContext();
    const started = performance.now();
    expect(await sleepHandler.run({ duration: '60ms' }, ctx)).toBeNull();
    expect(performance.now() - started).toBeGreaterThanOrEqual(55);
  });

  it('rejects promptly with the abort reason', async () => {
    const { ctx, abort } = createTestContext();
    const reason = new Error('task timed out');
    const started = performance.now();
    const pending = sleepHandler.run({ duration: '30s' }, ctx);
    setTimeout(() => abort(reason), 20);
    await expect(pending).rejects.toBe(reason);
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('does not start when already aborted, and refuses a non-duration for good', async () => {
    const { ctx, abort } = createTestContext();
    abort(new Error('cancelled'));
    await expect(sleepHandler.run({ duration: '1s' }, ctx)).rejects.toThrow('cancelled');
    const fresh = createTestContext().ctx;
    const error = await Promise.resolve(sleepHandler.run({ duration: 'soon' }, fresh)).catch(
      (e: unknown) => e,
    );
    expect(isNonRetryable(error)).toBe(true);
  });
});

describe('fail', () => {
  it('fails every attempt by default, with a retryable error', () => {
    for (const attempt of [1, 2, 7]) {
      const { ctx } = createTestContext({ attempt });
      let thrown: unknown;
      try {
        // fail throws synchronously; `void` only marks the (never) returned value as unused.
        void failHandler.run(undefined, ctx);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(Error);
      expect((thrown as Error).message).toBe(`failing on purpose (attempt ${attempt})`);
      expect(isNonRetryable(thrown)).toBe(false);
    }
  });

  it('fails the first N attempts, then returns the attempt', () => {
    const outcome = (attempt: number) => {
      try {
        return failHandler.run({ times: 2, message: 'flaky' }, createTestContext({ attempt }).ctx);
      } catch (error) {
        return (error as Error).message;
      }
    };
    expect([1, 2, 3, 4].map(outcome)).toEqual(['flaky', 'flaky', { attempt: 3 }, { attempt: 4 }]);
    expect(failHandler.run({ times: 0 }, createTestContext().ctx)).toEqual({ attempt: 1 });
  });

  it('throws a NonRetryableError when retryable is false', () => {
    const { ctx } = createTestContext();
    expect(() => failHandler.run({ retryable: false, message: 'bad input' }, ctx)).toThrow(
      expect.objectContaining({ name: 'NonRetryableError', message: 'bad input' }),
    );
  });
});
