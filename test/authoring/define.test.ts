// The expectTypeOf assertions are checked by the type-checker, which `npm test` runs before vitest
// (tsc -p tsconfig.json covers test/): a wrong inference fails the suite.
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  defineConfig,
  defineHandler,
  type FromSchema,
  type Handler,
  type HandlerContext,
} from '../../src/index.js';
import { runHandler } from '../../src/index.js';

// These type assertions are checked by `tsc --noEmit` (npm run typecheck); the `it` bodies also
// run, so a wrong runtime shape fails here too.

describe('FromSchema', () => {
  it('maps scalar types, enum and const', () => {
    expectTypeOf<FromSchema<{ type: 'string' }>>().toEqualTypeOf<string>();
    expectTypeOf<FromSchema<{ type: 'integer' }>>().toEqualTypeOf<number>();
    expectTypeOf<FromSchema<{ type: 'number' }>>().toEqualTypeOf<number>();
    expectTypeOf<FromSchema<{ type: 'boolean' }>>().toEqualTypeOf<boolean>();
    expectTypeOf<FromSchema<{ type: 'null' }>>().toEqualTypeOf<null>();
    expectTypeOf<FromSchema<{ type: readonly ['string', 'null'] }>>().toEqualTypeOf<string | null>();
    expectTypeOf<FromSchema<{ enum: readonly ['dev', 'prod'] }>>().toEqualTypeOf<'dev' | 'prod'>();
    expectTypeOf<FromSchema<{ const: 42 }>>().toEqualTypeOf<42>();
    expectTypeOf<FromSchema<{ description: 'anything' }>>().toEqualTypeOf<unknown>();
  });

  it('maps objects: required, optional, closed and open', () => {
    const schema = {
      type: 'object',
      properties: { url: { type: 'string' }, retries: { type: 'integer' } },
      required: ['url'],
      additionalProperties: false,
    } as const;
    expectTypeOf<FromSchema<typeof schema>>().toEqualTypeOf<{ url: string; retries?: number }>();

    type Open = FromSchema<{ type: 'object'; properties: { a: { type: 'string' } } }>;
    expectTypeOf<Open['a']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<Open['other']>().toEqualTypeOf<unknown>();

    type Map = FromSchema<{ type: 'object'; additionalProperties: { type: 'number' } }>;
    expectTypeOf<Map>().toMatchTypeOf<{ [key: string]: number | undefined }>();
    expect(schema.required).toEqual(['url']);
  });

  it('maps arrays and nesting', () => {
    const schema = {
      type: 'object',
      properties: {
        rules: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              kind: { enum: ['bottleneck', 'isolated'] },
              above: { type: 'number' },
              tags: { type: 'array', items: { type: 'string' } },
            },
            required: ['kind'],
            additionalProperties: false,
          },
        },
      },
      required: ['rules'],
      additionalProperties: false,
    } as const;
    expectTypeOf<FromSchema<typeof schema>>().toEqualTypeOf<{
      rules: { kind: 'bottleneck' | 'isolated'; above?: number; tags?: string[] }[];
    }>();
    expectTypeOf<FromSchema<{ type: 'array' }>>().toEqualTypeOf<unknown[]>();
    expect(schema.properties.rules.type).toBe('array');
  });

  it('maps oneOf/anyOf to a union', () => {
    type Duration = FromSchema<{ oneOf: readonly [{ type: 'string' }, { type: 'number' }] }>;
    expectTypeOf<Duration>().toEqualTypeOf<string | number>();
    type Either = FromSchema<{ anyOf: readonly [{ const: 'a' }, { type: 'boolean' }] }>;
    expectTypeOf<Either>().toEqualTypeOf<'a' | boolean>();
  });
});

describe('defineHandler', () => {
  const greet = defineHandler({
    name: 'greet',
    description: 'Greets someone.',
    args: {
      type: 'object',
      properties: { who: { type: 'string' }, times: { type: 'integer', minimum: 1 } },
      required: ['who'],
      additionalProperties: false,
    },
    describe: ({ who }) => `greet ${who}`,
    run: ({ who, times }, ctx) => {
      expectTypeOf(who).toEqualTypeOf<string>();
      expectTypeOf(times).toEqualTypeOf<number | undefined>();
      expectTypeOf(ctx).toEqualTypeOf<HandlerContext>();
      ctx.log.info(`hello ${who}`);
      return { greeting: `hello ${who}`.repeat(times ?? 1) };
    },
  });

  it('types run from the inline schema (no `as const` needed)', () => {
    expectTypeOf(greet).toEqualTypeOf<Handler<{ who: string; times?: number }>>();
    // Never called: only the compiler looks at these.
    const _misuse = () => {
      // @ts-expect-error -- `who` is required by the schema
      void greet.run({}, {} as HandlerContext);
      // @ts-expect-error -- `who` is a string
      void greet.run({ who: 1 }, {} as HandlerContext);
    };
    expect(greet.name).toBe('greet');
    expect(greet.args).toMatchObject({ required: ['who'] });
    expect(greet.describe?.({ who: 'ada' }, { pipeline: 'p', task: 't' })).toBe('greet ada');
  });

  it('runs with validated arguments and collects its log lines', async () => {
    const result = await runHandler(greet, { who: 'ada', times: 2 });
    expect(result.output).toEqual({ greeting: 'hello adahello ada' });
    expect(result.logs).toEqual([{ level: 'info', message: 'hello ada' }]);
  });

  it('passes {} to an object-schema handler whose task has no `with`', async () => {
    const seen: unknown[] = [];
    const optional = defineHandler({
      name: 'optional',
      args: { type: 'object', properties: { n: { type: 'number' } }, additionalProperties: false },
      run: (args) => {
        seen.push(args);
        return args.n ?? 0;
      },
    });
    expect((await runHandler(optional, undefined)).output).toBe(0);
    expect(seen).toEqual([{}]);
  });

  it('defines a handler without arguments', async () => {
    const tick = defineHandler({ name: 'tick', run: (args) => (args === undefined ? 'tick' : 'unexpected') });
    expectTypeOf(tick).toEqualTypeOf<Handler<undefined>>();
    expect(tick.args).toBeUndefined();
    expect((await runHandler(tick, undefined)).output).toBe('tick');
  });
});

describe('defineConfig', () => {
  it('returns the config as given, typed', () => {
    const handler = defineHandler({ name: 'x', run: () => null });
    const config = defineConfig({ handlers: [handler], pipelines: 'flows', store: ':memory:' });
    expect(config).toEqual({ handlers: [handler], pipelines: 'flows', store: ':memory:' });
    const _misuse = () =>
      // @ts-expect-error -- pipelines is a folder path
      defineConfig({ pipelines: 3 });
  });
});
