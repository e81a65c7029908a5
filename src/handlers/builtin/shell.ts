import { constants as fsConstants } from 'node:fs';
import { access, readdir, readFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as delay } from 'node:timers/promises';
import { execa } from 'execa';
import { failpoint } from '../../core/failpoint.js';
import { NonRetryableError } from '../../errors.js';
import { quoteShellWord } from '../shell-quote.js';
import type { Handler, HandlerContext, JsonSchema } from '../types.js';
import { durationSchema } from './arg-schemas.js';
import { requireDuration } from './sleep.js';

export interface ShellArgs {
  /** A script for `/bin/sh -c`, or an argv run without a shell. */
  command: string | string[];
  cwd?: string;
  env?: Record<string, string>;
  /** Bytes of stdout kept in the output. */
  stdout_limit?: number;
  /** Time between SIGTERM and SIGKILL when the task is aborted. */
  kill_grace?: string | number;
}

export type ShellOutput = { exitCode: number; stdout: string };

export interface ShellHandlerOptions {
  /** Called with the child's pid (also its process group id) once it started. */
  onSpawn?: (pid: number, ctx: HandlerContext) => void;
}

export const DEFAULT_STDOUT_LIMIT = 1024 * 1024;
export const DEFAULT_KILL_GRACE_MS = 5000;
/** Lines of stderr quoted in the error of a failed command. */
export const STDERR_TAIL_LINES = 20;
/** A "line" without a newline this long is logged in pieces rather than held in memory. */
const MAX_LINE_CHARS = 64 * 1024;
const MAX_TAIL_LINE_CHARS = 500;
/**
 * Text kept past a cut (of stdout, of an over-long line) and masked along with what is kept, so
 * that a secret up to this long lying across the cut is masked whole instead of leaving its first
 * characters on the kept side.
 */
const MASK_LOOKAHEAD = 16 * 1024;
const GROUP_POLL_MS = 50;
const KILL_WAIT_MS = 1000;

/** One line for `weft plan`: exactly what would run. */
export function describeShellCommand(args: ShellArgs): string {
  const notes: string[] = [];
  let line: string;
  if (Array.isArray(args.command)) {
    line = args.command.map(quoteShellWord).join(' ');
    notes.push('no shell');
  } else {
    const lines = args.command.split('\n');
    // A multi-line script is shown by its first line, so that the plan stays one line per task.
    line =
      lines.length > 1
        ? `sh -c ${quoteShellWord(`${lines[0] ?? ''} …`)}`
        : `sh -c ${quoteShellWord(args.command)}`;
    if (lines.length > 1) notes.push(`${lines.length} lines`);
  }
  if (args.cwd !== undefined) notes.push(`cwd ${quoteShellWord(args.cwd)}`);
  const envNames = Object.keys(args.env ?? {});
  if (envNames.length > 0) notes.push(`env ${envNames.join(', ')}`);
  return notes.length > 0 ? `${line} (${notes.join('; ')})` : line;
}

/** The shell handler; `options.onSpawn` lets tests and tools see the child's pid. */
export function createShellHandler(options: ShellHandlerOptions = {}): Handler<ShellArgs> {
  return {
    name: 'shell',
    description:
      'Runs a command: a string with /bin/sh -c, or an argv array without a shell. Output: { exitCode, stdout }.',
    args: SHELL_ARGS_SCHEMA,
    shellQuoted: ['command'],
    describe: (args) => describeShellCommand(args),
    run: (args, ctx) => runShell(args, ctx, options),
  };
}

