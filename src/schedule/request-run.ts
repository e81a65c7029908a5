import type { Plan } from '../compile/plan.js';
import type { JsonObject } from '../core/json.js';
import { sealParams } from '../engine/secret-params.js';
import type { RunRequestRecord, RunStore } from '../store/run-store.js';
import { newRunRequestId } from './request-id.js';

export interface RequestRunInput {
  plan: Plan;
  /** Checked against the plan's params and defaulted by the caller. */
  params: JsonObject;
  /** Where the plan's `secrets` are read, to seal params that carry one. */
  env: Readonly<Record<string, string | undefined>>;
  now: number;
}

/**
 * Asks the schedulers on `store` to run a pipeline now (`weft trigger`, `POST
 * /api/pipelines/:name/runs`). The request's params are stored sealed, as a run's are
 * (secret-params.ts): a secret's value in them is stored as a reference to the secret, which the
 * scheduler that takes the request expands from its own environment (takeRunRequests).
 */
export function requestRun(store: RunStore, input: RequestRunInput): Promise<RunRequestRecord> {
  return store.requestRun({
    id: newRunRequestId(input.now),
    pipeline: input.plan.name,
    params: sealParams(input.params, input.plan.secrets, input.env),
    requestedAt: new Date(input.now).toISOString(),
  });
}
