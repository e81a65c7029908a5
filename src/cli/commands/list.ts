import { basename } from 'node:path';
import { UsageError } from '../../errors.js';
import { findPipelineFiles } from '../../project/discover.js';
import { loadPipeline } from '../../project/load-pipeline.js';
import { describeCron, nextFires } from '../../schedule/cron.js';
import { formatInZone, isoInZone } from '../../schedule/zone-time.js';
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
    /** UTC, ISO 8601. */
    next_fires: string[];
    /** The same instants in the schedule's time zone, ISO 8601 with its offset. */
    next_fires_local: string[];
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
    const fires = plan?.schedule
      ? nextFires(plan.schedule.cron, now, plan.schedule.timezone, NEXT_COUNT).map((f) => f.at)
      : [];
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
            next_fires: fires.map((at) => at.toISOString()),
            next_fires_local: fires.map((at) => isoInZone(at.getTime(), plan.schedule!.timezone)),
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
      // A file too broken to name its pipeline is known by its file name.
      l.pipeline ?? c.dim(basename(l.file)),
      l.valid
        ? l.schedule
          ? `${l.schedule.description} (${l.schedule.cron})`
          : c.dim('manual only')
        : c.red('invalid'),
      l.schedule?.timezone ?? '',
      l.schedule ? l.schedule.next_fires.map((at) => nextText(at, l.schedule!.timezone)).join(', ') : '',
      l.last_run ? `${paintState(l.last_run.state, c)} ${l.last_run.at}` : c.dim('never'),
      l.file,
    ]),
  ];
  ctx.io.stdout(renderTable(rows) + '\n');
  for (const l of listings) if (l.error) ctx.io.stdout(`${c.red('invalid:')} ${l.error}\n`);
  return 0;
}

/** "2027-03-28 03:30 CEST (01:30Z)": the wall clock of the schedule's zone, then UTC. */
function nextText(iso: string, timezone: string): string {
  const at = Date.parse(iso);
  const utc = `${iso.slice(0, 10)} ${iso.slice(11, 16)}Z`;
  if (timezone === 'UTC' || timezone === 'Etc/UTC') return utc;
  const local = formatInZone(at, timezone);
  return local.slice(0, 10) === utc.slice(0, 10) ? `${local} (${iso.slice(11, 16)}Z)` : `${local} (${utc})`;
}

async function lastRunOf(store: RunStore, pipeline: string): Promise<PipelineListing['last_run']> {
  const [run] = await store.listRuns({ pipeline, limit: 1 });
  if (!run) return null;
  return { id: run.id, state: run.state, trigger: run.trigger, at: run.startedAt ?? run.createdAt };
}
