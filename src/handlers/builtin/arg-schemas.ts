import type { JsonSchema } from '../types.js';

/** The text form parseDuration accepts: "250ms", "60s", "1h30m", or a bare number of seconds. */
export const DURATION_PATTERN = '^\\s*(\\d+(\\.\\d+)?|(\\d+(\\.\\d+)?(ms|s|m|h|d))+)\\s*$';

/**
 * A duration argument: a string such as "5s" or a number of seconds. Written as `oneOf` rather
 * than a `type` union because ajv's strict mode rejects union types.
 */
export function durationSchema(description: string, examples: (string | number)[]): JsonSchema {
  return {
    description,
    examples,
    oneOf: [
      {
        type: 'string',
        pattern: DURATION_PATTERN,
        description: 'a duration: a number with a unit (250ms, 30s, 5m, 1h30m, 2d)',
        examples: ['30s'],
      },
      { type: 'number', minimum: 0 },
    ],
  };
}
