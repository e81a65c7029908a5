import { existsSync, readFileSync } from 'node:fs';

/**
 * Item 10's bookkeeping, shared by the local and the worker kill tests: the task writes
 * `<n> <ms since the epoch>` to a side file just before it logs `line <n>`, so the side file is
 * what was logged and when, whatever the store kept.
 */

/** A JavaScript handler module's text: logs `line <n>` every ~50 ms, each one first noted in `side`. */
export function chattyHandlerSource(options: { name: string; side: string; lines: number }): string {
  return `import { appendFileSync, existsSync } from 'node:fs';
const side = ${JSON.stringify(options.side)};
export const chatty = {
  name: ${JSON.stringify(options.name)},
  run: async (_args, ctx) => {
    // Run again (resumed, or on another worker): the first attempt's lines are already on record.
    if (existsSync(side)) {
      ctx.log.info('again');
      return { again: true };
    }
    for (let i = 0; i < ${options.lines}; i++) {
      appendFileSync(side, i + ' ' + Date.now() + '\\n');
      ctx.log.info('line ' + i);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return { again: false };
  },
};
export const handlers = [chatty];
`;
}

/** What the side file says was logged: [n, at] in order. */
export function readLogged(side: string): [number, number][] {
  if (!existsSync(side)) return [];
  return readFileSync(side, 'utf8')
    .split('\n')
    .filter((line) => /^\d+ \d+$/.test(line))
    .map((line) => line.split(' ').map(Number) as [number, number]);
}

export interface LogSurvival {
  /** Lines the task logged before the kill. */
  logged: number;
  /** Lines logged over a second before the kill: these must be stored. */
  due: number;
  /** `line <n>` lines found in the store. */
  stored: number;
  /** Due lines not in the store. */
  missing: number[];
  /** The stored numbers out of order, repeated or with a hole (they must be 0, 1, 2, …). */
  disorder: string[];
  /** How long before the kill the newest stored line was logged (ms). */
  lastDurableMs: number;
}

/**
 * Compares what was logged with what the store holds (its `line <n>` messages in store order):
 * every line logged at least `graceMs` before `killedAt` must be there, and what is there must be
 * a gapless prefix 0, 1, 2, … in order.
 */
export function compareLogs(
  logged: readonly [number, number][],
  storedMessages: readonly string[],
  killedAt: number,
  graceMs = 1000,
): LogSurvival {
  const numbers = storedMessages
    .map((m) => /^line (\d+)$/.exec(m)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number);
  const disorder: string[] = [];
  numbers.forEach((n, i) => {
    if (n !== i) disorder.push(`position ${i} holds line ${n}`);
  });
  const present = new Set(numbers);
  const due = logged.filter(([, at]) => at <= killedAt - graceMs).map(([n]) => n);
  const newest = numbers.length === 0 ? undefined : Math.max(...numbers);
  const newestAt = logged.find(([n]) => n === newest)?.[1];
  return {
    logged: logged.length,
    due: due.length,
    stored: numbers.length,
    missing: due.filter((n) => !present.has(n)),
    disorder: disorder.slice(0, 10),
    lastDurableMs: newestAt === undefined ? Number.POSITIVE_INFINITY : killedAt - newestAt,
  };
}

/** One line of figures for the report. */
export function describeSurvival(label: string, s: LogSurvival): string {
  return (
    `[reliability] ${label}: ${s.logged} lines logged before the kill, ${s.due} of them over a second before, ` +
    `${s.stored} stored, ${s.missing.length} missing; the newest stored line was logged ${s.lastDurableMs} ms before the kill`
  );
}
