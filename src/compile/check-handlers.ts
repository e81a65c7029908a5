import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { STRICT_AJV_OPTIONS } from '../core/ajv-options.js';
import type { JsonValue } from '../core/json.js';
import type { DocPath } from '../errors.js';
import { containsExpression } from '../pipeline/expressions.js';
import type { HookSpec } from '../pipeline/spec.js';
import { suggest } from '../pipeline/suggest.js';
import { collapseErrors } from '../pipeline/collapse-errors.js';
import type { HandlerRegistry } from '../handlers/registry.js';
import type { AnyHandler, JsonSchema } from '../handlers/types.js';
import { type CompileContext, didYouMean, report } from './context.js';

/**
 * Handlers' `args` schemas are compiled once per schema object. A cache, not state: the same
 * schema always compiles to the same validator.
 */
const validators = new WeakMap<JsonSchema, ValidateFunction | { error: string }>();
let ajv: Ajv2020 | undefined;

function validatorFor(schema: JsonSchema): ValidateFunction | { error: string } {
  let validator = validators.get(schema);
  if (!validator) {
    // Strict: an unknown keyword in a handler's schema is reported (as the compile error below)
    // rather than ignored. verbose because collapseErrors needs each error's parent schema.
    ajv ??= new Ajv2020({ ...STRICT_AJV_OPTIONS, verbose: true });
    try {
      validator = ajv.compile(schema);
    } catch (error) {
      validator = { error: error instanceof Error ? error.message : String(error) };
    }
    validators.set(schema, validator);
  }
  return validator;
}

function pointerToPath(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function readAt(value: unknown, path: readonly string[]): unknown {
  let current = value;
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = Object.hasOwn(current, key) ? (current as Record<string, unknown>)[key] : undefined;
  }
  return current;
}

/** True when the value at `path`, or any value holding it, contains an expression. */
function touchesExpression(value: unknown, path: readonly string[]): boolean {
  for (let length = 0; length <= path.length; length++) {
    const at = readAt(value, path.slice(0, length));
    if (typeof at === 'string' && containsExpression(at)) return true;
  }
  return containsExpression(readAt(value, path));
}

/** ajv's message, with collapsed type unions in words ("must be string or array"). */
function explain(error: ErrorObject): string {
  const type = (error.params as { type?: unknown }).type;
  if (error.keyword === 'type' && Array.isArray(type)) return `must be ${type.join(' or ')}`;
  // With `verbose`, ajv gives the failing value and its schema: say what was expected in the
  // schema's own words rather than echoing a regular expression.
  const parent = error.parentSchema as { description?: unknown; examples?: unknown } | undefined;
  const got = error.data === undefined ? '' : `, got ${JSON.stringify(error.data)}`;
  if (error.keyword === 'enum') {
    const allowed = (error.params as { allowedValues?: unknown[] }).allowedValues ?? [];
    const close =
      typeof error.data === 'string'
        ? suggest(
            error.data,
            allowed.filter((a): a is string => typeof a === 'string'),
          )
        : undefined;
    return `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}${got}${close ? `; did you mean ${JSON.stringify(close)}?` : ''}`;
  }
  if (error.keyword === 'pattern' || error.keyword === 'format') {
    const example =
      Array.isArray(parent?.examples) && parent.examples.length > 0
        ? ` (e.g. ${JSON.stringify(parent.examples[0])})`
        : '';
    const what =
      typeof parent?.description === 'string'
        ? parent.description.replace(/\.$/, '')
        : `a value matching ${String((error.params as { pattern?: string }).pattern ?? error.message)}`;
    return `is not valid${got}: expected ${what}${example}`;
  }
  return `${error.message ?? 'is invalid'}${got}`;
}

function describe(location: readonly string[]): string {
  return ['with', ...location].join('.');
}

/**
 * Checks that every handler a task or hook names is registered, and that `with` fits the
 * handler's `args` schema. Values holding expressions are skipped here: they are checked again
 * after substitution, at run time.
 */