const SHELL_ARGS_SCHEMA: JsonSchema = {
  type: 'object',
  description: 'The command to run and how.',
  properties: {
    command: {
      description:
        'A script run by /bin/sh -c (an expression substituted into it is quoted for where it stands: as a ' +
        'word, inside "…" or inside \'…\', so the script receives exactly its value; elsewhere, such as in ' +
        'backticks or a here-document, weft validate refuses it), or an argv array run directly, without a shell.',
      examples: ['pg_dump "$DATABASE_URL" > dump.sql', ['python', 'etl.py', '--date', '${{ params.date }}']],
      oneOf: [
        { type: 'string', minLength: 1 },
        { type: 'array', items: { type: 'string' }, minItems: 1 },
      ],
    },
    cwd: {
      type: 'string',
      minLength: 1,
      description: 'Working directory of the command (default: the directory weft runs in).',
      examples: ['./scripts'],
    },
    env: {
      type: 'object',
      description: 'Extra environment variables for the command, added to those weft passes on.',
      examples: [{ LOG_LEVEL: 'debug' }],
      additionalProperties: { type: 'string' },
    },
    stdout_limit: {
      type: 'integer',
      minimum: 0,
      description: 'Bytes of stdout kept in the task output (all lines are still logged). Default 1 MiB.',
      examples: [65536],
    },
    kill_grace: durationSchema(
      'On timeout or cancel the command gets SIGTERM; after this long, SIGKILL. Default "5s".',
      ['5s', 10],
    ),
  },
  required: ['command'],
  additionalProperties: false,
};

export const shellHandler: Handler<ShellArgs> = createShellHandler();

async function runShell(
  args: ShellArgs,
  ctx: HandlerContext,
  options: ShellHandlerOptions,
): Promise<ShellOutput> {
  ctx.signal.throwIfAborted();
  const graceMs =
    args.kill_grace === undefined ? DEFAULT_KILL_GRACE_MS : requireDuration(args.kill_grace, 'kill_grace');
  const stdoutLimit = args.stdout_limit ?? DEFAULT_STDOUT_LIMIT;
  const program = typeof args.command === 'string' ? '/bin/sh' : args.command[0];
  if (program === undefined || program === '')
    throw new NonRetryableError('command: the argv array is empty');
  const env = childEnv(ctx.env, args.env);
  // Both forms run behind the gate in one shell: the script itself, or `exec` of the program.
  let script: string;
  let positional: string[] = [];
  if (typeof args.command === 'string') {
    script = SHELL_GATE + args.command;
  } else {
    // The gate's shell would report a missing program as exit 127; found here, it stays a clear
    // non-retryable error, as a spawn's ENOENT was.
    await assertRunnable(program, env.PATH, args.cwd);
    script = `${SHELL_GATE}exec "$@"`;
    positional = ['weft-gate', ...args.command];
  }
  const file = '/bin/sh';
  const argv = ['-c', script, ...positional];

  const child = execa(file, argv, {
    cwd: args.cwd,
    env,
    extendEnv: false,
    // Its own process group, so that a timeout can stop the command and everything it started.
    detached: true,
    // execa's cleanup kills only the direct child; the group is handled below.
    cleanup: false,
    // The gate's pipe: the command reads /dev/null, as with 'ignore', once the gate has opened.
    stdin: 'pipe',
    buffer: false,
    reject: false,
  });

  // Outside the engine (runHandler, direct calls) there may be no masker: nothing is secret then.
  const mask: Masker = ctx.mask ?? ((text) => text);
  const captured = createCapture(stdoutLimit, mask);
  const stdoutLines = createLineSplitter((line) => ctx.log.stdout(line), mask);
  const stderrTail: string[] = [];
  const stderrLines = createLineSplitter((line) => {
    ctx.log.stderr(line);
    stderrTail.push(tailLine(line, mask));
    if (stderrTail.length > STDERR_TAIL_LINES) stderrTail.shift();
  }, mask);
  child.stdout?.on('data', (chunk: Buffer) => {
    captured.write(chunk);
    stdoutLines.write(chunk);
  });
  child.stderr?.on('data', (chunk: Buffer) => stderrLines.write(chunk));

  const pid = child.pid;
  let termination: Promise<void> | undefined;
  const onAbort = (): void => {
    if (pid === undefined) return;
    // Caught here: it is awaited only once the child is done, too late to count as handled.
    termination = terminateGroup(pid, graceMs).catch((error: unknown) => {
      ctx.log.warn(`could not stop process group ${pid}: ${(error as Error).message}`);
    });
  };
  // A child that died early (killed on timeout while at the gate) closes the pipe: nothing to say.
  child.stdin?.on('error', () => undefined);
  if (pid !== undefined) {
    options.onSpawn?.(pid, ctx);
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    // detached: the child leads its own process group, whose id is its pid. IMPORTANT: the gate
    // opens only once the group is stored, so that a kill of weft at any moment leaves either a
    // recorded group (recovery stops it) or a child that sees the pipe close and exits unstarted.
    void Promise.resolve(ctx.recordChildProcess?.(pid)).then(() => {
      child.stdin?.end('\n');
      // Mid child: a moment after the gate opened rather than in the same tick.
      setTimeout(() => failpoint('shell-child-started'), 20).unref();
    });
  }

  let result;
  try {
    result = await child;
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
  }
  stdoutLines.end();
  stderrLines.end();

  if (termination !== undefined) {
    // IMPORTANT: an aborted command leaves nothing behind: wait until the group is gone or killed.
    await termination;
    ctx.signal.throwIfAborted();
  }
  const tail = stderrTail.length > 0 ? `\n${stderrTail.join('\n')}` : '';
  if (result.exitCode === 0) return { exitCode: 0, stdout: captured.text() };
  if (result.exitCode !== undefined) throw new Error(`command exited with code ${result.exitCode}${tail}`);
  if (result.signal !== undefined) throw new Error(`command was killed by signal ${result.signal}${tail}`);
  // It never started: a missing program, a bad cwd. Running it again cannot help.
  const reason = result.originalMessage ?? result.shortMessage;
  const message = `cannot start ${quoteShellWord(program)}: ${reason}`;
  throw result.code === 'ENOENT' || result.code === 'EACCES'
    ? new NonRetryableError(message)
    : new Error(message);
}

