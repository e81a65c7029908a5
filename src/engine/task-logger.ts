import type { LogLevel, TaskLogger } from '../handlers/types.js';
import type { LogWriter } from './log-writer.js';
import type { Masker } from './mask.js';
import { toIso } from './time.js';

export type LogLineLevel = LogLevel | 'stdout' | 'stderr';

export interface TaskLoggerTarget {
  logs: LogWriter;
  masker: Masker;
  now: () => number;
  runId: string;
  task: string | null;
  attempt: number | null;
  /** Called with each stored (masked) line, e.g. to report it as a `task:log` event. */
  onLine?: (level: LogLineLevel, message: string) => void;
}

/**
 * The one TaskLogger behind every handler context (the interpreter's attempts, hooks, and the
 * workers' tasks): each line is masked, then buffered into the run's log writer.
 */
export function createTaskLogger(target: TaskLoggerTarget): TaskLogger {
  const write = (level: LogLineLevel, message: string): void => {
    const text = target.masker(String(message));
    target.logs.write({
      runId: target.runId,
      task: target.task,
      attempt: target.attempt,
      ts: toIso(target.now()),
      level,
      message: text,
    });
    target.onLine?.(level, text);
  };
  return {
    debug: (message) => write('debug', message),
    info: (message) => write('info', message),
    warn: (message) => write('warn', message),
    error: (message) => write('error', message),
    stdout: (line) => write('stdout', line),
    stderr: (line) => write('stderr', line),
  };
}
