import type { JsonValue } from '../core/json.js';
import type { DescribeContext, Handler, HandlerContext, JsonSchema } from '../handlers/types.js';
import type { WeftConfig } from '../project/config.js';
import type { FromSchema } from './from-schema.js';

/** What `defineHandler` takes: a handler whose `run` is typed from its `args` schema. */
export interface HandlerDefinition<S extends JsonSchema, Args = FromSchema<S>> {
  /** Dotted namespaces allowed: `billing.sync`. */
  name: string;
  description?: string;
  /**
   * JSON Schema of the task's `with`, written as a literal: the engine validates against it (at
   * `weft validate` and again after substitution), and `run` receives the type it describes.
   */
  args: S;
  /** Top-level argument names whose strings are shell scripts (substitutions are shell-quoted). */
  shellQuoted?: readonly string[];
  /** One line saying what the handler would do with these arguments (shown by `weft plan`). */
  describe?: (args: Args, ctx: DescribeContext) => string;
  /** Its return value is the task's output; it must be JSON (plain objects, arrays, scalars). */
  run: (args: Args, ctx: HandlerContext) => Promise<JsonValue | void> | JsonValue | void;
}

/** A handler that takes no arguments (`args` left out): `run` receives `undefined`. */
export interface HandlerDefinitionWithoutArgs extends Omit<HandlerDefinition<JsonSchema, undefined>, 'args'> {
  args?: undefined;
}

/**
 * Defines a handler, typing `run`'s arguments from its `args` schema:
 *
 * ```ts
 * export const greet = defineHandler({
 *   name: 'greet',
 *   args: { type: 'object', properties: { who: { type: 'string' } }, required: ['who'], additionalProperties: false },
 *   run: ({ who }, ctx) => { ctx.log.info(`hello ${who}`); return { greeted: who }; },
 * });
 * ```
 *
 * The schema is a `const` type parameter, so no `as const` is needed when it is written inline; a
 * schema kept in a variable needs `as const`. A task without `with` gets `{}` when the schema is an
 * object schema (the engine validates it as `{}`), so `run` never sees `undefined` for an object.
 */
export function defineHandler<const S extends JsonSchema>(
  definition: HandlerDefinition<S>,
): Handler<FromSchema<S>>;
export function defineHandler(definition: HandlerDefinitionWithoutArgs): Handler<undefined>;
export function defineHandler(
  definition: HandlerDefinition<JsonSchema, unknown> | HandlerDefinitionWithoutArgs,
): Handler<unknown> {
  const { run, describe, args, ...rest } = definition;
  const isObjectSchema = args !== undefined && args.type === 'object';
  // The engine passes undefined for a task without `with` (after validating it as `{}`).
  const normalise = (value: unknown): unknown =>
    isObjectSchema && (value === undefined || value === null) ? {} : value;
  return {
    ...rest,
    ...(args !== undefined ? { args } : {}),
    ...(describe
      ? { describe: (value: unknown, ctx: DescribeContext) => describe(normalise(value) as never, ctx) }
      : {}),
    run: (value: unknown, ctx: HandlerContext) => run(normalise(value) as never, ctx),
  };
}

/** Identity at run time; gives weft.config.ts its type (and editor completion). */
export function defineConfig(config: WeftConfig): WeftConfig {
  return config;
}
