/** Scheduling: the scheduler behind `weft serve`, its pipeline sources, cron helpers and log lines. */
export { createScheduler, type Scheduler, type SchedulerOptions, type StopOptions } from './scheduler.js';
export type { SchedulerEvent, SchedulerEventType, SchedulerLogListener } from './events.js';
export { formatSchedulerEvent, describeEvent, type SchedulerLogFormat } from './log-format.js';
export {
  createStaticPipelineSource,
  toPipelineSource,
  type PipelineSource,
  type StaticPipelineSource,
} from './pipeline-source.js';
export {
  createPipelineWatcher,
  type FileLoad,
  type PipelineWatcher,
  type PipelineWatcherOptions,
} from './pipeline-watcher.js';
export {
  createCronTimes,
  decideDueFires,
  scanDueFires,
  type CronTimes,
  type DueContext,
  type FireDecision,
} from './due-fires.js';
export { newRunRequestId } from './request-id.js';
export { requestRun, type RequestRunInput } from './request-run.js';
export { describeCron, nextFires, validateCron, isValidTimeZone, type CronFire } from './cron.js';
