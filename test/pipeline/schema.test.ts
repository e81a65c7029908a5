import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { parsePipelineText } from '../../src/pipeline/load.js';
import { loadPipelineSchema, mergeHandlerSchemas, type JsonSchema } from '../../src/pipeline/schema.js';
import type {
  HookObjectSpec,
  ParamSpec,
  PipelineSpec,
  ScheduleObjectSpec,
  TaskSettingsSpec,
  TaskSpec,
} from '../../src/pipeline/spec.js';
import { createPipelineValidator } from '../../src/pipeline/validate-schema.js';

type Schema = Record<string, unknown> & {
  properties?: Record<string, Schema>;
  $defs?: Record<string, Schema>;
};

const schema = loadPipelineSchema() as Schema;
const defs = schema.$defs!;
const keysOf = (s: Schema | undefined) => Object.keys(s?.properties ?? {}).sort();

// The compiler checks these objects name every key of each spec interface and nothing else, so a
// key added to spec.ts without the schema (or the reverse) fails here.
const pipelineKeys: Record<keyof PipelineSpec, true> = {
  name: true,
  description: true,
  schedule: true,
  params: true,
  defaults: true,
  concurrency: true,
  retries: true,
  retry_delay: true,
  timeout: true,
  on_failure: true,
  on_success: true,
  on_recovery: true,
  secrets: true,
  resume_interrupted: true,
  tasks: true,
};
const settingsKeys: Record<keyof TaskSettingsSpec, true> = {
  retries: true,
  retry_delay: true,
  backoff: true,
  max_retry_delay: true,
  jitter: true,
  timeout: true,
  trigger_rule: true,
  continue_on_error: true,
  queue: true,
  on_failure: true,
};
const taskKeys: Record<keyof TaskSpec, true> = {
  ...settingsKeys,
  handler: true,
  with: true,
  depends_on: true,
  when: true,
  description: true,
};
const scheduleKeys: Record<keyof ScheduleObjectSpec, true> = {
  cron: true,
  timezone: true,
  overlap: true,
  catchup: true,
  catchup_limit: true,
  start_deadline: true,
};
const paramKeys: Record<keyof ParamSpec, true> = { type: true, default: true, description: true, enum: true };
const hookKeys: Record<keyof HookObjectSpec, true> = {
  handler: true,
  with: true,
  after_consecutive_failures: true,
  timeout: true,
};

/** Every schema object in the tree, with where it is. */
function* walk(node: unknown, where = '#'): Generator<[string, Schema]> {
  if (Array.isArray(node)) {
    for (const [i, item] of node.entries()) yield* walk(item, `${where}/${i}`);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  yield [where, node as Schema];
  for (const [key, value] of Object.entries(node)) {
    if (key === 'examples' || key === 'default' || key === 'enum' || key === 'const') continue;
    yield* walk(value, `${where}/${key}`);
  }
}

describe('schema/pipeline.schema.json', () => {
  it('is draft 2020-12 with an $id, a title and a description', () => {
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.$id).toBe('https://weft.dev/schema/pipeline.schema.json');
    expect(typeof schema.title).toBe('string');
    expect(typeof schema.description).toBe('string');
  });

  it('names the same keys as the spec types', () => {
    expect(keysOf(schema)).toEqual(Object.keys(pipelineKeys).sort());
    expect(keysOf(defs.taskSettings)).toEqual(Object.keys(settingsKeys).sort());
    expect(keysOf(defs.task)).toEqual(Object.keys(taskKeys).sort());
    expect(keysOf(defs.schedule)).toEqual(Object.keys(scheduleKeys).sort());
    expect(keysOf(defs.param)).toEqual(Object.keys(paramKeys).sort());
    expect(keysOf(defs.hook)).toEqual(Object.keys(hookKeys).sort());
  });

  it('gives every property a description and examples, and closes every object', () => {
    let properties = 0;
    for (const [where, node] of walk(schema)) {
      if (node.properties) {
        expect(node.additionalProperties, `${where} must close with additionalProperties: false`).toBe(false);
        for (const [name, property] of Object.entries(node.properties)) {
          properties += 1;
          expect(typeof property.description, `${where}/properties/${name} description`).toBe('string');
          expect(
            Array.isArray(property.examples) && property.examples.length > 0,
            `${where}/properties/${name} examples`,
          ).toBe(true);
        }
      }
    }
    expect(properties).toBeGreaterThan(40);
  });

  it('validates its own examples', () => {
    const ajv = new Ajv2020({ strict: true, allowUnionTypes: true });
    for (const [where, node] of walk(schema)) {
      if (!node.properties) continue;
      for (const [name, property] of Object.entries(node.properties)) {
        const check = ajv.compile({
          ...property,
          $defs: defs,
          $id: undefined,
          description: undefined,
          examples: undefined,
        });
        for (const example of property.examples as unknown[]) {
          expect(check(example), `${where}/properties/${name}: ${JSON.stringify(example)}`).toBe(true);
        }
      }
    }
  });

  it('states the defaults', () => {
    const task = defs.task!.properties!;
    expect(task.backoff?.default).toBe('fixed');
    expect(task.trigger_rule?.default).toBe('all_success');
    expect(task.queue?.default).toBe('default');
    expect(task.retries?.default).toBe(0);
    expect(task.jitter?.default).toBe(false);
    expect(task.continue_on_error?.default).toBe(false);
    expect(defs.schedule!.properties!.overlap?.default).toBe('skip');
    expect(defs.schedule!.properties!.catchup?.default).toBe('none');
  });

  it('changes only on purpose (snapshot)', async () => {
    await expect(stableJson(schema)).toMatchFileSnapshot('./__snapshots__/pipeline.schema.json.snap');
  });

  it('loadPipelineSchema returns a fresh copy each time', () => {
    const a = loadPipelineSchema();
    a.title = 'changed';
    expect(loadPipelineSchema().title).not.toBe('changed');
  });
});

