import { Option, type Command } from 'commander';
import { UsageError } from '../errors.js';

/** Parses `--param k=v` flags, repeatable. */
export function collectParam(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new UsageError(`--param expects NAME=VALUE, got "${value}"`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

export function collectList(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function formatOption(formats: readonly string[], fallback: string): Option {
  return new Option('-f, --format <format>', 'output format').choices(formats).default(fallback);
}

/** Options every command that loads pipelines or handlers accepts. */
export function withProjectOptions(command: Command): Command {
  return command
    .option('-c, --config <file>', 'the project config (default: weft.config.ts in the current folder)')
    .addOption(
      new Option(
        '--handlers <module>',
        'a TypeScript or JavaScript module exporting handlers (repeatable)',
      ).argParser(collectList),
    );
}

export function withStoreOption(command: Command): Command {
  return command.option(
    '-s, --store <path-or-url>',
    'the run store: a SQLite file or postgres:// URL (env WEFT_STORE)',
  );
}
