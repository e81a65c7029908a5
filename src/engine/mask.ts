/** Replaces secret values in text before the engine stores or reports it. */
export type Masker = (text: string) => string;

export const MASK = '***';

const identity: Masker = (text) => text;

/**
 * A secret value shorter than this is neither masked nor sealed in params (secret-params.ts):
 * masking every "1" or "ab" would shred every line while hiding nothing a guess would not find.
 * Documented under `secrets` (docs/language.md) and in docs/guarantees.md.
 */
export const MIN_SECRET_LENGTH = 3;
/** Encoded forms shorter than this are not masked on their own: they would match by accident. */
const MIN_FORM_LENGTH = 3;
/** A base64 fragment (see base64Core) must be at least this long to be worth masking. */
export const MIN_CORE_LENGTH = 8;

/** Names of the forms secretForms lists; a sealed param names the form it found (secret-params.ts). */
export const SECRET_FORM_NAMES = [
  'raw',
  'json',
  'url',
  'form',
  'base64',
  'base64-unpadded',
  'base64-core0',
  'base64-core1',
  'base64-core2',
  'base64url',
  'base64url-unpadded',
  'base64url-core0',
  'base64url-core1',
  'base64url-core2',
] as const;
export type SecretFormName = (typeof SECRET_FORM_NAMES)[number];

/**
 * One form of a secret, as a pure function of the secret alone: the same secret always gives the
 * same text, which is what lets a sealed param be expanded again. A base64 core is null when the
 * secret is too short to have one at that alignment.
 */
export function secretForm(secret: string, name: SecretFormName): string | null {
  switch (name) {
    case 'raw':
      return secret;
    case 'json':
      return JSON.stringify(secret).slice(1, -1);
    case 'url':
      return encodeURIComponent(secret);
    case 'form':
      return new URLSearchParams({ s: secret }).toString().slice(2);
    case 'base64':
    case 'base64url':
      return Buffer.from(secret, 'utf8').toString(name);
    case 'base64-unpadded':
    case 'base64url-unpadded':
      return Buffer.from(secret, 'utf8')
        .toString(name === 'base64-unpadded' ? 'base64' : 'base64url')
        .replace(/=+$/, '');
    case 'base64-core0':
    case 'base64-core1':
    case 'base64-core2':
    case 'base64url-core0':
    case 'base64url-core1':
    case 'base64url-core2':
      return base64Core(
        Buffer.from(secret, 'utf8'),
        name.startsWith('base64url') ? 'base64url' : 'base64',
        Number(name.at(-1)),
      );
  }
}

/**
 * The forms a secret commonly takes on its way into a log line, an error or a response: as is,
 * JSON-escaped (inside a JSON string), URL-encoded (both the %20 and the form + spellings),
 * base64 and base64url — the latter also when the secret sits inside a longer encoded value
 * (HTTP basic auth encodes "user:secret"), through the part of its encoding that does not depend
 * on what precedes or follows it. Each with its name, first name kept when two spell the same;
 * forms too short to mask are left out.
 */
export function namedSecretForms(secret: string): { name: SecretFormName; form: string }[] {
  const seen = new Set<string>();
  const out: { name: SecretFormName; form: string }[] = [];
  for (const name of SECRET_FORM_NAMES) {
    const form = secretForm(secret, name);
    if (form === null || form.length < MIN_FORM_LENGTH || seen.has(form)) continue;
    seen.add(form);
    out.push({ name, form });
  }
  return out;
}

/** The texts of namedSecretForms. */
export function secretForms(secret: string): string[] {
  return namedSecretForms(secret).map((f) => f.form);
}

/**
 * For the byte alignment `offset` (0–2) the secret may start at inside a longer value, the
 * characters of the encoding that depend only on the secret's own bytes; null when shorter than
 * MIN_CORE_LENGTH.
 */
function base64Core(bytes: Buffer, encoding: 'base64' | 'base64url', offset: number): string | null {
  const padded = Buffer.concat([Buffer.alloc(offset), bytes]);
  const text = padded.toString(encoding).replace(/=+$/, '');
  // Groups of 3 bytes map to 4 characters: skip the group holding the prefix, and any final
  // group the secret does not fill.
  const first = offset === 0 ? 0 : 4;
  const fullGroups = Math.floor(padded.length / 3);
  const core = text.slice(first, fullGroups * 4);
  return core.length >= MIN_CORE_LENGTH ? core : null;
}

/** Whether a value is long enough to be treated as a secret (see MIN_SECRET_LENGTH). */
export function isMaskableSecret(value: string | undefined): value is string {
  return typeof value === 'string' && value.length >= MIN_SECRET_LENGTH;
}

/**
 * A masker for the given secret values, in every form secretForms lists. Longer forms are replaced
 * first so that a secret which contains another one is masked whole rather than leaving a tail
 * behind. Values shorter than MIN_SECRET_LENGTH are ignored.
 */
export function createMasker(values: Iterable<string | undefined>): Masker {
  const secrets = [...new Set([...values].filter(isMaskableSecret))];
  const forms = [...new Set(secrets.flatMap(secretForms))].sort((a, b) => b.length - a.length);
  if (forms.length === 0) return identity;
  return (text) => {
    let out = text;
    for (const form of forms) {
      if (out.includes(form)) out = out.split(form).join(MASK);
    }
    return out;
  };
}

/**
 * Every string in a JSON-shaped value passed through `masker`, keys too (a param or an output may
 * be keyed by a secret); a new value is returned. Two keys masked alike keep the last value.
 */
export function maskValue<T>(value: T, masker: Masker): T {
  if (masker === identity) return value;
  if (typeof value === 'string') return masker(value) as T;
  if (Array.isArray(value)) return value.map((item: unknown) => maskValue(item, masker)) as T;
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      // Defined, not assigned: a "__proto__" key stays an ordinary key.
      Object.defineProperty(out, masker(key), {
        value: maskValue(item, masker),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out as T;
  }
  return value;
}

/** The masker for a plan's `secrets` (names of environment variables) in `env`. */
export function createSecretMasker(
  names: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Masker {
  return createMasker(names.map((name) => env[name]));
}
