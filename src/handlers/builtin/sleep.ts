import { setTimeout as delay } from 'node:timers/promises';
import { formatDuration, parseDuration } from '../../core/duration.js';
import { NonRetryableError } from '../../errors.js';
import type { Handler } from '../types.js';
import { durationSchema } from './arg-schemas.js';

export interface SleepArgs {
  duration: string | number;
}

/** Parses a duration argument, failing for good when it is not one (retrying cannot fix it). */
export function requireDuration(value: string | number, argName: string): number {
  const ms = parseDuration(value);
  if (ms === null) {
    throw new NonRetryableError(
      `${argName}: "${String(value)}" is not a duration (use e.g. "250ms", "5s", "1h30m")`,
    );
  }
  return ms;
}

export const sleepHandler: Handler<SleepArgs> = {
  name: 'sleep',
  description: 'Waits for a duration, then succeeds with output null; stops at once on timeout or cancel.',
  args: {
    type: 'object',
    description: 'How long to wait.',
    properties: {
      duration: durationSchema('How long to wait: "250ms", "5s", "1h30m", or a number of seconds.', [
        '5s',
        '1m30s',
        0.5,
      ]),
    },
    required: ['duration'],
    additionalProperties: false,
  },
  describe: (args) => {
    const ms = parseDuration(args.duration);
    return ms === null ? `sleep ${String(args.duration)}` : `sleep ${formatDuration(ms)}`;
  },
  run: async (args, ctx) => {
    const ms = requireDuration(args.duration, 'duration');
    ctx.signal.throwIfAborted();
    try {
      await delay(ms, undefined, { signal: ctx.signal });
    } catch (error) {
      // Rethrow the abort's own reason (timeout or cancel) rather than the generic AbortError.
      ctx.signal.throwIfAborted();
      throw error;
    }
    return null;
  },
};
