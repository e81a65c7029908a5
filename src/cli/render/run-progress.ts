import { Listr, type DefaultRenderer, type ListrTaskWrapper, type SimpleRenderer } from 'listr2';
import type { Plan } from '../../compile/plan.js';
import { formatDuration } from '../../core/duration.js';
import type { EngineEvent } from '../../engine/index.js';
import type { CliIO } from '../io.js';

/** Shows a run as it goes: a live task list on a terminal, timestamped lines anywhere else. */
export interface RunProgress {
  onEvent: (event: EngineEvent) => void;
  /** Resolves once the display has drawn its last state. */
  stop: () => Promise<void>;
}

/** Past this many tasks a live list no longer fits a screen; plain lines say more. */
const LIVE_LIST_MAX_TASKS = 40;

export function createRunProgress(
  io: CliIO,
  plan: Plan,
  options: { quiet?: boolean; alreadySucceeded?: ReadonlySet<string> } = {},
): RunProgress {
  if (options.quiet) return { onEvent: () => {}, stop: () => Promise.resolve() };
  if (io.isTTY && plan.order.length <= LIVE_LIST_MAX_TASKS && process.stdout.isTTY) {
    return createLiveList(io, plan, options.alreadySucceeded ?? new Set());
  }
  return createPlainLines(io, plan.order.length > LIVE_LIST_MAX_TASKS, plan);
}

/** One line per event, for CI logs and pipes. With many tasks, successes are summarised instead. */
export function createPlainLines(io: CliIO, summariseSuccesses = false, plan?: Plan): RunProgress {
  // A failure points back at the task in the YAML, like a validation error does.
  const where = (task: string) => {
    const position = plan?.tasks[task]?.position;
    return position ? ` ${io.colors.dim(`(${position.file}:${position.line}:${position.column})`)}` : '';
  };
  const c = io.colors;
  const line = (text: string) => io.stdout(`${c.dim(new Date().toISOString())} ${text}\n`);
  let succeeded = 0;
  return {
    onEvent(event) {
      switch (event.type) {
        case 'run:started':
          line(
            `run ${event.runId} of ${c.bold(event.pipeline)} started: ${event.tasks} tasks${event.attempt > 1 ? `, run attempt ${event.attempt}` : ''}`,
          );
          break;
        case 'run:retrying':
          line(
            c.yellow(
              `run failed; retrying the whole run (attempt ${event.attempt}) in ${formatDuration(event.delayMs)}`,
            ),
          );
          break;
        case 'run:finished':
          if (summariseSuccesses) line(`${succeeded} tasks succeeded`);
          break;
        case 'task:started':
          if (!summariseSuccesses)
            line(`${event.task} started${event.attempt > 1 ? ` (attempt ${event.attempt})` : ''}`);
          break;
        case 'task:succeeded':
          succeeded++;
          if (!summariseSuccesses)
            line(`${event.task} ${c.green('succeeded')} in ${formatDuration(event.durationMs)}`);
          break;
        case 'task:retrying':
          // event.attempt is the attempt that just failed; the next one starts after the delay.
          line(
            `${event.task} ${c.yellow('failed')} (attempt ${event.attempt}): ${firstLine(event.error.message)}; retrying in ${formatDuration(event.delayMs)}`,
          );
          break;
        case 'task:failed':
          line(
            `${event.task} ${c.red('failed')} after ${event.attempts} attempt${event.attempts === 1 ? '' : 's'}: ${firstLine(event.error.message)}${event.continueOnError ? ' (continue_on_error)' : ''}${where(event.task)}`,
          );
          break;
        case 'task:skipped':
          line(`${event.task} ${c.dim('skipped')}: ${event.reason}`);
          break;
        case 'task:cancelled':
          line(`${event.task} ${c.magenta('cancelled')}: ${event.reason}`);
          break;
        case 'task:log':
          if (!summariseSuccesses) line(`${c.cyan(event.task)} ${c.dim('|')} ${event.message}`);
          break;
        case 'hook:failed':
          line(c.yellow(`hook ${event.handler} (${event.event}) failed: ${firstLine(event.error.message)}`));
          break;
      }
    },
    stop: () => Promise.resolve(),
  };
}

function firstLine(text: string): string {
  const [first = '', ...rest] = text.split('\n');
  return rest.length > 0 ? `${first} …` : first;
}

