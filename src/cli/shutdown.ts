import type { CliIO } from './io.js';

export interface ShutdownSignals {
  /** Resolves on the first SIGINT or SIGTERM. */
  stopped: Promise<NodeJS.Signals>;
  /** Stops listening (call once the process has shut down). */
  dispose: () => void;
}

/**
 * The long-running commands' shutdown: the first SIGINT/SIGTERM asks for a graceful stop (saying
 * what the grace covers), a second one exits at once with 130 — the user does not want to wait.
 * What a hard exit leaves behind (runs `running` with a dead owner, leases held) is recovered by
 * the next process, so leaving at once is safe.
 */
export function onShutdownSignals(io: CliIO, gracefulMessage: string): ShutdownSignals {
  let resolveStopped: (signal: NodeJS.Signals) => void = () => undefined;
  const stopped = new Promise<NodeJS.Signals>((resolve) => {
    resolveStopped = resolve;
  });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals === 1) {
      io.stderr(`${signal}: ${gracefulMessage}\n`);
      resolveStopped(signal);
      return;
    }
    io.stderr(`${signal} again: exiting now\n`);
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    stopped,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
