import { createHash } from 'node:crypto';
import { dictFromEntries, type JsonObject } from '../core/json.js';
import type { Plan } from '../compile/plan.js';

/**
 * How every adapter turns records into stored JSON and back, so that they all return the same
 * shapes. Shared by the memory and SQL adapters.
 *
 * Prototype safety: JSON.parse makes a key such as `__proto__` an own property, never a prototype,
 * and nothing here copies objects with plain assignment. Maps keyed by user input (params, plan
 * tasks and params) come back as prototype-free dicts, as the Plan contract says.
 */

/** A deep copy through JSON: exactly what a SQL adapter would give back after storing it. */
export function cloneJson<T>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  return JSON.parse(JSON.stringify(value)) as T;
}

export function parseJsonColumn<T>(text: string | null): T | null {
  return text === null ? null : (JSON.parse(text) as T);
}

export function toDict<T>(value: Record<string, T>): Record<string, T> {
  return dictFromEntries(Object.entries(value));
}

export function parseParams(text: string): JsonObject {
  return toDict(JSON.parse(text) as JsonObject);
}

/** Parses a stored plan and freezes it: one parsed plan is shared by every record that runs it. */
export function parsePlan(text: string): Plan {
  const raw = JSON.parse(text) as Plan;
  const plan: Plan = { ...raw, tasks: toDict(raw.tasks), params: toDict(raw.params) };
  return deepFreeze(plan);
}

/** The key a stored plan is found by: sha256 of its JSON text. */
export function hashPlanText(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}
