import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { HandlerRegistry } from '../../handlers/registry.js';
import { loadPipelineSchema, mergeHandlerSchemas } from '../../pipeline/schema.js';
import type { CliContext } from '../context.js';

/** The pipeline JSON Schema with every handler in `registry` merged in, as written to disk. */
export function pipelineSchemaText(registry: HandlerRegistry): string {
  return JSON.stringify(mergeHandlerSchemas(loadPipelineSchema(), registry.list()), null, 2) + '\n';
}

/** Writes the merged schema to `file` (its folder created when missing). */
export function writePipelineSchema(file: string, registry: HandlerRegistry): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, pipelineSchemaText(registry));
}

/** `weft schema [--write FILE]`: the language plus every registered handler's `with` arguments. */
export async function schemaCommand(ctx: CliContext, options: { write?: string }): Promise<number> {
  const registry = await ctx.registry();
  if (options.write) {
    writePipelineSchema(resolve(ctx.cwd, options.write), registry);
    ctx.io.stderr(`wrote ${options.write}\n`);
  } else {
    ctx.io.stdout(pipelineSchemaText(registry));
  }
  return 0;
}
