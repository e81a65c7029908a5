import { Option, type Command } from 'commander';
import { collectList, collectParam, formatOption, withProjectOptions, withStoreOption } from '../options.js';
import { UsageError } from '../../errors.js';
import type { CommonOptions } from '../context.js';
import type { CommandDeps } from './types.js';
import { cancelCommand } from './cancel.js';
import { graphCommand } from './graph.js';
import { logsCommand, type LogsOptions } from './logs.js';
import { planCommand, type PlanOptions } from './plan.js';
import { resumeCommand, type ResumeOptions } from './resume.js';
import { runCommand, type RunOptions } from './run.js';
import { runsCommand, type RunsOptions } from './runs.js';
import { schemaCommand } from './schema.js';
import { VALIDATE_FORMATS, validateCommand, type ValidateOptions } from './validate.js';
import { GRAPH_FORMATS, type GraphFormat } from '../render/graph.js';

const paramOption = () =>
  new Option('-p, --param <name=value>', 'a pipeline param (repeatable), checked against its declared type').argParser(
    collectParam,
  );

/** Every command, its flags and its help text. Each action returns the command's exit code. */
export function registerCommands(program: Command, deps: CommandDeps): void {
  const action =
    <A extends unknown[]>(fn: (...args: A) => Promise<number>) =>
    async (...args: A) =>
      deps.setExitCode(await fn(...args));

  withProjectOptions(
    program
      .command('validate')
      .description('check pipeline files and report every problem with file:line:column')
      .argument('[paths...]', 'pipeline files or folders (default: pipelines/)')
      .addOption(formatOption(VALIDATE_FORMATS, 'text')),
  ).action(
    action((paths: string[], options: ValidateOptions & CommonOptions) =>
      validateCommand(deps.context(options), paths, options),
    ),
  );

  withProjectOptions(
    program
      .command('plan')
      .description('dry run: show what a run would do, without running or recording anything')
      .argument('<pipeline>', 'a pipeline file, or a pipeline name in pipelines/')
      .addOption(paramOption())
      .addOption(
        new Option('--fail <task>', 'show what would happen if this task failed for good (repeatable)').argParser(
          collectList,
        ),
      )
      .addOption(formatOption(['text', 'json'], 'text')),
  ).action(
    action((pipeline: string, options: PlanOptions & CommonOptions) =>
      planCommand(deps.context(options), pipeline, options),
    ),
  );

  withProjectOptions(
    program
      .command('graph')
      .description('print the DAG as Mermaid, Graphviz DOT or JSON')
      .argument('<pipeline>', 'a pipeline file, or a pipeline name in pipelines/')
      .addOption(formatOption(GRAPH_FORMATS, 'mermaid')),
  ).action(
    action((pipeline: string, options: { format: GraphFormat } & CommonOptions) =>
      graphCommand(deps.context(options), pipeline, options),
    ),
  );

  withStoreOption(
    withProjectOptions(
      program
        .command('run')
        .description('run a pipeline now, in this process, recording it in the store')
        .argument('<pipeline>', 'a pipeline file, or a pipeline name in pipelines/')
        .addOption(paramOption())
        .option('--concurrency <n>', 'most tasks running at once (default: the pipeline’s concurrency)')
        .option('--dry-run', 'show the plan instead of running (same as weft plan)')
        .addOption(
          new Option('--fail <task>', 'with --dry-run: show what would happen if this task failed (repeatable)').argParser(
            collectList,
          ),
        )
        .option('-q, --quiet', 'no progress output, only the exit code')
        .addOption(formatOption(['text', 'json'], 'text')),
    ),
  ).action(
    action((pipeline: string, options: RunOptions & CommonOptions & { dryRun?: boolean; fail?: string[] }) => {
      if (options.dryRun) return planCommand(deps.context(options), pipeline, options);
      // A real run cannot pretend a task failed; saying so beats ignoring the flag.
      if (options.fail) return Promise.reject(new UsageError('--fail only goes with --dry-run (or weft plan)'));
      return runCommand(deps.context(options), pipeline, options);
    }),
  );

  withStoreOption(
    program
      .command('runs')
      .description('list recent runs, newest first; with RUN_ID, show one run with its tasks and attempts')
      .argument('[run-id]', 'a run to show in detail')
      .option('--pipeline <name>', 'only runs of this pipeline')
      .addOption(new Option('--state <state>', 'only runs in this state (repeatable)').argParser(collectList))
      .option('-n, --limit <n>', 'how many runs', '20')
      .addOption(formatOption(['text', 'json'], 'text')),
  ).action(
    action((runId: string | undefined, options: RunsOptions & CommonOptions) =>
      runsCommand(deps.context(options), runId, options),
    ),
  );

  withStoreOption(
    program
      .command('logs')
      .description("print a run's log lines (of one task, with TASK)")
      .argument('<run-id>')
      .argument('[task]')
      .option('-F, --follow', 'keep printing new lines until the run ends')
      .addOption(formatOption(['text', 'json'], 'text')),
  ).action(
    action((runId: string, task: string | undefined, options: LogsOptions & CommonOptions) =>
      logsCommand(deps.context(options), runId, task, options),
    ),
  );

  withStoreOption(
    program.command('cancel').description('cancel a run (its process stops its tasks)').argument('<run-id>'),
  ).action(action((runId: string, options: CommonOptions) => cancelCommand(deps.context(options), runId)));

  withStoreOption(
    withProjectOptions(
      program
        .command('resume')
        .description('finish an interrupted run, or re-run a failed run’s failed tasks and what follows them')
        .argument('<run-id>')
        .option('-t, --task <task>', 'only this task and everything downstream of it')
        .option('-q, --quiet', 'no progress output, only the exit code')
        .addOption(formatOption(['text', 'json'], 'text')),
    ),
  ).action(
    action((runId: string, options: ResumeOptions & CommonOptions) => resumeCommand(deps.context(options), runId, options)),
  );

  withProjectOptions(
    program
      .command('schema')
      .description("print the pipeline JSON Schema, with the registered handlers' argument schemas merged in")
      .option('-w, --write <file>', 'write it to a file instead'),
  ).action(action((options: { write?: string } & CommonOptions) => schemaCommand(deps.context(options), options)));
}
