import type { LogRecord, RunStore } from '../store/run-store.js';

export type NewLogLine = Omit<LogRecord, 'seq'>;

export interface LogWriter {
  write(line: NewLogLine): void;
  /** Sends what is buffered now; resolves once it is durable. */
  flush(): Promise<void>;
}

export interface LogWriterOptions {
  /** Lines buffered before a write is sent without waiting for the timer. */
  maxLines?: number;
  /** How long a line may wait in the buffer. */
  intervalMs?: number;
  /** A failed write: the store is in trouble, the caller decides what that means. */
  onError: (error: unknown) => void;
}

/**
 * Buffers log lines and writes them with `appendLogs` in batches: a chatty handler must not cost
 * one store round trip per line. The engine flushes before an attempt's terminal write, so an
 * attempt's lines are stored before anyone can see it finished.
 */
export function createLogWriter(store: RunStore, options: LogWriterOptions): LogWriter {
  const maxLines = options.maxLines ?? 500;
  const intervalMs = options.intervalMs ?? 100;
  let buffer: NewLogLine[] = [];
  let timer: NodeJS.Timeout | undefined;
  let last: Promise<void> = Promise.resolve();

  function flush(): Promise<void> {
    if (timer) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (buffer.length === 0) return last;
    const lines = buffer;
    buffer = [];
    last = store.appendLogs(lines).catch((error: unknown) => options.onError(error));
    return last;
  }

  return {
    write(line) {
      buffer.push(line);
      if (buffer.length >= maxLines) {
        void flush();
      } else if (!timer) {
        timer = setTimeout(() => void flush(), intervalMs);
        timer.unref();
      }
    },
    flush,
  };
}
