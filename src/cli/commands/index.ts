import { Option, type Command } from 'commander';
import { collectList, collectParam, formatOption, withProjectOptions, withStoreOption } from '../options.js';
import { UsageError } from '../../errors.js';
import type { CommonOptions } from '../context.js';
import type { CommandDeps } from './types.js';

import type { FiresOptions } from './fires.js';

import type { LogsOptions } from './logs.js';
import type { PlanOptions } from './plan.js';
import type { ResumeOptions } from './resume.js';
import type { RunOptions } from './run.js';
import type { RunsOptions } from './runs.js';

import type { CheckOptions } from './check.js';
import type { DbMigrateOptions } from './db.js';
import type { OrganismAnalyseOptions, OrganismEmitOptions } from './organism.js';
import { registerTestCommand } from './test.js';
import { registerInitCommand } from './init.js';
import { registerConfigCommand } from './config.js';
import type { ListOptions } from './list.js';
import type { PruneOptions } from './prune.js';
import type { ServeOptions } from './serve.js';
import { SERVE_SETTINGS } from './serve-settings.js';
import type { TriggerOptions } from './trigger.js';
import type { WorkerCommandOptions } from './worker.js';
import { VALIDATE_FORMATS, type ValidateOptions } from './validate.js';
import { GRAPH_FORMATS, type GraphFormat } from '../render/graph.js';

