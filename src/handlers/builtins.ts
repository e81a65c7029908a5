import { failHandler } from './builtin/fail.js';
import { httpRequestHandler } from './builtin/http-request.js';
import { noopHandler } from './builtin/noop.js';
import { notifyWebhookHandler } from './builtin/notify-webhook.js';
import { shellHandler } from './builtin/shell.js';
import { sleepHandler } from './builtin/sleep.js';
import { HandlerRegistry } from './registry.js';
import type { AnyHandler } from './types.js';

/** The handlers every project has, without any weft.config.ts. */
export function createBuiltinHandlers(): AnyHandler[] {
  return [noopHandler, sleepHandler, failHandler, shellHandler, httpRequestHandler, notifyWebhookHandler];
}

/** A fresh registry holding the built-ins; a project's own handlers are registered on top. */
export function createBuiltinRegistry(): HandlerRegistry {
  return new HandlerRegistry(createBuiltinHandlers());
}
