import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempProject, weft } from './helpers.js';

// `weft plan`, `weft run --dry-run` and `weft graph`: what a run would do, never doing it.

const project = tempProject({
  'pipelines/nightly.yaml': [
    'name: nightly',
    'schedule: "*/5 * * * *"',
    'params:',
    '  who: { type: string, default: world }',
    'tasks:',
    '  extract:',
    '    handler: shell',
    '    with: { command: "echo hi ${{ params.who }} > side-effect" }',
    '  transform: { handler: noop, depends_on: extract }',
    '  report: { handler: noop, depends_on: transform }',
    '  cleanup:',
    '    handler: noop',
    '    depends_on: transform',
    '    trigger_rule: all_done',
    '',
  ].join('\n'),
});
afterAll(() => project.cleanup());
const cwd = project.dir;

interface PlanJson {
  pipeline: string;
  params: Record<string, unknown>;
  stages: {
    index: number;
    tasks: { name: string; handler: string; would: string; depends_on: string[] }[];
  }[];
  schedule: { cron: string; next: { at: string }[] } | null;
  simulation: null | {
    failing: string[];
    run_state: string;
    tasks: Record<string, { state: string; reason: string | null }>;
  };
}

describe('weft plan', () => {
  it('shows the stages, the exact command with --param substituted, and 5 next fires', () => {
    const result = weft(['plan', 'nightly', '--param', 'who=bob'], { cwd });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(
      'Plan for nightly (pipelines/nightly.yaml) — dry run: nothing is executed or recorded',
    );
    expect(result.stdout).toContain('params: {"who":"bob"}');
    expect(result.stdout).toContain("would: sh -c 'echo hi bob > side-effect'");
    expect(result.stdout).toMatch(/^ {2}\*\/5 \* \* \* \* — every 5 minutes/m);
    const fires = [...result.stdout.matchAll(/^ {4}(\d{4}-\d\d-\d\dT\d\d:\d\d:00\.000Z) /gm)].map((m) =>
      Date.parse(m[1]!),
    );
    expect(fires).toHaveLength(5);
    for (let i = 1; i < fires.length; i++) expect(fires[i]! - fires[i - 1]!).toBe(5 * 60_000);
    expect(fires[0]!).toBeGreaterThan(Date.now() - 1000);
    expect(existsSync(join(cwd, 'side-effect'))).toBe(false);
  });

  it('--format json gives stages, params and the schedule’s next fires', () => {
    const result = weft(['plan', 'nightly', '--format', 'json'], { cwd });
    expect(result.code).toBe(0);
    const plan = JSON.parse(result.stdout) as PlanJson;
    expect(plan.pipeline).toBe('nightly');
    expect(plan.params).toEqual({ who: 'world' });
    expect(plan.stages.map((s) => s.tasks.map((t) => t.name))).toEqual([
      ['extract'],
      ['transform'],
      ['report', 'cleanup'],
    ]);
    expect(plan.schedule?.cron).toBe('*/5 * * * *');
    expect(plan.schedule?.next).toHaveLength(5);
    expect(plan.simulation).toBeNull();
  });

  it('--fail TASK shows what that failure would do, in text and JSON', () => {
    const text = weft(['plan', 'nightly', '--fail', 'transform'], { cwd });
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('If transform failed for good');
    expect(text.stdout).toMatch(/^ {2}report: skipped — upstream task "transform" failed$/m);
    expect(text.stdout).toMatch(/^ {2}cleanup: (succeeded|would run)/m);
    expect(text.stdout).toContain('the run would end failed');

    const json = JSON.parse(
      weft(['plan', 'nightly', '--fail', 'transform', '--format', 'json'], { cwd }).stdout,
    ) as PlanJson;
    expect(json.simulation?.failing).toEqual(['transform']);
    expect(json.simulation?.run_state).toBe('failed');
    expect(json.simulation?.tasks.transform?.state).toBe('failed');
    expect(json.simulation?.tasks.report).toEqual({
      state: 'skipped',
      reason: 'upstream task "transform" failed',
    });
    expect(json.simulation?.tasks.cleanup?.state).not.toBe('skipped');
  });

  it('--fail with a task the pipeline lacks, or a bad --param, is a usage error', () => {
    const noTask = weft(['plan', 'nightly', '--fail', 'nope'], { cwd });
    expect(noTask.code).toBe(2);
    expect(noTask.stderr).toContain('--fail nope');
    const badParam = weft(['plan', 'nightly', '--param', 'whom=x'], { cwd });
    expect(badParam.code).toBe(2);
    expect(badParam.stderr).toMatch(/did you mean "who"/);
  });
});

