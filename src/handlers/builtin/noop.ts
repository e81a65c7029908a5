import type { Handler } from '../types.js';

/**
 * Does nothing and returns null. Takes no arguments and declares no `args` schema on purpose:
 * it is what throughput benchmarks run thousands of times, so it must cost nothing to validate
 * or call, and `with` may be absent.
 */
export const noopHandler: Handler<unknown> = {
  name: 'noop',
  description: 'Does nothing and succeeds with output null (placeholders, joins, benchmarks).',
  describe: () => 'do nothing',
  run: () => null,
};
