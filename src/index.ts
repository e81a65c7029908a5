/**
 * weft's public API, for a project's weft.config.ts, its handlers and their tests. Re-exports only:
 * everything else in the package is internal and may change between versions.
 */
export {
  defineHandler,
  defineConfig,
  type HandlerDefinition,
  type HandlerDefinitionWithoutArgs,
} from './authoring/define.js';
export type { FromSchema } from './authoring/from-schema.js';
export {
  runHandler,
  runPipeline,
  type RunHandlerContext,
  type HandlerResult,
  type LoggedLine,
  type RunPipelineOptions,
  type Mock,
  type MockSpec,
  type PipelineRunResult,
  type TaskResult,
} from './authoring/testing.js';
export { NonRetryableError } from './errors.js';
export type { ErrorInfo } from './errors.js';
export type { JsonValue, JsonObject, JsonPrimitive } from './core/json.js';
export type {
  Handler,
  HandlerContext,
  TaskLogger,
  LogLevel,
  RunInfo,
  HookInfo,
  DescribeContext,
  JsonSchema,
} from './handlers/types.js';
export type { WeftConfig } from './project/config.js';
export type { RunState, TaskState, AttemptState } from './core/states.js';
export type { RunRecord, TaskRunRecord, AttemptRecord, LogRecord, RunTrigger } from './store/run-store.js';
