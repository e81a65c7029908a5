import { describe, expect, it } from 'vitest';
import { createDefaultRegistry } from '../../src/project/default-handlers.js';
import { loadPipelineText } from '../../src/project/load-pipeline.js';
import { buildPlanPreview } from '../../src/project/plan-preview.js';

const registry = createDefaultRegistry();

function preview(yaml: string, env: Record<string, string | undefined>, fail?: string[]) {
  const { plan, diagnostics } = loadPipelineText('p.yaml', yaml, { registry });
  expect(diagnostics).toEqual([]);
  return buildPlanPreview(plan!, {
    params: {},
    env,
    registry,
    now: new Date(Date.UTC(2026, 0, 1)),
    ...(fail ? { fail } : {}),
  });
}

const YAML = [
  'name: p',
  'secrets: [TOKEN]',
  'on_failure:',
  '  - { handler: notify.webhook, with: { url: "${{ env.HOOK_URL }}" }, after_consecutive_failures: 3 }',
  'tasks:',
  '  a:',
  '    handler: shell',
  '    with: { command: "echo ${{ env.TOKEN }} ${{ env.MISSING }}" }',
  '    when: "${{ env.FLAG == \'on\' }}"',
  '',
].join('\n');

describe('buildPlanPreview', () => {
  it('warns about every environment variable the plan reads that is not set', () => {
    const result = preview(YAML, { TOKEN: 'hunter22' });
    expect(result.warnings).toEqual([
      'task "a" reads env.MISSING, which is not set here (it would get null)',
      'task "a" (when) reads env.FLAG, which is not set here (it would get null)',
      'on_failure hook 1 (notify.webhook) reads env.HOOK_URL, which is not set here (it would get null)',
    ]);
    expect(preview(YAML, { TOKEN: 'x', MISSING: 'y', FLAG: 'on', HOOK_URL: 'https://h' }).warnings).toEqual(
      [],
    );
  });

  it('masks secret values and quotes substituted values in the shell command it shows', () => {
    const result = preview(YAML, { TOKEN: 'hunter22', MISSING: 'a b' });
    const task = result.stages[0]!.tasks[0]!;
    expect(task.with).toEqual({ command: "echo '***' 'a b'" });
    expect(JSON.stringify(result)).not.toContain('hunter22');
  });

  it('with --fail, says which hooks fire and how the run ends', () => {
    const result = preview(YAML, { FLAG: 'on' }, ['a']);
    expect(result.simulation).toMatchObject({ run_state: 'failed', tasks: { a: { state: 'failed' } } });
    expect(result.simulation!.hooks).toEqual([
      { event: 'run_failure', task: 'a', handler: 'notify.webhook' },
    ]);
    expect(result.hooks.on_failure[0]!.after_consecutive_failures).toBe(3);
  });
});
