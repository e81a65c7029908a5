import { Command, CommanderError } from 'commander';
import { UsageError, WeftError } from '../errors.js';
import { CliContext, type CommonOptions } from './context.js';
import { createProcessIO, type CliIO } from './io.js';
import { registerCommands } from './commands/index.js';
import { VERSION } from '../version.js';

/** Exit codes: 0 ok, 1 failed or invalid, 2 usage error, 70 a bug in weft itself. */
export const EXIT = { ok: 0, failed: 1, usage: 2, internal: 70 } as const;

/**
 * Runs the CLI and returns its exit code. The one top-level catch: user errors become a message
 * (and a hint) without a stack; only a bug in weft prints a stack.
 */
export async function main(argv: readonly string[], io: CliIO = createProcessIO()): Promise<number> {
  let exitCode: number = EXIT.ok;
  const contexts: CliContext[] = [];
  const program = new Command('weft')
    .description(
      'A declarative YAML pipeline runner: validate, plan, run and schedule DAGs of TypeScript handlers.',
    )
    .version(VERSION, '-v, --version')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr, outputError: (text, write) => write(text) });

  registerCommands(program, {
    io,
    context: (options: CommonOptions) => {
      const ctx = new CliContext(io, options);
      contexts.push(ctx);
      return ctx;
    },
    setExitCode: (code: number) => {
      exitCode = code;
    },
  });

  try {
    await program.parseAsync(argv as string[], { from: 'user' });
  } catch (error) {
    exitCode = reportError(error, io);
  } finally {
    await Promise.allSettled(contexts.map((ctx) => ctx.close()));
  }
  return exitCode;
}

function reportError(error: unknown, io: CliIO): number {
  const c = io.colors;
  if (error instanceof CommanderError) {
    if (
      error.code === 'commander.helpDisplayed' ||
      error.code === 'commander.version' ||
      error.code === 'commander.help'
    ) {
      return EXIT.ok;
    }
    // commander already printed its message; add where to look.
    io.stderr(c.dim("run 'weft --help' (or 'weft COMMAND --help') for usage\n"));
    return EXIT.usage;
  }
  if (error instanceof UsageError) {
    io.stderr(`${c.red('error:')} ${error.message}\n`);
    if (error.hint) io.stderr(`${c.cyan('hint:')} ${error.hint}\n`);
    return EXIT.usage;
  }
  if (error instanceof WeftError && error.code !== 'INTERNAL') {
    io.stderr(`${c.red('error:')} ${error.message}${c.dim(` [${error.code}]`)}\n`);
    if (error.hint) io.stderr(`${c.cyan('hint:')} ${error.hint}\n`);
    return EXIT.failed;
  }
  io.stderr(`${c.red('internal error (a bug in weft, please report it):')}\n`);
  io.stderr(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  return EXIT.internal;
}
