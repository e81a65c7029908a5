import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { organismHandlers } from '../../src/organism/index.js';
import { STRICT_AJV_OPTIONS } from '../../src/core/ajv-options.js';

interface Task {
  handler: string;
  with?: Record<string, unknown>;
  depends_on?: string;
  retries?: number;
  retry_delay?: string;
}
const load = (file: string) =>
  parse(readFileSync(new URL(`../../pipelines/${file}`, import.meta.url), 'utf8')) as {
    name: string;
    schedule: string;
    retries: number;
    retry_delay: string;
    secrets: string[];
    on_failure: { handler: string; with: { url: string } }[];
    tasks: Record<string, Task>;
  };
const handlers = new Map(organismHandlers.map((h) => [h.name, h]));
const EXPRESSION = /^\$\{\{.*\}\}$/;

/** Each task's `with`, minus whole-value expressions, must satisfy its handler's argument schema. */
function checkArgs(task: Task): string[] {
  const handler = handlers.get(task.handler);
  if (!handler) return [`unknown handler ${task.handler}`];
  const literal = Object.fromEntries(
    Object.entries(task.with ?? {}).filter(([, v]) => !(typeof v === 'string' && EXPRESSION.test(v))),
  );
  const schema = { ...handler.args, required: [] };
  const validate = new Ajv({ ...STRICT_AJV_OPTIONS }).compile(schema);
  return validate(literal)
    ? []
    : (validate.errors ?? []).map((e) => `${task.handler}${e.instancePath} ${e.message}`);
}

describe('organism pipelines', () => {
  it('incremental-update chains fetch -> update every 5 minutes', () => {
    const p = load('incremental-update.yaml');
    expect([p.name, p.schedule, p.retries, p.retry_delay, p.secrets]).toEqual([
      'incremental-update-pipeline',
      '*/5 * * * *',
      1,
      '120s',
      ['SLACK_WEBHOOK_URL'],
    ]);
    expect(p.on_failure).toEqual([
      { handler: 'notify.webhook', with: { url: '${{ env.SLACK_WEBHOOK_URL }}' } },
    ]);
    expect(p.tasks.update_graph_incremental!.depends_on).toBe('fetch_interactions');
    expect(p.tasks.update_graph_incremental!.with!.batch).toBe('${{ tasks.fetch_interactions.output }}');
    expect(p.tasks.fetch_interactions!.with!.count).toBe('${{ params.batch_size }}');
    for (const task of Object.values(p.tasks)) {
      expect([task.retries, task.retry_delay]).toEqual([3, '60s']);
      expect(checkArgs(task)).toEqual([]);
    }
  });

  it('full-analysis chains refresh -> analysis -> store -> interventions every 6 hours', () => {
    const p = load('full-analysis.yaml');
    expect([p.name, p.schedule, p.retries, p.retry_delay]).toEqual([
      'full-analysis-pipeline',
      '0 */6 * * *',
      1,
      '300s',
    ]);
    expect(
      Object.entries(p.tasks).map(([name, t]) => [name, t.depends_on ?? null, t.retries, t.retry_delay]),
    ).toEqual([
      ['refresh_materialized_views', null, 2, '300s'],
      ['run_causal_analysis', 'refresh_materialized_views', 3, '60s'],
      ['store_metrics', 'run_causal_analysis', 3, '60s'],
      ['evaluate_interventions', 'store_metrics', 3, '60s'],
    ]);
    for (const task of Object.values(p.tasks)) expect(checkArgs(task)).toEqual([]);
  });
});