const paramOption = () =>
  new Option(
    '-p, --param <name=value>',
    'a pipeline param (repeatable), checked against its declared type',
  ).argParser(collectParam);

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
      .option('--changed', 'only files git sees as changed or new (for a pre-commit hook)')
      .addOption(formatOption(VALIDATE_FORMATS, 'text')),
  ).action(
    action(async (paths: string[], options: ValidateOptions & CommonOptions) =>
      (await import('./validate.js')).validateCommand(deps.context(options), paths, options),
    ),
  );

  withProjectOptions(
    program
      .command('plan')
      .description('dry run: show what a run would do, without running or recording anything')
      .argument('<pipeline>', 'a pipeline file, or a pipeline name in pipelines/')
      .addOption(paramOption())
      .addOption(
        new Option(
          '--fail <task>',
          'show what would happen if this task failed for good (repeatable)',
        ).argParser(collectList),
      )
      .addOption(formatOption(['text', 'json'], 'text')),
  ).action(
    action(async (pipeline: string, options: PlanOptions & CommonOptions) =>
      (await import('./plan.js')).planCommand(deps.context(options), pipeline, options),
    ),
  );

  withProjectOptions(
    program
      .command('graph')
      .description('print the DAG as Mermaid, Graphviz DOT or JSON')
      .argument('<pipeline>', 'a pipeline file, or a pipeline name in pipelines/')
      .addOption(formatOption(GRAPH_FORMATS, 'mermaid')),
  ).action(
    action(async (pipeline: string, options: { format: GraphFormat } & CommonOptions) =>
      (await import('./graph.js')).graphCommand(deps.context(options), pipeline, options),
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
          new Option(
            '--fail <task>',
            'with --dry-run: show what would happen if this task failed (repeatable)',
          ).argParser(collectList),
        )
        .option('-q, --quiet', 'no progress output, only the exit code')
        .addOption(formatOption(['text', 'json'], 'text')),
    ),
  ).action(
    action(
      async (
        pipeline: string,
        options: RunOptions & CommonOptions & { dryRun?: boolean; fail?: string[] },
      ) => {
        if (options.dryRun)
          return (await import('./plan.js')).planCommand(deps.context(options), pipeline, options);
        // A real run cannot pretend a task failed; saying so beats ignoring the flag.
        if (options.fail)
          return Promise.reject(new UsageError('--fail only goes with --dry-run (or weft plan)'));
        return (await import('./run.js')).runCommand(deps.context(options), pipeline, options);
      },
    ),
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
    action(async (runId: string | undefined, options: RunsOptions & CommonOptions) =>
      (await import('./runs.js')).runsCommand(deps.context(options), runId, options),
    ),
  );

  withStoreOption(
    program
      .command('fires')
      .description('what weft serve did with each schedule tick: ran, skipped, queued or missed, and why')
      .option('--pipeline <name>', 'only ticks of this pipeline')
      .option('-n, --limit <n>', 'how many ticks', '50')
      .addOption(formatOption(['text', 'json'], 'text')),
  ).action(
    action(async (options: FiresOptions & CommonOptions) =>
      (await import('./fires.js')).firesCommand(deps.context(options), options),
    ),
  );

  withStoreOption(
    program
      .command('prune')
      .description(
        'delete the history (runs, their logs, schedule ticks, run requests) that ended before --older-than',
      )
      .requiredOption('--older-than <duration>', 'how much history to keep, at least 1d (e.g. 30d)')
      .option('--dry-run', 'count what would be deleted; delete nothing')
      .addOption(formatOption(['text', 'json'], 'text')),
  ).action(
    action(async (options: PruneOptions & CommonOptions) =>
      (await import('./prune.js')).pruneCommand(deps.context(options), options),
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
    action(async (runId: string, task: string | undefined, options: LogsOptions & CommonOptions) =>
      (await import('./logs.js')).logsCommand(deps.context(options), runId, task, options),
    ),
  );

  withStoreOption(
    program
      .command('cancel')
      .description('cancel a run (its process stops its tasks)')
      .argument('<run-id>')
      .addOption(formatOption(['text', 'json'], 'text')),
  ).action(
    action(async (runId: string, options: { format: 'text' | 'json' } & CommonOptions) =>
      (await import('./cancel.js')).cancelCommand(deps.context(options), runId, options),
    ),
  );

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
    action(async (runId: string, options: ResumeOptions & CommonOptions) =>
      (await import('./resume.js')).resumeCommand(deps.context(options), runId, options),
    ),
  );

  withStoreOption(
    withProjectOptions(
      program
        .command('serve')
        .description(
          'run every pipeline on its schedule (and runs asked for with weft trigger) until SIGTERM',
        )
        .argument('[path]', 'a folder or file of pipelines (default: pipelines/)')
        // Defaults and variables from SERVE_SETTINGS; serve-settings.ts puts weft.config.ts's
        // `serve:` between the two.
        .addOption(
          new Option('--log-format <format>', 'log line format')
            .choices(['text', 'json'])
            .default(SERVE_SETTINGS.logFormat.fallback)
            .env(SERVE_SETTINGS.logFormat.env),
        )
        .addOption(
          new Option('--grace <duration>', 'how long runs in progress get to finish on shutdown')
            .default(SERVE_SETTINGS.grace.fallback)
            .env(SERVE_SETTINGS.grace.env),
        )
        .addOption(
          new Option('--port <port>', 'port of the dashboard and HTTP API')
            .default(SERVE_SETTINGS.port.fallback)
            .env(SERVE_SETTINGS.port.env),
        )
        .addOption(
          new Option('--host <host>', 'address to listen on; anything but loopback needs WEFT_API_TOKEN')
            .default(SERVE_SETTINGS.host.fallback)
            .env(SERVE_SETTINGS.host.env),
        )
        .option('--no-http', 'schedule only: no dashboard or HTTP API')
        .addOption(
          new Option(
            '--retain <duration>',
            'prune the history older than this (at least 1d) at start and every hour, as weft prune does',
          ).env(SERVE_SETTINGS.retain.env),
        ),
    ),
  ).action(
    action(async (path: string | undefined, options: ServeOptions & CommonOptions, command: Command) =>
      (await import('./serve.js')).serveCommand(deps.context(options), path, options, (key) =>
        command.getOptionValueSource(key) === 'cli' ? String(options[key]) : undefined,
      ),
    ),
  );

  withStoreOption(
    withProjectOptions(
      program
        .command('worker')
        .description(
          'run tasks that weft serve queued in a PostgreSQL store (distributed execution) until SIGTERM',
        )
        .addOption(
          new Option(
            '-Q, --queue <name>',
            'a queue to take tasks from (repeatable; default: default)',
          ).argParser(collectList),
        )
        .option('--concurrency <n>', 'tasks run at once (default 16)')
        .option('--lease <duration>', 'how long a claimed task is held without a heartbeat', '10s')
        .option('--grace <duration>', 'how long tasks in progress get to finish on shutdown', '30s')
        .addOption(
          new Option('--log-format <format>', 'log line format').choices(['text', 'json']).default('text'),
        ),
    ),
  ).action(
    action(async (options: WorkerCommandOptions & CommonOptions) =>
      (await import('./worker.js')).workerCommand(deps.context(options), options),
    ),
  );

  withStoreOption(
    withProjectOptions(
      program
        .command('trigger')
        .description('ask the running weft serve to run a pipeline now; prints the request id')
        .argument('<pipeline>', 'a pipeline file, or a pipeline name in pipelines/')
        .addOption(paramOption())
        .option('-w, --wait', 'wait for the run to end; exit 0 when it succeeded'),
    ),
  ).action(
    action(async (pipeline: string, options: TriggerOptions & CommonOptions) =>
      (await import('./trigger.js')).triggerCommand(deps.context(options), pipeline, options),
    ),
  );

  withStoreOption(
    withProjectOptions(
      program
        .command('list')
        .description('list pipelines with their schedules, next fire times, last run and validity')
        .argument('[path]', 'a folder or file of pipelines (default: pipelines/)')
        .addOption(formatOption(['text', 'json'], 'text')),
    ),
  ).action(
    action(async (path: string | undefined, options: ListOptions & CommonOptions) =>
      (await import('./list.js')).listCommand(deps.context(options), path, options),
    ),
  );

  withProjectOptions(
    program
      .command('schema')
      .description("print the pipeline JSON Schema, with the registered handlers' argument schemas merged in")
      .option('-w, --write <file>', 'write it to a file instead'),
  ).action(
    action(async (options: { write?: string } & CommonOptions) =>
      (await import('./schema.js')).schemaCommand(deps.context(options), options),
    ),
  );

  withStoreOption(
    withProjectOptions(
      program
        .command('check')
        .description(
          'is the run store, Redis and PostgreSQL reachable (with versions)? exit 1 if one a pipeline needs is not',
        )
        .argument('[path]', 'a folder or file of pipelines whose needs count (default: pipelines/)')
        .option('--redis-url <url>', 'Redis to probe (default: $REDIS_URL, then redis://127.0.0.1:6379)')
        .option(
          '--database-url <url>',
          'PostgreSQL to probe (default: $DATABASE_URL, then postgres://postgres@127.0.0.1:5432/postgres)',
        )
        .option('--timeout <ms>', 'how long each probe may take', '2000')
        .addOption(formatOption(['text', 'json'], 'text')),
    ),
  ).action(
    action(async (path: string | undefined, options: CheckOptions & CommonOptions) =>
      (await import('./check.js')).checkCommand(deps.context(options), path, options),
    ),
  );

  const db = program.command('db').description('the PostgreSQL schemas weft uses');
  withStoreOption(
    db
      .command('migrate')
      .description(
        'apply pending PostgreSQL migrations: the organism schema, and the run store when --store is postgres://',
      )
      .option(
        '--database-url <url>',
        'the database (default: $DATABASE_URL, then postgres://postgres@127.0.0.1:5432/postgres)',
      )
      .addOption(formatOption(['text', 'json'], 'text')),
  ).action(
    action(async (options: DbMigrateOptions & CommonOptions) =>
      (await import('./db.js')).dbMigrateCommand(deps.context(options), options),
    ),
  );

  const organism = program
    .command('organism')
    .description('the Causal Organism reference platform: sample data and metrics');
  organism
    .command('emit')
    .description('fill a Redis stream with a seeded, realistic organisation’s interactions')
    .option('-n, --count <n>', 'interactions to add', '10000')
    .option('--people <n>', 'people in the organisation (default 200)')
    .option('--teams <n>', 'teams (default people / 12)')
    .option('--days <n>', 'days covered, ending today (default 28)')
    .option('--start <date>', 'first day instead (ISO date)')
    .option('--seed <n>', 'random seed: the same seed gives the same stream (default 1)')
    .option('--stream <name>', 'the stream (default organism:interactions)')
    .option('--redis-url <url>', 'Redis (default: $REDIS_URL, then redis://127.0.0.1:6379)')
    .addOption(formatOption(['text', 'json'], 'text'))
    .action(
      action(async (options: OrganismEmitOptions) =>
        (await import('./organism.js')).organismEmitCommand(deps.context({}), options),
      ),
    );
  organism
    .command('analyse')
    .alias('analyze')
    .description(
      'compute the organism metrics of an edge list and daily series (JSON file), without a database',
    )
    .requiredOption(
      '-i, --input <file>',
      'JSON { edges: [{source, target, kind?, weight}], daily: [{person, day, count}] }',
    )
    .option('--window-days <n>', 'days of activity for the influence scores (default 28)')
    .option('--min-days <n>', 'active days both people need for a score (default 7)')
    .option('--lag <n>', 'lag in days (default 1)')
    .option('--seed <n>', 'Louvain seed (default 1)')
    .option('--window-end <date>', 'last day of the window (default: the latest day in daily)')
    .addOption(formatOption(['text', 'json'], 'text'))
    .action(
      action(async (options: OrganismAnalyseOptions) =>
        (await import('./organism.js')).organismAnalyseCommand(deps.context({}), options),
      ),
    );

  registerTestCommand(program, deps);
  registerInitCommand(program, deps);
  registerConfigCommand(program, deps);
}
