import { createBuiltinHandlers } from '../handlers/builtins.js';
import { HandlerRegistry } from '../handlers/registry.js';
import type { AnyHandler } from '../handlers/types.js';
import { organismHandlers } from '../organism/index.js';

/** The handlers every project has: the built-ins and the Causal Organism handlers of the reference pipelines. */
export function createDefaultHandlers(): AnyHandler[] {
  return [...createBuiltinHandlers(), ...organismHandlers];
}

export function createDefaultRegistry(): HandlerRegistry {
  return new HandlerRegistry(createDefaultHandlers());
}
