import type { AttemptPatch, HookPatch, RunPatch, TaskRunPatch } from './run-store.js';

/**
 * Which keys each patch may change, the column each is stored in and the kind of value it holds.
 * Keys not listed are ignored by every adapter (a patch carrying an id or a key changes nothing).
 * The kinds are PostgreSQL's type names; SQLite and memory only tell JSON and flags apart.
 */

export type PatchFieldType = 'text' | 'integer' | 'timestamptz' | 'json' | 'boolean';

export interface PatchField {
  column: string;
  type: PatchFieldType;
}

// Columns several tables share, described once.
const state: PatchField = { column: 'state', type: 'text' };
const error: PatchField = { column: 'error', type: 'json' };
const startedAt: PatchField = { column: 'started_at', type: 'timestamptz' };
const finishedAt: PatchField = { column: 'finished_at', type: 'timestamptz' };
const nextAttemptAt: PatchField = { column: 'next_attempt_at', type: 'timestamptz' };

export const RUN_PATCH_FIELDS: Readonly<Record<keyof RunPatch, PatchField>> = {
  state,
  attempt: { column: 'attempt', type: 'integer' },
  owner: { column: 'owner', type: 'text' },
  heartbeatAt: { column: 'heartbeat_at', type: 'timestamptz' },
  startedAt,
  finishedAt,
  nextAttemptAt,
  error,
  cancelRequested: { column: 'cancel_requested', type: 'boolean' },
};

export const TASK_RUN_PATCH_FIELDS: Readonly<Record<keyof TaskRunPatch, PatchField>> = {
  state,
  attempts: { column: 'attempts', type: 'integer' },
  output: { column: 'output', type: 'json' },
  error,
  reason: { column: 'reason', type: 'text' },
  startedAt,
  finishedAt,
  nextAttemptAt,
};

export const ATTEMPT_PATCH_FIELDS: Readonly<Record<keyof AttemptPatch, PatchField>> = {
  state,
  finishedAt,
  error,
  pid: { column: 'pid', type: 'integer' },
};

export const HOOK_PATCH_FIELDS: Readonly<Record<keyof HookPatch, PatchField>> = { state, error, finishedAt };

export interface PatchEntry {
  key: string;
  field: PatchField;
  value: unknown;
}

/**
 * The allowed keys the patch carries, in the fields' order (not the patch's, so that patches with
 * the same keys make the same statement). A key set to undefined is treated as absent.
 */
export function patchEntries(fields: Readonly<Record<string, PatchField>>, patch: object): PatchEntry[] {
  const entries: PatchEntry[] = [];
  for (const [key, field] of Object.entries(fields)) {
    if (!Object.hasOwn(patch, key)) continue;
    const value = (patch as Record<string, unknown>)[key];
    if (value === undefined) continue;
    entries.push({ key, field, value });
  }
  return entries;
}
