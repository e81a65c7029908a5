import { NonRetryableError } from '../../errors.js';
import type { Handler } from '../types.js';

export interface FailArgs {
  times?: number;
  message?: string;
  retryable?: boolean;
}

/** Fails on purpose: for trying out retries, hooks and trigger rules. */
export const failHandler: Handler<FailArgs | undefined> = {
  name: 'fail',
  description: 'Fails on purpose (always, or only the first N attempts) to try out retries and hooks.',
  args: {
    type: 'object',
    description: 'When and how to fail.',
    properties: {
      times: {
        type: 'integer',
        minimum: 0,
        description:
          'Fail only the first N attempts, then succeed with output { attempt }. Default: always fail.',
        examples: [2],
      },
      message: {
        type: 'string',
        description: 'The error message.',
        examples: ['simulated outage'],
      },
      retryable: {
        type: 'boolean',
        description: 'false throws a NonRetryableError, so the task fails at once without retries.',
        default: true,
        examples: [false],
      },
    },
    additionalProperties: false,
  },
  describe: (args) => {
    const how = args?.retryable === false ? ' (not retryable)' : '';
    return args?.times === undefined
      ? `fail every attempt${how}`
      : `fail the first ${args.times} attempt(s)${how}`;
  },
  run: (args, ctx) => {
    const times = args?.times;
    if (times !== undefined && ctx.attempt > times) return { attempt: ctx.attempt };
    const message = args?.message ?? `failing on purpose (attempt ${ctx.attempt})`;
    throw args?.retryable === false ? new NonRetryableError(message) : new Error(message);
  },
};
