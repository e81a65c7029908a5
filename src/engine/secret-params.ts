import { createDict, isPlainObject, type JsonObject, type JsonValue } from '../core/json.js';
import { WeftError } from '../errors.js';
import {
  isMaskableSecret,
  namedSecretForms,
  SECRET_FORM_NAMES,
  secretForm,
  type SecretFormName,
} from './mask.js';

/**
 * Run params are stored (runs, run requests) and read back for `weft resume`, run-level retries
 * and the workers; a param that carries a secret's value must not put it in the store. So params
 * are *sealed* when a run (or run request) is created and *unsealed* whenever they are read to run
 * something: the secret stays in the environment, where it lived anyway.
 *
 * Sealed form — a JSON value, the same as the one given except:
 *  - a string that contains a declared secret's value, in any form the masker knows (as is, JSON-
 *    or URL-encoded, base64…), becomes `{"$weft:secret-text": [parts]}`: the literal pieces of
 *    the string, in order, with `{"secret": NAME}` (and `"form": FORM` when not as is) in place of
 *    each occurrence;
 *  - an object with a key that contains a secret, or with a key starting with `$weft:` (so that
 *    user data can never pass for the two tags), becomes `{"$weft:entries": [[key, value], …]}`,
 *    its keys sealed as strings are.
 * An object whose only key starts with `$weft:` is a tag, and nothing else is. Values without a
 * secret or such a key are stored exactly as given.
 *
 * Unsealing takes each secret's value from the environment of the process that runs the run, and
 * only for names the run's plan declares under `secrets:`. A missing one is SECRET_MISSING, naming
 * the variable and the param.
 */

export const SECRET_TEXT_TAG = '$weft:secret-text';
export const ENTRIES_TAG = '$weft:entries';
const TAG_PREFIX = '$weft:';

type Env = Readonly<Record<string, string | undefined>>;

/** A secret's occurrence inside a sealed string. */
interface SecretRef {
  secret: string;
  form?: SecretFormName;
}

interface Needle {
  name: string;
  form: SecretFormName;
  text: string;
}

/** Every form of every declared secret set in `env`, longest first (a secret inside another is sealed whole). */
function needlesOf(secrets: readonly string[], env: Env): Needle[] {
  const needles: Needle[] = [];
  for (const name of secrets) {
    const value = env[name];
    if (!isMaskableSecret(value)) continue;
    for (const { name: form, form: text } of namedSecretForms(value)) needles.push({ name, form, text });
  }
  return needles.sort((a, b) => b.text.length - a.text.length);
}

/**
 * The params to store for a run or run request: every occurrence of a declared secret's value
 * replaced by a reference to it (see above). Returns a new object; the input is left alone.
 */
export function sealParams(params: JsonObject, secrets: readonly string[], env: Env): JsonObject {
  const needles = needlesOf(secrets, env);
  const out = createDict<JsonValue>();
  // Param names are identifiers (schema): they can hold neither a secret worth masking nor a tag.
  for (const [name, value] of Object.entries(params)) out[name] = sealValue(value, needles);
  return out;
}

function sealValue(value: JsonValue, needles: readonly Needle[]): JsonValue {
  if (typeof value === 'string') return sealString(value, needles);
  if (Array.isArray(value)) return value.map((item) => sealValue(item, needles));
  if (value === null || typeof value !== 'object') return value;
  const keys = Object.keys(value);
  const escape = keys.some(
    (key) => key.startsWith(TAG_PREFIX) || typeof sealString(key, needles) !== 'string',
  );
  if (escape) {
    return { [ENTRIES_TAG]: keys.map((key) => [sealString(key, needles), sealValue(value[key]!, needles)]) };
  }
  const out = createDict<JsonValue>();
  for (const key of keys) out[key] = sealValue(value[key]!, needles);
  return out;
}

/** The string as is when it holds no secret, else its sealed parts. */
function sealString(text: string, needles: readonly Needle[]): JsonValue {
  let parts: (string | SecretRef)[] = [text];
  let found = false;
  // As the masker does: longest form first, each split out of the literal pieces left so far.
  for (const needle of needles) {
    const next: (string | SecretRef)[] = [];
    for (const part of parts) {
      if (typeof part !== 'string' || !part.includes(needle.text)) {
        next.push(part);
        continue;
      }
      found = true;
      const pieces = part.split(needle.text);
      pieces.forEach((piece, i) => {
        if (i > 0)
          next.push(
            needle.form === 'raw' ? { secret: needle.name } : { secret: needle.name, form: needle.form },
          );
        if (piece !== '') next.push(piece);
      });
    }
    parts = next;
  }
  if (!found) return text;
  return { [SECRET_TEXT_TAG]: parts.map((p) => (typeof p === 'string' ? p : { ...p })) };
}