type Masker = (text: string) => string;

/**
 * The first words of every command's shell: wait for one line on stdin (the handler writes it once
 * the child's process group is stored), exit 125 without running anything if the pipe closes
 * first (weft died), then give the command /dev/null as its stdin. On one line, so the command's
 * own line numbers in shell error messages stay as written.
 */
export const SHELL_GATE = 'IFS= read -r _weft_gate || exit 125; exec </dev/null; ';

/** Throws the non-retryable "cannot start" error when `program` cannot be executed. */
async function assertRunnable(
  program: string,
  path: string | undefined,
  cwd: string | undefined,
): Promise<void> {
  const candidates = program.includes('/')
    ? [resolvePath(cwd ?? process.cwd(), program)]
    : (path ?? '').split(':').map((dir) => resolvePath(cwd ?? process.cwd(), dir || '.', program));
  let reason = 'not found (spawn ENOENT)';
  for (const candidate of candidates) {
    try {
      await access(candidate, fsConstants.X_OK);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EACCES') reason = 'permission denied (spawn EACCES)';
    }
  }
  throw new NonRetryableError(`cannot start ${quoteShellWord(program)}: ${reason}`);
}

/**
 * A stderr line as quoted in the error, at most MAX_TAIL_LINE_CHARS. IMPORTANT: masked BEFORE it
 * is cut; the engine masks the error again, but by then a secret cut in two is no longer a secret
 * it can find, and its first characters would be stored.
 */
function tailLine(line: string, mask: Masker): string {
  if (line.length <= MAX_TAIL_LINE_CHARS) return line;
  const masked = mask(line);
  return masked.length > MAX_TAIL_LINE_CHARS ? `${masked.slice(0, MAX_TAIL_LINE_CHARS)}…` : masked;
}

/** weft's environment for the task, then the task's own `env`; undefined entries dropped. */
function childEnv(
  base: Readonly<Record<string, string | undefined>>,
  extra: Record<string, string> | undefined,
): Record<string, string> {
  const env: Record<string, string> = {};
  // process.env first: if the engine passes only the pipeline's variables, PATH and HOME still reach the child.
  for (const source of [process.env, base, extra ?? {}]) {
    for (const [key, value] of Object.entries(source)) if (value !== undefined) env[key] = value;
  }
  return env;
}

