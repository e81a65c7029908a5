import type { Plan } from '../compile/plan.js';
import { failpoint } from '../core/failpoint.js';
import type { JsonObject } from '../core/json.js';
import { newRunId } from '../store/ids.js';
import type { RunRecord, RunStore, RunTrigger } from '../store/run-store.js';
import { sealParams } from './secret-params.js';
import { toIso } from './time.js';

export interface CreateRunInput {
  plan: Plan;
  /**
   * Already checked against the plan's params and defaulted by the caller; as given, never sealed
   * (a run request's params are unsealed first: see takeRunRequests).
   */
  params: JsonObject;
  /**
   * Where the plan's `secrets` are read, to seal params that carry one (secret-params.ts): the
   * environment the run will execute with. Default: this process's environment, as executeRun's.
   */
  env?: Readonly<Record<string, string | undefined>>;
  trigger: RunTrigger;
  /** Epoch ms or ISO time this run fires for (scheduled runs). */
  scheduledFor?: number | string | null;
  /** Default: a new run id for `now`. */
  id?: string;
  now: number;
  /**
   * The process that will execute the run at once ("host:pid"), when there is one: a run it
   * created but never started (it died in between) is then found by markInterruptedRuns instead
   * of waiting in `queued` forever. Default null: a queued run waiting for a worker.
   */
  owner?: string | null;
}

/**
 * Records a new run in `queued`, with a pending task run for each task; executeRun runs it. Its
 * params are stored sealed: a secret's value in them is stored as a reference to the secret.
 */
export async function createRun(store: RunStore, input: CreateRunInput): Promise<RunRecord> {
  const scheduledFor =
    input.scheduledFor === undefined || input.scheduledFor === null
      ? null
      : typeof input.scheduledFor === 'number'
        ? toIso(input.scheduledFor)
        : input.scheduledFor;
  const run = await store.createRun({
    id: input.id ?? newRunId(input.now),
    pipeline: input.plan.name,
    plan: input.plan,
    params: sealParams(input.params, input.plan.secrets, input.env ?? process.env),
    trigger: input.trigger,
    scheduledFor,
    state: 'queued',
    owner: input.owner ?? null,
    createdAt: toIso(input.now),
  });
  // Durable, and the caller has not heard so yet.
  failpoint('after-run-insert');
  return run;
}
