import type { Plan } from '../compile/plan.js';
import { createSecretMasker, type Masker } from '../engine/mask.js';

/** Every string in a JSON-shaped value passed through `masker` (keys are left as they are). */
export function maskJson<T>(value: T, masker: Masker): T {
  if (typeof value === 'string') return masker(value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => maskJson(v, masker)) as T;
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    for (const [key, v] of Object.entries(value)) out[key] = maskJson(v, masker);
    return out as T;
  }
  return value;
}

/** The masker for what a plan declares secret, with values from this process's environment. */
export function maskerFor(plan: Plan | null, env: Readonly<Record<string, string | undefined>>): Masker {
  return createSecretMasker(plan?.secrets ?? [], env);
}
