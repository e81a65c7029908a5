import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { STRICT_AJV_OPTIONS } from '../core/ajv-options.js';
import type { JsonValue } from '../core/json.js';
import { WeftError } from '../errors.js';
import type { AnyHandler } from '../handlers/types.js';

// ajv-formats is CommonJS: under nodenext its default import is the module object on some
// toolchains and the function on others.
type AddFormats = (ajv: Ajv2020) => unknown;
const addFormats = ((addFormatsModule as unknown as { default?: AddFormats }).default ??
  addFormatsModule) as unknown as AddFormats;

let ajv: Ajv2020 | undefined;
/** One compiled validator per handler object, compiled on first use (compiling costs far more than validating). */
const validators = new WeakMap<AnyHandler, ValidateFunction | null>();

function getAjv(): Ajv2020 {
  if (!ajv) {
    ajv = new Ajv2020({ ...STRICT_AJV_OPTIONS });
    addFormats(ajv);
  }
  return ajv;
}

function validatorFor(handler: AnyHandler): ValidateFunction | null {
  let validate = validators.get(handler);
  if (validate === undefined) {
    validate = handler.args ? getAjv().compile(handler.args) : null;
    validators.set(handler, validate);
  }
  return validate;
}

/**
 * Checks a task's arguments, after substitution, against its handler's `args` schema. A mismatch
 * is HANDLER_ARGS and not retryable: the same arguments fail the same way every time.
 */
export function checkHandlerArgs(handler: AnyHandler, args: JsonValue, task: string): void {
  const validate = validatorFor(handler);
  if (!validate) return;
  // A task without `with` is checked as `with: {}`: a schema of optional properties accepts it and
  // one with required properties names them. (The handler itself receives undefined.)
  if (validate(args === null ? {} : args)) return;
  const problems = (validate.errors ?? [])
    .slice(0, 5)
    .map((e) => `${e.instancePath === '' ? 'with' : `with${e.instancePath}`} ${e.message ?? 'is invalid'}`)
    .join('; ');
  throw new WeftError(
    'HANDLER_ARGS',
    `task "${task}": the arguments for handler "${handler.name}" are invalid: ${problems}`,
    { retryable: false },
  );
}
