import { formatDuration } from '../core/duration.js';
import type { SchedulerEvent } from './events.js';

export type SchedulerLogFormat = 'text' | 'json';

/** One line (with its newline) per event: plain text, or a JSON object with `ts` and `event`. */
export function formatSchedulerEvent(event: SchedulerEvent, at: number, format: SchedulerLogFormat): string {
  const ts = new Date(at).toISOString();
  if (format === 'json') {
    const { type, ...rest } = event;
    return JSON.stringify({ ts, event: type, ...rest }) + '\n';
  }
  return `${ts} ${describeEvent(event)}\n`;
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? '';
}

/** The event in words, starting with the pipeline it concerns. */
export function describeEvent(event: SchedulerEvent): string {
  switch (event.type) {
    case 'scheduler:started':
      return `scheduler started as ${event.owner}: ${event.pipelines} pipeline(s), ${event.scheduled} on a schedule`;
    case 'scheduler:stopping':
      return `scheduler stopping: ${event.running} run(s) in progress get ${formatDuration(event.graceMs)} to finish`;
    case 'scheduler:stopped':
      return `scheduler stopped${event.cancelled > 0 ? ` (${event.cancelled} run(s) cancelled)` : ''}`;
    case 'scheduler:error':
      return `error: ${firstLine(event.message)} [${event.error.code}]`;
    case 'scheduler:late':
      return `behind: came to the fire due at ${event.dueAt} ${formatDuration(event.lateMs)} late (${
        event.cause === 'overslept'
          ? 'its timer fired late: the process was paused or starved of CPU, or the clock jumped forward'
          : 'handling the fires before it took that long: a slow or locked store, or a CPU too busy'
      })`;
    case 'pipeline:scheduled':
      return `${event.pipeline}: scheduled "${event.cron}" (${event.timezone}), next at ${event.nextAt ?? 'never'}`;
    case 'pipeline:unscheduled':
      return `${event.pipeline}: unscheduled (${event.reason})`;
    case 'file:loaded':
      return `${event.pipeline}: loaded ${event.file}`;
    case 'file:reloaded':
      return `${event.pipeline}: reloaded ${event.file}`;
    case 'file:removed':
      return `${event.pipeline}: ${event.file} removed`;
    case 'file:invalid': {
      const lines = event.diagnostics.map(
        (d) => `\n  ${d.file}:${d.line}:${d.column} ${d.severity} ${d.code} ${firstLine(d.message)}`,
      );
      return `${event.file}: ${event.message}${event.kept ? '; the previous version keeps running' : ''}${lines.join('')}`;
    }
    case 'fire:taken':
      return `${event.pipeline}: fire ${event.scheduledFor} already handled by another scheduler`;
    case 'fire:skipped':
      return `${event.pipeline}: fire ${event.scheduledFor} skipped: ${event.reason}`;
    case 'fire:missed':
      return `${event.pipeline}: fire ${event.scheduledFor} missed: ${event.reason}`;
    case 'fire:queued':
      return `${event.pipeline}: fire ${event.scheduledFor} queued: ${event.reason}`;
    case 'fire:dropped':
      return `${event.pipeline}: fire ${event.scheduledFor} dropped: ${event.reason}`;
    case 'catchup:capped':
      return `${event.pipeline}: catch-up capped at catchup_limit ${event.limit}: ${event.missed} older fire(s) not run`;
    case 'run:created': {
      const why =
        event.scheduledFor !== null
          ? `for ${event.scheduledFor}`
          : event.requestId !== null
            ? `from request ${event.requestId}`
            : event.trigger;
      return `${event.pipeline}: run ${event.runId} created (${event.trigger}, ${why})`;
    }
    case 'run:started':
      return `${event.pipeline}: run ${event.runId} started${event.attempt > 1 ? ` (attempt ${event.attempt})` : ''}${
        event.lagMs === null ? '' : ` ${formatDuration(Math.max(0, event.lagMs))} after its schedule time`
      }`;
    case 'run:retrying':
      return `${event.pipeline}: run ${event.runId} failed, retrying as attempt ${event.attempt} in ${formatDuration(event.delayMs)}${
        event.error ? `: ${firstLine(event.error.message)}` : ''
      }`;
    case 'task:retrying':
      return `${event.pipeline}: run ${event.runId} task ${event.task} failed, retrying as attempt ${event.attempt} in ${formatDuration(event.delayMs)}: ${firstLine(event.error.message)}`;
    case 'run:finished':
      return `${event.pipeline}: run ${event.runId} ${event.state} in ${formatDuration(event.durationMs)}${
        event.error && event.state !== 'succeeded' ? `: ${firstLine(event.error.message)}` : ''
      }`;
    case 'run:interrupted':
      return `${event.pipeline}: run ${event.runId} was interrupted (its process died)${
        event.resuming ? '; resuming it (resume_interrupted)' : `; finish it with: weft resume ${event.runId}`
      }`;
    case 'request:failed':
      return `${event.pipeline}: run request ${event.requestId} failed: ${firstLine(event.error.message)}`;
  }
}
