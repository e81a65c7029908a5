/** Replaces secret values in text before the engine stores or reports it. */
export type Masker = (text: string) => string;

export const MASK = '***';

const identity: Masker = (text) => text;

/** Encoded forms shorter than this are not masked on their own: they would match by accident. */
const MIN_FORM_LENGTH = 3;
/** A base64 fragment (see base64Cores) must be at least this long to be worth masking. */
const MIN_CORE_LENGTH = 8;

/**
 * The forms a secret commonly takes on its way into a log line, an error or a response: as is,
 * JSON-escaped (inside a JSON string), URL-encoded (both the %20 and the form + spellings),
 * base64 and base64url — the latter also when the secret sits inside a longer encoded value
 * (HTTP basic auth encodes "user:secret"), through the part of its encoding that does not depend
 * on what precedes or follows it.
 */
export function secretForms(secret: string): string[] {
  const forms = new Set<string>([secret]);
  forms.add(JSON.stringify(secret).slice(1, -1));
  forms.add(encodeURIComponent(secret));
  forms.add(new URLSearchParams({ s: secret }).toString().slice(2));
  const bytes = Buffer.from(secret, 'utf8');
  for (const encoding of ['base64', 'base64url'] as const) {
    forms.add(bytes.toString(encoding));
    forms.add(bytes.toString(encoding).replace(/=+$/, ''));
    for (const core of base64Cores(bytes, encoding)) forms.add(core);
  }
  return [...forms].filter((form) => form.length >= MIN_FORM_LENGTH);
}

/**
 * For each of the three byte alignments the secret may start at inside a longer value, the
 * characters of the encoding that depend only on the secret's own bytes.
 */
function base64Cores(bytes: Buffer, encoding: 'base64' | 'base64url'): string[] {
  const cores: string[] = [];
  for (let offset = 0; offset < 3; offset++) {
    const padded = Buffer.concat([Buffer.alloc(offset), bytes]);
    const text = padded.toString(encoding).replace(/=+$/, '');
    // Groups of 3 bytes map to 4 characters: skip the group holding the prefix, and any final
    // group the secret does not fill.
    const first = offset === 0 ? 0 : 4;
    const fullGroups = Math.floor(padded.length / 3);
    const core = text.slice(first, fullGroups * 4);
    if (core.length >= MIN_CORE_LENGTH) cores.push(core);
  }
  return cores;
}

/**
 * A masker for the given secret values, in every form secretForms lists. Longer forms are replaced
 * first so that a secret which contains another one is masked whole rather than leaving a tail
 * behind. Values shorter than 3 characters are ignored: masking every "1" or "a" would shred every
 * line while hiding nothing.
 */
export function createMasker(values: Iterable<string | undefined>): Masker {
  const secrets = [
    ...new Set([...values].filter((v): v is string => typeof v === 'string' && v.length >= 3)),
  ];
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

/** Every string in a JSON-shaped value passed through `masker` (keys are kept; a new value is returned). */
export function maskValue<T>(value: T, masker: Masker): T {
  if (masker === identity) return value;
  if (typeof value === 'string') return masker(value) as T;
  if (Array.isArray(value)) return value.map((item: unknown) => maskValue(item, masker)) as T;
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      // Defined, not assigned: a "__proto__" key stays an ordinary key.
      Object.defineProperty(out, key, {
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
