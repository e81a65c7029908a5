import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadPipelineSchema, mergeHandlerSchemas } from '../../pipeline/schema.js';
import type { CliContext } from '../context.js';

/** `weft schema [--write FILE]`: the language plus every registered handler's `with` arguments. */
export async function schemaCommand(ctx: CliContext, options: { write?: string }): Promise<number> {
  const registry = await ctx.registry();
  const schema = mergeHandlerSchemas(loadPipelineSchema(), registry.list());
  const text = JSON.stringify(schema, null, 2) + '\n';
  if (options.write) {
    writeFileSync(resolve(ctx.cwd, options.write), text);
    ctx.io.stderr(`wrote ${options.write}\n`);
  } else {
    ctx.io.stdout(text);
  }
  return 0;
}