type Wrapper = ListrTaskWrapper<unknown, typeof DefaultRenderer, typeof SimpleRenderer>;

interface LiveTask {
  wrapper?: Wrapper;
  finish?: (
    outcome: { kind: 'ok' } | { kind: 'skip'; reason: string } | { kind: 'fail'; message: string },
  ) => void;
  pending?: { kind: 'ok' } | { kind: 'skip'; reason: string } | { kind: 'fail'; message: string };
  settled: boolean;
  title: string;
}

/**
 * listr2 runs its own tasks; here each list entry is a promise the engine's events settle, so the
 * engine stays the one thing that runs handlers.
 */
function createLiveList(io: CliIO, plan: Plan, alreadySucceeded: ReadonlySet<string>): RunProgress {
  const c = io.colors;
  const tasks = new Map<string, LiveTask>(
    plan.order.map((name) => [name, { title: `${name} ${c.dim('waiting')}`, settled: false }]),
  );
  const setTitle = (name: string, title: string) => {
    const entry = tasks.get(name);
    if (!entry) return;
    entry.title = title;
    if (entry.wrapper) entry.wrapper.title = title;
  };
  const settle = (name: string, outcome: NonNullable<LiveTask['pending']>) => {
    const entry = tasks.get(name);
    if (!entry || entry.settled) return;
    entry.settled = true;
    if (entry.finish) entry.finish(outcome);
    else entry.pending = outcome;
  };
  const list = new Listr<unknown, 'default', 'simple'>(
    plan.order.map((name) => ({
      title: tasks.get(name)!.title,
      task: (_ctx: unknown, wrapper: Wrapper) =>
        new Promise<void>((resolve, reject) => {
          const entry = tasks.get(name)!;
          entry.wrapper = wrapper;
          wrapper.title = entry.title;
          entry.finish = (outcome) => {
            if (outcome.kind === 'ok') resolve();
            else if (outcome.kind === 'skip') {
              wrapper.skip(`${name} skipped: ${outcome.reason}`);
              resolve();
            } else reject(new Error(outcome.message));
          };
          if (entry.pending) entry.finish(entry.pending);
        }),
    })),
    {
      concurrent: true,
      exitOnError: false,
      // IMPORTANT: listr2's own SIGINT listener calls process.exit(127) at once, which would leave
      // the run `running` with its commands orphaned; Ctrl-C belongs to `weft run` (cancel the run).
      registerSignalListeners: false,
      rendererOptions: { collapseErrors: false, collapseSkips: false },
    },
  );
  for (const name of alreadySucceeded) {
    setTitle(name, `${name} ${c.dim('succeeded earlier')}`);
    settle(name, { kind: 'ok' });
  }
  const done = list.run().then(
    () => undefined,
    () => {
      // Failures are shown in the list and in the summary; the run's result decides the exit code.
    },
  );
  return {
    onEvent(event) {
      switch (event.type) {
        case 'task:started':
          setTitle(
            event.task,
            `${event.task}${event.attempt > 1 ? c.yellow(` attempt ${event.attempt}`) : ''}`,
          );
          break;
        case 'task:retrying':
          setTitle(
            event.task,
            `${event.task} ${c.yellow(`↻ attempt ${event.attempt} failed, retrying in ${formatDuration(event.delayMs)}`)} ${c.dim(firstLine(event.error.message))}`,
          );
          break;
        case 'task:succeeded':
          setTitle(event.task, `${event.task} ${c.dim(formatDuration(event.durationMs))}`);
          settle(event.task, { kind: 'ok' });
          break;
        case 'task:failed':
          setTitle(event.task, event.task);
          settle(event.task, {
            kind: 'fail',
            message: `${event.task} failed after ${event.attempts} attempt${event.attempts === 1 ? '' : 's'}: ${firstLine(event.error.message)}`,
          });
          break;
        case 'task:skipped':
          settle(event.task, { kind: 'skip', reason: event.reason });
          break;
        case 'task:cancelled':
          settle(event.task, { kind: 'fail', message: `${event.task} cancelled: ${event.reason}` });
          break;
        case 'run:finished':
          // Anything not settled by now did not run in this execution.
          for (const name of tasks.keys())
            settle(name, { kind: 'skip', reason: 'not run in this execution' });
          break;
        case 'run:started':
        case 'run:retrying':
        case 'task:log':
        case 'hook:failed':
          break;
      }
    },
    stop: () => done,
  };
}