describe('mergeHandlerSchemas', () => {
  const handlers = [
    {
      name: 'shell',
      args: {
        type: 'object',
        properties: { script: { type: 'string' } },
        required: ['script'],
        additionalProperties: false,
      },
    },
    {
      name: 'notify.slack',
      args: {
        $schema: 'https://json-schema.org/draft/2020-12/schema',
        type: 'object',
        properties: { channel: { type: 'string' } },
        additionalProperties: false,
      },
    },
    { name: 'noop' },
  ];
  const merged = mergeHandlerSchemas(loadPipelineSchema(), handlers) as Schema;

  it('adds one if/then per handler with args to tasks and hooks, and leaves the input alone', () => {
    const original = loadPipelineSchema();
    mergeHandlerSchemas(original, handlers);
    expect((original.$defs as Schema).task).not.toHaveProperty('allOf');
    for (const def of ['task', 'hook']) {
      const allOf = (merged.$defs![def] as { allOf: JsonSchema[] }).allOf;
      expect(allOf).toHaveLength(2);
      expect(allOf[0]).toMatchObject({
        if: { properties: { handler: { const: 'shell' } }, required: ['handler'] },
      });
    }
    expect(mergeHandlerSchemas(loadPipelineSchema(), [])).toEqual(loadPipelineSchema());
  });

  it('compiles in strict mode and rejects a bad `with` for a handler', () => {
    const check = createPipelineValidator(merged);
    const run = (text: string) =>
      check(parsePipelineText('p.yaml', text).source).diagnostics.map(
        (d) => `${d.code} ${d.line}:${d.column}`,
      );
    expect(run('name: m\ntasks:\n  a: { handler: shell, with: { script: "echo hi" } }\n')).toEqual([]);
    expect(run('name: m\ntasks:\n  a:\n    handler: shell\n    with: { script: 42 }\n')).toEqual([
      'SCHEMA_TYPE 5:21',
    ]);
    expect(run('name: m\ntasks:\n  a:\n    handler: shell\n    with: { scrpt: x }\n')).toEqual([
      'SCHEMA_MISSING_KEY 5:5',
      'SCHEMA_UNKNOWN_KEY 5:13',
    ]);
    expect(
      run('name: m\non_failure:\n  - handler: notify.slack\n    with: { chanel: "#a" }\ntasks:\n  a: {}\n'),
    ).toEqual(['SCHEMA_UNKNOWN_KEY 4:13']);
    // Unknown handlers and handlers without args are not constrained by the schema.
    expect(
      run('name: m\ntasks:\n  a: { handler: noop, with: [1, 2] }\n  b: { handler: other, with: 5 }\n'),
    ).toEqual([]);
  });
});

function stableJson(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (typeof v !== 'object' || v === null) return v;
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, sort((v as Record<string, unknown>)[k])]),
    );
  };
  return JSON.stringify(sort(value), null, 2) + '\n';
}
