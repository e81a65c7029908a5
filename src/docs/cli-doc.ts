import { Command, type Option } from 'commander';
import { registerCommands } from '../cli/commands/index.js';
import type { CommandDeps } from '../cli/commands/types.js';
import type { CliIO } from '../cli/io.js';
import { cell } from './schema-words.js';

export const CLI_DOC_PATH = 'docs/cli.md';

/**
 * The real command tree, built by the same `registerCommands` the CLI uses, with dependencies that
 * are never called: registering a command does nothing but describe it.
 */
export function buildProgramForDocs(): Command {
  const unused = () => {
    throw new Error('docs only: commands are not run');
  };
  const io = { stdout: unused, stderr: unused, env: {}, cwd: '/', isTTY: false } as unknown as CliIO;
  const deps: CommandDeps = { io, context: unused, setExitCode: unused };
  const program = new Command('weft').description(
    'A declarative YAML pipeline runner: validate, plan, run and schedule DAGs of TypeScript handlers.',
  );
  registerCommands(program, deps);
  return program;
}

/** docs/cli.md, generated from the commander definitions: every command, argument and option. */
export function generateCliDoc(program: Command = buildProgramForDocs()): string {
  const out: string[] = [
    '# Command line',
    '',
    '<!-- Generated from the commander definitions (src/cli/commands/) by `node scripts/gen-docs.mjs`; do not edit by hand. -->',
    '',
    program.description(),
    '',
    'Exit codes: `0` success, `1` a failed run or an invalid pipeline, `2` a usage error, `70` a bug in weft.',
    'Settings follow one precedence: flags > environment (`WEFT_*`, `DATABASE_URL`, `REDIS_URL`) > weft.config.ts >',
    'defaults (`weft config` shows each value and where it came from).',
    '',
    '| command | what it does |',
    '| --- | --- |',
    ...commandsOf(program).map(
      ([name, c]) => `| [\`weft ${name}\`](#weft-${name.replace(/ /g, '-')}) | ${cell(c.description())} |`,
    ),
    '',
  ];
  for (const [name, command] of commandsOf(program)) {
    out.push(`## weft ${name}`, '', command.description(), '');
    if (command.commands.length > 0) {
      out.push(`Subcommands: ${command.commands.map((c) => `\`weft ${name} ${c.name()}\``).join(', ')}.`, '');
      continue;
    }
    out.push('```', `weft ${name} ${command.usage()}`, '```', '');
    const args = command.registeredArguments;
    if (args.length > 0) {
      out.push('| argument | description |', '| --- | --- |');
      for (const arg of args) {
        const shown = `${arg.required ? '<' : '['}${arg.name()}${arg.variadic ? '...' : ''}${arg.required ? '>' : ']'}`;
        out.push(`| \`${shown}\` | ${cell(arg.description || '')} |`);
      }
      out.push('');
    }
    const options = command.options.filter((o: Option) => !o.hidden);
    if (options.length > 0) {
      out.push('| option | description |', '| --- | --- |');
      for (const option of options) out.push(`| \`${option.flags}\` | ${cell(describeOption(option))} |`);
      out.push('');
    }
  }
  return (
    out
      .join('\n')
      .replace(/\n{3,}/g, '\n\n')
      .trimEnd() + '\n'
  );
}

/** Every command, depth first, with its full name (`db migrate`). */
function commandsOf(parent: Command, prefix = ''): [string, Command][] {
  return parent.commands.flatMap((command): [string, Command][] => {
    const name = `${prefix}${command.name()}`;
    return [[name, command], ...commandsOf(command, `${name} `)];
  });
}

function describeOption(option: Option): string {
  const parts = [option.description];
  if (option.argChoices) parts.push(`one of: ${option.argChoices.join(', ')}`);
  if (option.defaultValue !== undefined && option.defaultValue !== false)
    parts.push(`default: ${String(option.defaultValue)}`);
  if (option.envVar) parts.push(`env: ${option.envVar}`);
  return parts.filter(Boolean).join('; ');
}
