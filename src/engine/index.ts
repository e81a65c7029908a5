/** The interpreter: runs a compiled Plan against a RunStore. */
export { createRun, type CreateRunInput } from './create-run.js';
export { executeRun } from './execute-run.js';
export { prepareResume, downstreamOf, type PrepareResumeOptions } from './resume.js';
export {
  markInterruptedRuns,
  isLocalOwnerAlive,
  isLocalOwner,
  localOwner,
  DEFAULT_STALE_HEARTBEAT_MS,
  type MarkInterruptedOptions,
} from './interrupted.js';
export { requestCancel } from './cancel.js';
export type { EngineOptions } from './options.js';
export type { EngineEvent, EngineEventMap, EngineEventType, EngineEventListener } from './events.js';
export { createMasker, createSecretMasker, MASK, type Masker } from './mask.js';
export { normaliseOutput } from './output.js';
export { sealParams, unsealParams, SECRET_TEXT_TAG, ENTRIES_TAG } from './secret-params.js';
export { decideTrigger, type TriggerDecision, type UpstreamOutcome } from './trigger-rules.js';
export { retryDelayMs, retryTimeline, hasRetryLeft } from './retry-delay.js';
