import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    // A hang guard, not a speed check (benchmarks measure speed): several process-spawning tests
    // take 10 s on a quiet 2-core machine and twice that when it is busy.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: database-backed files must not trample each other.
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