/** SIGTERM to the group; SIGKILL after `graceMs` if any member is still alive. */
async function terminateGroup(pgid: number, graceMs: number): Promise<void> {
  if (!signalGroup(pgid, 'SIGTERM')) return;
  const deadline = Date.now() + graceMs;
  while (await isGroupAlive(pgid)) {
    const left = deadline - Date.now();
    if (left <= 0) {
      signalGroup(pgid, 'SIGKILL');
      // SIGKILL is delivered asynchronously: wait (briefly) until it took, so that when the task
      // rejects nothing of it still runs.
      const killDeadline = Date.now() + KILL_WAIT_MS;
      while ((await isGroupAlive(pgid)) && Date.now() < killDeadline) await delay(5);
      return;
    }
    await delay(Math.min(GROUP_POLL_MS, left));
  }
}

/** Returns false when the group no longer exists. */
function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

/**
 * Whether a live process remains in the group. kill(-pgid, 0) alone is not enough: it also
 * succeeds for zombies, which linger wherever PID 1 does not reap orphans (containers). On Linux
 * /proc tells zombies apart; elsewhere a signalable group counts as alive.
 */
async function isGroupAlive(pgid: number): Promise<boolean> {
  if (!signalGroup(pgid, 0)) return false;
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return true;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = await readFile(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // it exited while we looked
    }
    // Fields after the command name "(…)", which may itself hold spaces: state ppid pgrp …
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') return true;
  }
  return false;
}

interface LineSplitter {
  write(chunk: Buffer): void;
  end(): void;
}

/**
 * Splits a byte stream into lines as it arrives (UTF-8 safe across chunks, CRLF tolerated). A line
 * longer than MAX_LINE_CHARS is emitted in pieces; each cut is made in masked text with
 * MASK_LOOKAHEAD characters held back, so no piece ends in the start of a secret.
 */
function createLineSplitter(emit: (line: string) => void, mask: Masker): LineSplitter {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  const flush = (text: string): void => emit(text.endsWith('\r') ? text.slice(0, -1) : text);
  return {
    write(chunk) {
      pending += decoder.write(chunk);
      let start = 0;
      let newline: number;
      while ((newline = pending.indexOf('\n', start)) !== -1) {
        flush(pending.slice(start, newline));
        start = newline + 1;
      }
      pending = pending.slice(start);
      if (pending.length >= MAX_LINE_CHARS + MASK_LOOKAHEAD) {
        // Secrets wholly inside `pending` become ***; one only begun in the held-back part is
        // completed by the next chunk. The held-back text is kept masked: masking is idempotent.
        const masked = mask(pending);
        const cut = Math.max(masked.length - MASK_LOOKAHEAD, 0);
        emit(masked.slice(0, cut));
        pending = masked.slice(cut);
      }
    },
    end() {
      pending += decoder.end();
      if (pending !== '') flush(pending);
      pending = '';
    },
  };
}

/**
 * Keeps the first `limit` bytes of stdout (and MASK_LOOKAHEAD more, to mask across the cut) and
 * counts the rest.
 */
function createCapture(limit: number, mask: Masker): { write(chunk: Buffer): void; text(): string } {
  const chunks: Buffer[] = [];
  const keep = limit + MASK_LOOKAHEAD;
  let kept = 0;
  let total = 0;
  return {
    write(chunk) {
      total += chunk.length;
      const room = keep - kept;
      if (room <= 0) return;
      const part = room >= chunk.length ? chunk : chunk.subarray(0, room);
      chunks.push(part);
      kept += part.length;
    },
    text() {
      const all = Buffer.concat(chunks);
      if (total <= limit) {
        const text = all.toString('utf8');
        return text.endsWith('\n') ? text.slice(0, text.endsWith('\r\n') ? -2 : -1) : text;
      }
      // IMPORTANT: masked before the cut, so a secret across byte `limit` is *** rather than its
      // first bytes (which the engine's own masking could no longer recognise).
      const masked = Buffer.from(mask(all.toString('utf8')), 'utf8');
      // The cut may fall inside a multi-byte character: drop its remains rather than show U+FFFD.
      const text = masked
        .subarray(0, limit)
        .toString('utf8')
        .replace(/\uFFFD+$/, '');
      return `${text}\n[weft: stdout truncated to ${limit} bytes, ${total - limit} more bytes not kept]`;
    },
  };
}