export function checkHandlers(ctx: CompileContext, registry: HandlerRegistry): void {
  const { spec, names } = ctx;
  const known = registry.names();

  const checkArgs = (
    handler: AnyHandler,
    owner: string,
    written: JsonValue | undefined,
    withPath: DocPath,
    ownerPath: DocPath,
  ) => {
    if (!handler.args) return;
    const validate = validatorFor(handler.args);
    if ('error' in validate) {
      report(
        ctx,
        ownerPath,
        'HANDLER_ARGS',
        `${owner}: handler "${handler.name}" declares an invalid args schema: ${validate.error}`,
      );
      return;
    }
    const args = written ?? {};
    if (typeof args === 'string' && containsExpression(args)) return;
    if (validate(args)) return;
    const seen = new Set<string>();
    for (const error of collapseErrors(validate.errors ?? [])) {
      const location = pointerToPath(error.instancePath);
      if (touchesExpression(args, location)) continue;
      let path: DocPath;
      let key = false;
      let message: string;
      if (error.keyword === 'additionalProperties') {
        const extra = String((error.params as { additionalProperty: string }).additionalProperty);
        path = [...withPath, ...location, extra];
        key = true;
        const allowed = Object.keys((readAt(handler.args, ['properties']) as object | undefined) ?? {});
        const close = suggest(extra, allowed);
        message = `${owner}: handler "${handler.name}" does not take ${describe([...location, extra])}${close ? `; did you mean \`${close}\`?` : ''}`;
      } else if (error.keyword === 'required') {
        const missing = String((error.params as { missingProperty: string }).missingProperty);
        path = written === undefined ? ownerPath : [...withPath, ...location];
        key = written === undefined || location.length === 0;
        message = `${owner}: handler "${handler.name}" needs ${describe([...location, missing])}`;
      } else {
        path = [...withPath, ...location];
        key = location.length > 0;
        message = `${owner}: handler "${handler.name}": ${describe(location)} ${explain(error)}`;
      }
      const id = `${path.join('\u0000')}|${message}`;
      if (seen.has(id)) continue;
      seen.add(id);
      report(ctx, path, 'HANDLER_ARGS', message, { key });
    }
  };

  const checkHandler = (
    name: string,
    owner: string,
    handlerPath: DocPath,
    key: boolean,
    written: JsonValue | undefined,
    withPath: DocPath,
  ) => {
    const handler = registry.get(name);
    if (!handler) {
      const close = suggest(name, known);
      report(ctx, handlerPath, 'HANDLER_UNKNOWN', `${owner}: no handler named "${name}" is registered`, {
        key,
        hint: close ? didYouMean(close) : `registered handlers: ${known.join(', ') || 'none'}`,
      });
      return;
    }
    checkArgs(handler, owner, written, withPath, handlerPath);
  };

  const checkHooks = (hooks: HookSpec[] | undefined, base: DocPath, owner: string) => {
    hooks?.forEach((hook, i) => {
      const label = `${owner} hook ${i + 1}`;
      if (typeof hook === 'string') checkHandler(hook, label, [...base, i], false, undefined, [...base, i]);
      else checkHandler(hook.handler, label, [...base, i, 'handler'], false, hook.with, [...base, i, 'with']);
    });
  };

  for (const name of names) {
    const task = spec.tasks[name]!;
    const implied = task.handler === undefined;
    const handlerPath: DocPath = implied ? ['tasks', name] : ['tasks', name, 'handler'];
    checkHandler(task.handler ?? name, `task "${name}"`, handlerPath, implied, task.with, [
      'tasks',
      name,
      'with',
    ]);
    checkHooks(task.on_failure, ['tasks', name, 'on_failure'], `task "${name}" on_failure`);
  }
  checkHooks(spec.defaults?.on_failure, ['defaults', 'on_failure'], 'defaults on_failure');
  for (const key of ['on_failure', 'on_success', 'on_recovery'] as const) checkHooks(spec[key], [key], key);
}