function tagOf(value: JsonObject): string | null {
  const keys = Object.keys(value);
  return keys.length === 1 && keys[0]!.startsWith(TAG_PREFIX) ? keys[0]! : null;
}

/**
 * The params a run's handlers and expressions see: every sealed secret expanded from `env`.
 * `secrets` is the run's plan's list: a reference to any other variable is refused, so a store
 * row can name only what the pipeline declared secret (and what is masked everywhere). Returns a
 * new object. Throws SECRET_MISSING when a referenced variable is not set.
 */
export function unsealParams(params: JsonObject, secrets: readonly string[], env: Env): JsonObject {
  const declared = new Set(secrets);
  const out = createDict<JsonValue>();
  for (const [name, value] of Object.entries(params)) {
    out[name] = unsealValue(value, { declared, env, path: name });
  }
  return out;
}

interface UnsealScope {
  declared: ReadonlySet<string>;
  env: Env;
  /** Where in the params, for messages: `token`, `headers.authorization`, `hosts[2]`. */
  path: string;
}

function unsealValue(value: JsonValue, scope: UnsealScope): JsonValue {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value))
    return value.map((item, i) => unsealValue(item, { ...scope, path: `${scope.path}[${i}]` }));
  const tag = tagOf(value);
  if (tag === SECRET_TEXT_TAG) return unsealString(value[tag]!, scope);
  if (tag === ENTRIES_TAG) {
    const entries = value[tag]!;
    if (!Array.isArray(entries)) throw corrupt(scope, 'entries must be an array');
    const out = createDict<JsonValue>();
    for (const entry of entries) {
      if (!Array.isArray(entry) || entry.length !== 2)
        throw corrupt(scope, 'each entry must be [key, value]');
      const key = typeof entry[0] === 'string' ? entry[0] : unsealString(tagged(entry[0], scope), scope);
      out[key] = unsealValue(entry[1]!, { ...scope, path: `${scope.path}.${key}` });
    }
    return out;
  }
  if (tag !== null) throw corrupt(scope, `unknown tag "${tag}"`);
  const out = createDict<JsonValue>();
  for (const [key, item] of Object.entries(value)) {
    out[key] = unsealValue(item, { ...scope, path: `${scope.path}.${key}` });
  }
  return out;
}

/** The parts of a sealed key: `{"$weft:secret-text": parts}`. */
function tagged(value: JsonValue | undefined, scope: UnsealScope): JsonValue {
  if (isPlainObject(value) && tagOf(value as JsonObject) === SECRET_TEXT_TAG) {
    return (value as JsonObject)[SECRET_TEXT_TAG]!;
  }
  throw corrupt(scope, 'an entry key must be a string or a sealed string');
}

function unsealString(parts: JsonValue, scope: UnsealScope): string {
  if (!Array.isArray(parts)) throw corrupt(scope, 'sealed text must be an array of parts');
  let text = '';
  for (const part of parts) {
    if (typeof part === 'string') {
      text += part;
      continue;
    }
    if (!isPlainObject(part) || typeof part.secret !== 'string')
      throw corrupt(scope, 'a part must be a string or {"secret": NAME}');
    const name = part.secret;
    const form = part.form ?? 'raw';
    if (typeof form !== 'string' || !(SECRET_FORM_NAMES as readonly string[]).includes(form)) {
      throw corrupt(scope, `unknown secret form ${JSON.stringify(form)}`);
    }
    if (!scope.declared.has(name)) {
      throw new WeftError(
        'SECRET_MISSING',
        `param "${scope.path}" refers to ${name}, which the pipeline does not declare under secrets:`,
        { retryable: false, hint: `add ${name} to the pipeline's secrets: list` },
      );
    }
    const value = scope.env[name];
    if (value === undefined || value === '') {
      throw new WeftError(
        'SECRET_MISSING',
        `param "${scope.path}" holds the secret ${name}, which is not set in this environment`,
        {
          retryable: false,
          hint: `set ${name} in the environment of the process that runs the run (the params keep a reference to it, not its value)`,
        },
      );
    }
    text += secretForm(value, form as SecretFormName) ?? '';
  }
  return text;
}

function corrupt(scope: UnsealScope, why: string): WeftError {
  return new WeftError('INTERNAL', `param "${scope.path}" is stored in a form weft cannot read: ${why}`, {
    retryable: false,
  });
}
