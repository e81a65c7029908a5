import { readFileSync } from 'node:fs';

/** A JSON Schema object (draft 2020-12). Same shape as the handlers' `JsonSchema`, kept local so
 * that pipeline/ does not import handlers/. */
export type JsonSchema = { [key: string]: unknown };

/** The schema file, resolved from src/pipeline/ and from the built dist/pipeline/ alike. */
export const PIPELINE_SCHEMA_URL = new URL('../../schema/pipeline.schema.json', import.meta.url);

let cached: string | undefined;

/**
 * The pipeline language (schema/pipeline.schema.json). Each call returns a fresh copy, so a
 * caller may change it (mergeHandlerSchemas does not, but others might) without affecting others.
 */
export function loadPipelineSchema(): JsonSchema {
  cached ??= readFileSync(PIPELINE_SCHEMA_URL, 'utf8');
  return JSON.parse(cached) as JsonSchema;
}

/**
 * The pipeline schema where each task and hook whose `handler` names a registered handler has
 * that handler's `with` schema, so an editor completes and checks handler arguments. A task that
 * leaves `handler` out (its name is the handler) is not covered: a schema cannot refer to a key.
 * Returns a new schema; `schema` is not changed.
 */
export function mergeHandlerSchemas(
  schema: JsonSchema,
  handlers: readonly { name: string; args?: JsonSchema | undefined }[],
): JsonSchema {
  const merged = structuredClone(schema);
  const rules = handlers
    .filter((handler): handler is { name: string; args: JsonSchema } => handler.args !== undefined)
    .map((handler) => ({
      if: { properties: { handler: { const: handler.name } }, required: ['handler'] },
      then: { properties: { with: embeddable(handler.args) } },
    }));
  if (rules.length === 0) return merged;
  const defs = merged.$defs as Record<string, JsonSchema> | undefined;
  for (const name of ['task', 'hook']) {
    const target = defs?.[name];
    if (!target) throw new Error(`pipeline schema has no $defs.${name}`);
    const allOf = Array.isArray(target.allOf) ? (target.allOf as unknown[]) : [];
    target.allOf = [...allOf, ...structuredClone(rules)];
  }
  return merged;
}

/** `$schema` is only allowed at a schema's root: drop it from a handler's schema we nest. */
function embeddable(args: JsonSchema): JsonSchema {
  const copy = structuredClone(args);
  delete copy.$schema;
  return copy;
}
