/** Replaces secret values in text before the engine stores or reports it. */
export type Masker = (text: string) => string;

export const MASK = '***';

const identity: Masker = (text) => text;

/**
 * A masker for the given secret values. Longer values are replaced first so that a secret which
 * contains another one is masked whole rather than leaving a tail behind. Values shorter than 3
 * characters are ignored: masking every "1" or "a" would shred every line while hiding nothing.
 */
export function createMasker(values: Iterable<string | undefined>): Masker {
  const secrets = [
    ...new Set([...values].filter((v): v is string => typeof v === 'string' && v.length >= 3)),
  ].sort((a, b) => b.length - a.length);
  if (secrets.length === 0) return identity;
  return (text) => {
    let out = text;
    for (const secret of secrets) {
      if (out.includes(secret)) out = out.split(secret).join(MASK);
    }
    return out;
  };
}

/** The masker for a plan's `secrets` (names of environment variables) in `env`. */
export function createSecretMasker(
  names: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Masker {
  return createMasker(names.map((name) => env[name]));
}
