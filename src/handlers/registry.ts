import { WeftError } from '../errors.js';
import { createDict } from '../core/json.js';
import type { AnyHandler } from './types.js';

const NAME = /^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$/i;

/**
 * The handlers a pipeline may call, by name. Not global: the CLI builds one from the built-ins and
 * the project's weft.config.ts, tests build their own.
 */
export class HandlerRegistry {
  readonly #handlers = createDict<AnyHandler>();

  constructor(handlers: Iterable<AnyHandler> = []) {
    for (const handler of handlers) this.register(handler);
  }

  register(handler: AnyHandler): this {
    if (!NAME.test(handler.name)) {
      throw new WeftError('CONFIG_INVALID', `invalid handler name "${handler.name}"`, {
        hint: 'use letters, digits, - and _, with dots between namespaces (notify.webhook)',
      });
    }
    if (typeof handler.run !== 'function') {
      throw new WeftError('CONFIG_INVALID', `handler "${handler.name}" has no run function`);
    }
    this.#handlers[handler.name] = handler;
    return this;
  }

  get(name: string): AnyHandler | undefined {
    return this.#handlers[name];
  }

  has(name: string): boolean {
    return name in this.#handlers;
  }

  names(): string[] {
    return Object.keys(this.#handlers).sort();
  }

  list(): AnyHandler[] {
    return this.names().map((name) => this.#handlers[name]!);
  }
}
