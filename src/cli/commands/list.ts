import { UsageError } from '../../errors.js';
import { findPipelineFiles } from '../../project/discover.js';
import { loadPipeline } from '../../project/load-pipeline.js';
import { describeCron, nextFires } from '../../schedule/cron.js';
import type { RunState } from '../../core/states.js';
import type { RunStore } from '../../store/run-store.js';
import type { CliContext } from '../context.js';
import { paintState } from '../render/states.js';
import { renderTable } from '../render/table.js';

export interface ListOptions {
  format: 'text' | 'json';
}

export interface PipelineListing {
  file: string;
  pipeline: string | null;
  valid: boolean;
  /** The first error of an invalid file, as `file:line:column CODE message`. */
  error: string | null;
  schedule: {
    cron: string;
    description: string;
    timezone: string;
    overlap: string;
    catchup: string;
    next_fires: string[];
  } | null;
  last_run: { id: string; state: RunState; trigger: string; at: string } | null;
}

const NEXT_COUNT = 3;

/** `weft list [PATH]`: every pipeline with its schedule, next fire times, last run and validity. */
export async function listCommand(
  ctx: CliContext,
  path: string | undefined,
  options: ListOptions,
): Promise<number> {
  const target = path ?? (await ctx.pipelinesDir());
  const files = findPipelineFiles([target], ctx.cwd);
  if (files.length === 0) throw new UsageError(`no pipeline files (*.yaml, *.yml) found in ${target}`);
  const registry = await ctx.registry();
  const store = await ctx.store();
  const now = new Date();
  const listings: PipelineListing[] = [];
  for (const file of files) {
    const loaded = await loadPipeline(file, { registry });
    const plan = loaded.plan;
    const first = loaded.diagnostics.find((d) => d.severity === 'error');
    const name = plan?.name ?? loaded.spec?.name ?? null;
    listings.push({
      file,
      pipeline: name,
      valid: plan !== null,
      error:
        plan || !first
          ? null
          : `${first.file}:${first.line}:${first.column} ${first.code} ${first.message.split('\n')[0]}`,
      schedule: plan?.schedule
        ? {
            cron: plan.schedule.cron,
            description: describeCron(plan.schedule.cron),
            timezone: plan.schedule.timezone,
            overlap: plan.schedule.overlap,
            catchup: plan.schedule.catchup,
            next_fires: nextFires(plan.schedule.cron, now, plan.schedule.timezone, NEXT_COUNT).map((f) =>
              f.at.toISOString(),
            ),
          }
        : null,
      last_run: name ? await lastRunOf(store, name) : null,
    });
  }
  if (options.format === 'json') {
    ctx.io.stdout(JSON.stringify({ pipelines: listings }, null, 2) + '\n');
    return 0;
  }
  const c = ctx.io.colors;
  const rows = [
    ['PIPELINE', 'SCHEDULE', 'TIME ZONE', 'NEXT', 'LAST RUN', 'FILE'].map((h) => c.bold(h)),
    ...listings.map((l) => [
      l.pipeline ?? c.dim('?'),
      l.valid
        ? l.schedule
          ? `${l.schedule.description} (${l.schedule.cron})`
          : c.dim('manual only')
        : c.red('invalid'),
      l.schedule?.timezone ?? '',
      l.schedule ? l.schedule.next_fires.join(', ') : '',
      l.last_run ? `${paintState(l.last_run.state, c)} ${l.last_run.at}` : c.dim('never'),
      l.file,
    ]),
  ];
  ctx.io.stdout(renderTable(rows) + '\n');
  for (const l of listings) if (l.error) ctx.io.stdout(`${c.red('invalid:')} ${l.error}\n`);
  return 0;
}

async function lastRunOf(store: RunStore, pipeline: string): Promise<PipelineListing['last_run']> {
  const [run] = await store.listRuns({ pipeline, limit: 1 });
  if (!run) return null;
  return { id: run.id, state: run.state, trigger: run.trigger, at: run.startedAt ?? run.createdAt };
}