describe('weft run --dry-run', () => {
  it('prints exactly what weft plan prints and writes nothing, not even a store', () => {
    const fresh = tempProject({ 'pipelines/nightly.yaml': '' });
    try {
      // Same pipeline, a folder that has never seen a run.
      const plan = weft(
        ['plan', join(cwd, 'pipelines/nightly.yaml'), '--param', 'who=x', '--format', 'json'],
        {
          cwd: fresh.dir,
        },
      );
      const dry = weft(
        ['run', '--dry-run', join(cwd, 'pipelines/nightly.yaml'), '--param', 'who=x', '--format', 'json'],
        {
          cwd: fresh.dir,
        },
      );
      expect(dry.code).toBe(0);
      expect(dry.stdout).toBe(plan.stdout);
      const textPlan = weft(['plan', 'nightly', '--fail', 'extract'], { cwd });
      const textDry = weft(['run', 'nightly', '--dry-run', '--fail', 'extract'], { cwd });
      expect(textDry.code).toBe(0);
      expect(textDry.stdout).toBe(textPlan.stdout);
      expect(existsSync(join(fresh.dir, '.weft'))).toBe(false);
      expect(existsSync(join(cwd, '.weft'))).toBe(false);
      expect(existsSync(join(cwd, 'side-effect'))).toBe(false);
    } finally {
      fresh.cleanup();
    }
  });

  it('--fail without --dry-run is refused rather than ignored', () => {
    const result = weft(['run', 'nightly', '--fail', 'extract'], { cwd });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--fail only goes with --dry-run');
    expect(existsSync(join(cwd, 'side-effect'))).toBe(false);
  });
});

describe('weft graph', () => {
  it('--format mermaid draws every task with its handler and every edge', () => {
    // Mermaid is the default format.
    const result = weft(['graph', 'nightly'], { cwd });
    expect(result.code).toBe(0);
    expect(result.stdout.split('\n')).toEqual([
      'flowchart LR',
      '  n0["extract<br/><small>shell</small>"]',
      '  n1["transform<br/><small>noop</small>"]',
      '  n2["report<br/><small>noop</small>"]',
      '  n3["cleanup<br/><small>noop</small>"]',
      '  n0 --> n1',
      '  n1 --> n2',
      '  n1 -.->|all_done| n3',
      '',
    ]);
  });

  it('--format dot is Graphviz', () => {
    const result = weft(['graph', 'nightly', '--format', 'dot'], { cwd });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^digraph "nightly" \{\n/);
    expect(result.stdout).toContain('  "extract" [label="extract\\n(shell)"];');
    expect(result.stdout).toContain('  "extract" -> "transform";');
    expect(result.stdout).toContain('  "transform" -> "cleanup" [style=dashed, label="all_done"];');
    expect(result.stdout.trimEnd().endsWith('}')).toBe(true);
  });

  it('--format json lists nodes, edges and stages', () => {
    const result = weft(['graph', 'nightly', '--format', 'json'], { cwd });
    expect(result.code).toBe(0);
    const graph = JSON.parse(result.stdout) as {
      nodes: { id: string; handler: string; stage: number }[];
      edges: { from: string; to: string }[];
      stages: string[][];
    };
    expect(graph.nodes.map((n) => [n.id, n.handler, n.stage])).toEqual([
      ['extract', 'shell', 0],
      ['transform', 'noop', 1],
      ['report', 'noop', 2],
      ['cleanup', 'noop', 2],
    ]);
    expect(graph.edges).toEqual([
      { from: 'extract', to: 'transform' },
      { from: 'transform', to: 'report' },
      { from: 'transform', to: 'cleanup' },
    ]);
    expect(graph.stages).toEqual([['extract'], ['transform'], ['report', 'cleanup']]);
  });

  it('an unknown format is a usage error naming it', () => {
    const result = weft(['graph', 'nightly', '--format', 'png'], { cwd });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('png');
  });
});
