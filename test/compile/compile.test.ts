import { describe, expect, it } from 'vitest';
import { compilePipeline } from '../../src/compile/compile.js';
import { buildGraph } from '../../src/compile/graph.js';
import type { Diagnostic } from '../../src/errors.js';
import { HandlerRegistry } from '../../src/handlers/registry.js';
import { specFromYaml } from '../support/source-from-yaml.js';

function compile(yaml: string, registry?: HandlerRegistry) {
  const { source, spec } = specFromYaml(yaml);
  return compilePipeline(source, spec, registry ? { registry } : {});
}

/** `CODE line:col` of each diagnostic: what the tests assert, rather than prose. */
function where(diagnostics: Diagnostic[]): string[] {
  return diagnostics.map((d) => `${d.code} ${d.line}:${d.column}`);
}

function only(diagnostics: Diagnostic[]): Diagnostic {
  expect(where(diagnostics)).toHaveLength(1);
  return diagnostics[0]!;
}

const registry = new HandlerRegistry([
  {
    name: 'shell',
    run: () => null,
    args: {
      type: 'object',
      properties: { command: { type: 'string' }, cwd: { type: 'string' } },
      required: ['command'],
      additionalProperties: false,
    },
  },
  {
    name: 'notify.slack',
    run: () => null,
    args: {
      type: 'object',
      properties: { channel: { type: 'string' }, count: { type: 'integer' } },
      additionalProperties: false,
    },
  },
  { name: 'extract', run: () => null },
  {
    name: 'multi',
    run: () => null,
    args: { type: 'object', properties: { command: { oneOf: [{ type: 'string' }, { type: 'array' }] } } },
  },
  { name: 'noop', run: () => null },
]);

describe('compilePipeline: dependencies', () => {
  it('reports an unknown depends_on target at the list item, with did-you-mean', () => {
    const d = only(
      compile(`name: p
tasks:
  extract: {}
  load:
    depends_on: [extarct]
`).diagnostics,
    );
    expect(where([d])).toEqual(['DEPENDENCY_UNKNOWN 5:18']);
    expect(d.path).toEqual(['tasks', 'load', 'depends_on', 0]);
    expect(d.hint).toBe('did you mean `extract`?');
  });

  it('points at a depends_on written as a single string', () => {
    const d = only(compile('name: p\ntasks:\n  a:\n    depends_on: nope\n').diagnostics);
    expect(where([d])).toEqual(['DEPENDENCY_UNKNOWN 4:17']);
  });

  it('reports a self-dependency', () => {
    const d = only(compile('name: p\ntasks:\n  a:\n    depends_on: [b, a]\n  b: {}\n').diagnostics);
    expect(where([d])).toEqual(['DEPENDENCY_SELF 4:21']);
  });

  it('reports a cycle once, with its path and every member line, at the first member', () => {
    const result = compile(`name: p
tasks:
  a:
    depends_on: [c]
  b:
    depends_on: [a]
  c:
    depends_on: [x, b]
  x: {}
`);
    const d = only(result.diagnostics);
    expect(result.plan).toBeNull();
    expect(where([d])).toEqual(['DEPENDENCY_CYCLE 4:18']);
    expect(d.message).toBe(
      'dependency cycle: a -> b -> c -> a ("b" depends on "a" at line 6, "c" depends on "b" at line 8, "a" depends on "c" at line 4)',
    );
  });

  it('reports each independent cycle', () => {
    const result = compile(`name: p
tasks:
  a: { depends_on: [b] }
  b: { depends_on: [a] }
  c: { depends_on: [d] }
  d: { depends_on: [c] }
`);
    expect(result.diagnostics.map((d) => d.message.split(' (')[0])).toEqual([
      'dependency cycle: a -> b -> a',
      'dependency cycle: c -> d -> c',
    ]);
  });
});

describe('compilePipeline: schedule', () => {
  it('reports an invalid cron in words', () => {
    const d = only(compile('name: p\nschedule: "61 * * * *"\ntasks:\n  a: {}\n').diagnostics);
    expect(where([d])).toEqual(['CRON_INVALID 2:11']);
    expect(d.message).toContain('Invalid value for minute: 61');
  });

  it('reports a cron that never fires', () => {
    const d = only(compile('name: p\nschedule:\n  cron: "0 0 30 2 *"\ntasks:\n  a: {}\n').diagnostics);
    expect(where([d])).toEqual(['CRON_INVALID 3:9']);
    expect(d.message).toContain('never matches');
  });

  it('reports an unknown time zone with a suggestion', () => {
    const d = only(
      compile('name: p\nschedule:\n  cron: "0 * * * *"\n  timezone: America/New_Yrok\ntasks:\n  a: {}\n')
        .diagnostics,
    );
    expect(where([d])).toEqual(['TIMEZONE_UNKNOWN 4:13']);
    expect(d.hint).toBe('did you mean `America/New_York`?');
  });

  it('normalises the schedule', () => {
    const { plan } = compile('name: p\nschedule: "*/5 * * * *"\ntasks:\n  a: {}\n');
    expect(plan!.schedule).toEqual({
      cron: '*/5 * * * *',
      timezone: 'UTC',
      overlap: 'skip',
      catchup: 'none',
      catchupLimit: 100,
      startDeadlineMs: null,
      position: { file: 'pipeline.yaml', line: 2, column: 11 },
    });
    const full = compile(`name: p
schedule:
  cron: "0 9 * * 1-5"
  timezone: Europe/Berlin
  overlap: queue
  catchup: all
  catchup_limit: 5
  start_deadline: 10m
tasks:
  a: {}
`).plan!.schedule;
    expect(full).toMatchObject({
      timezone: 'Europe/Berlin',
      overlap: 'queue',
      catchup: 'all',
      catchupLimit: 5,
      startDeadlineMs: 600_000,
    });
  });
});

describe('compilePipeline: durations', () => {
  it.each([
    ['timeout: 0', 'DURATION_INVALID 2:10', 'timeout must be greater than 0'],
    ['retry_delay: 5 minutes', 'DURATION_INVALID 2:14', 'is not a duration'],
    ['defaults:\n  max_retry_delay: 0s', 'DURATION_INVALID 3:20', 'max_retry_delay must be greater than 0'],
    [
      'schedule:\n  cron: "* * * * *"\n  start_deadline: 0',
      'DURATION_INVALID 4:19',
      'start_deadline must be greater than 0',
    ],
  ])('%j', (snippet, expected, message) => {
    const d = only(compile(`name: p\n${snippet}\ntasks:\n  a: {}\n`).diagnostics);
    expect(where([d])).toEqual([expected]);
    expect(d.message).toContain(message);
  });

  it('checks task durations in the same pass as everything else', () => {
    const result = compile('name: p\ntasks:\n  a:\n    timeout: 0\n    depends_on: [zz]\n');
    expect(where(result.diagnostics)).toEqual(['DURATION_INVALID 4:14', 'DEPENDENCY_UNKNOWN 5:18']);
  });
});

describe('compilePipeline: expressions', () => {
  it('reports a syntax error with a column inside the string', () => {
    const d = only(
      compile(`name: p
tasks:
  a:
    with:
      plain: \${{ params. }}
`).diagnostics,
    );
    // "      plain: " is 13 characters; the problem is at offset 12 of the value (the `}}`).
    expect(where([d])).toEqual(['EXPRESSION_SYNTAX 5:26']);
  });

  it('accounts for the opening quote of a quoted scalar', () => {
    const result = compile(`name: p
params:
  limit: { type: integer, default: 1 }
tasks:
  a:
    with:
      dq: "n=\${{ params.limt }}"
      sq: 'n=\${{ params.limt }}'
`);
    expect(where(result.diagnostics)).toEqual([
      'EXPRESSION_UNKNOWN_PARAM 7:18',
      'EXPRESSION_UNKNOWN_PARAM 8:18',
    ]);
    expect(result.diagnostics[0]!.hint).toBe('did you mean `limit`?');
  });

  it('falls back to the value start for multi-line strings', () => {
    const d = only(
      compile(`name: p
tasks:
  a:
    with:
      script: |
        echo one
        echo \${{ params.nope }}
`).diagnostics,
    );
    expect(where([d])).toEqual(['EXPRESSION_UNKNOWN_PARAM 5:15']);
  });

  it('reports unknown tasks, unknown roots and tasks that are not upstream', () => {
    const result = compile(`name: p
tasks:
  a: {}
  b:
    with:
      x: \${{ tasks.c.output }}
      y: \${{ tasks.nope.output }}
      z: \${{ secrets.token }}
      w: \${{ tasks.b.output }}
  c:
    depends_on: [b]
`);
    expect(where(result.diagnostics)).toEqual([
      'EXPRESSION_NOT_UPSTREAM 6:14',
      'EXPRESSION_UNKNOWN_TASK 7:14',
      'EXPRESSION_UNKNOWN_ROOT 8:14',
      'EXPRESSION_NOT_UPSTREAM 9:14',
    ]);
    expect(result.diagnostics[0]!.message).toBe(
      'task "b" uses tasks.c.output but does not depend on "c"; add depends_on: [c]',
    );
    expect(result.diagnostics[3]!.message).toContain('its own result');
  });

  it('accepts outputs of indirect upstream tasks, env and run', () => {
    const result = compile(`name: p
params:
  n: { type: integer, default: 1 }
tasks:
  a: {}
  b: { depends_on: a }
  c:
    depends_on: [b]
    when: "tasks.a.state == 'succeeded' && params.n > 0"
    with: { x: "\${{ tasks.a.output.rows[0].id }} \${{ env.HOME }} \${{ run.id }}" }
`);
    expect(result.diagnostics).toEqual([]);
    expect(result.plan!.tasks.c!.when).toBe("tasks.a.state == 'succeeded' && params.n > 0");
  });

  it('checks `when` as a single expression', () => {
    const result = compile(`name: p
tasks:
  a:
    when: "x \${{ params.n }}"
  b:
    when: params.m > 1
`);
    expect(where(result.diagnostics)).toEqual(['EXPRESSION_SYNTAX 4:12', 'EXPRESSION_UNKNOWN_PARAM 6:11']);
  });

  it('lets pipeline hooks read any task and task hooks read their own task', () => {
    const result = compile(`name: p
tasks:
  a:
    on_failure:
      - handler: noop
        with: { s: "\${{ tasks.a.state }}" }
  b:
    on_failure:
      - handler: noop
        with: { s: "\${{ tasks.a.output }}" }
on_failure:
  - handler: noop
    with: { s: "\${{ tasks.b.output }} \${{ params.x }}" }
`);
    expect(where(result.diagnostics)).toEqual([
      'EXPRESSION_NOT_UPSTREAM 10:25',
      'EXPRESSION_UNKNOWN_PARAM 13:43',
    ]);
  });
});

describe('compilePipeline: hook timeouts', () => {
  it('reads a hook timeout, defaults it to 5 minutes, and refuses zero at its position', () => {
    const result = compile(`name: p
tasks:
  a:
    on_failure: [noop]
on_success:
  - handler: noop
    timeout: 30s
on_failure:
  - handler: noop
    timeout: 0
`);
    expect(where(result.diagnostics)).toEqual(['DURATION_INVALID 10:14']);
    const ok = compile(`name: p
tasks:
  a:
    on_failure: [noop]
on_success:
  - handler: noop
    timeout: 30s
`);
    expect(ok.plan!.onSuccess.map((h) => h.timeoutMs)).toEqual([30_000]);
    expect(ok.plan!.tasks.a!.onFailure.map((h) => h.timeoutMs)).toEqual([300_000]);
  });
});

describe('compilePipeline: params', () => {
  it('reports defaults that do not match their type or enum', () => {
    const result = compile(`name: p
params:
  n: { type: integer, default: 1.5 }
  env: { type: string, enum: [dev, prod], default: test }
  ok: { type: array, default: [] }
tasks:
  a: {}
`);
    expect(where(result.diagnostics)).toEqual(['PARAM_DEFAULT_TYPE 3:32', 'PARAM_DEFAULT_TYPE 4:52']);
    expect(result.diagnostics[1]!.message).toContain('expected one of "dev", "prod"');
  });
});

describe('compilePipeline: handlers', () => {
  it('reports an unknown handler at its value, or at the task key when implied', () => {
    const result = compile(
      `name: p
tasks:
  extract: {}
  load:
    handler: shel
  transfrm: {}
`,
      registry,
    );
    expect(where(result.diagnostics)).toEqual(['HANDLER_UNKNOWN 5:14', 'HANDLER_UNKNOWN 6:3']);
    expect(result.diagnostics[0]!.hint).toBe('did you mean `shell`?');
  });

  it('checks hooks too', () => {
    const result = compile(
      `name: p
tasks:
  a:
    handler: noop
    on_failure: [notify.slak]
on_success:
  - handler: nope
`,
      registry,
    );
    expect(where(result.diagnostics)).toEqual(['HANDLER_UNKNOWN 5:18', 'HANDLER_UNKNOWN 7:14']);
    expect(result.diagnostics[0]!.hint).toBe('did you mean `notify.slack`?');
  });

  it('checks `with` against the handler args, at the offending key', () => {
    const result = compile(
      `name: p
tasks:
  a:
    handler: shell
    with:
      command: 42
      cwdd: /tmp
  b:
    handler: shell
    with:
      cwd: /tmp
  c:
    handler: shell
on_failure:
  - handler: notify.slack
    with: { channel: "#ops", count: many }
`,
      registry,
    );
    expect(where(result.diagnostics)).toEqual([
      'HANDLER_ARGS 6:7',
      'HANDLER_ARGS 7:7',
      'HANDLER_ARGS 10:5',
      'HANDLER_ARGS 13:5',
      'HANDLER_ARGS 16:30',
    ]);
    expect(result.diagnostics.map((d) => d.message)).toEqual([
      'task "a": handler "shell": with.command must be string, got 42',
      'task "a": handler "shell" does not take with.cwdd; did you mean `cwd`?',
      'task "b": handler "shell" needs with.command',
      'task "c": handler "shell" needs with.command',
      'on_failure hook 1: handler "notify.slack": with.count must be integer, got "many"',
    ]);
  });

  it('collapses oneOf branches into one message', () => {
    const d = only(
      compile('name: p\ntasks:\n  a:\n    handler: multi\n    with: { command: 42 }\n', registry).diagnostics,
    );
    expect(where([d])).toEqual(['HANDLER_ARGS 5:13']);
    expect(d.message).toBe('task "a": handler "multi": with.command must be string or array');
  });

  it('skips values that hold expressions', () => {
    const result = compile(
      `name: p
params:
  n: { type: integer, default: 1 }
tasks:
  a:
    handler: notify.slack
    with: { count: "\${{ params.n }}" }
`,
      registry,
    );
    expect(result.diagnostics).toEqual([]);
  });

  it('is skipped without a registry', () => {
    expect(compile('name: p\ntasks:\n  a: { handler: whatever }\n').diagnostics).toEqual([]);
  });
});

describe('compilePipeline: the Plan', () => {
  const yaml = `name: etl
description: nightly
params:
  limit: { type: integer, default: 10 }
concurrency: 4
retries: 1
retry_delay: 30s
timeout: 2h
secrets: [TOKEN]
defaults:
  retries: 2
  retry_delay: 10s
  backoff: exponential
  timeout: 5m
  queue: etl
  on_failure: [notify.slack]
tasks:
  extract:
    with: { limit: "\${{ params.limit }}" }
  transform:
    handler: shell
    with: { command: make }
    depends_on: extract
    retries: 0
    timeout: 1m
    on_failure:
      - handler: noop
        with: { why: x }
  load:
    handler: noop
    depends_on: [transform, extract]
    trigger_rule: all_done
    continue_on_error: true
    jitter: true
    max_retry_delay: 1m
    when: false
on_success: [noop]
`;

  it('applies defaults, durations and normalises everything', () => {
    const { plan, diagnostics } = compile(yaml, registry);
    expect(diagnostics).toEqual([]);
    expect(plan).not.toBeNull();
    const p = plan!;
    expect(p).toMatchObject({
      version: 1,
      name: 'etl',
      description: 'nightly',
      file: 'pipeline.yaml',
      schedule: null,
      concurrency: 4,
      retry: { retries: 1, delayMs: 30_000, backoff: 'fixed', maxDelayMs: null, jitter: false },
      timeoutMs: 7_200_000,
      secrets: ['TOKEN'],
      resumeInterrupted: false,
      order: ['extract', 'transform', 'load'],
      stages: [['extract'], ['transform'], ['load']],
      onSuccess: [
        { handler: 'noop', with: null, afterConsecutiveFailures: null, position: { line: 37, column: 14 } },
      ],
      onFailure: [],
    });
    expect(p.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(Object.getPrototypeOf(p.tasks)).toBeNull();
    expect(Object.getPrototypeOf(p.params)).toBeNull();
    expect(p.tasks.extract).toEqual({
      name: 'extract',
      handler: 'extract',
      with: { limit: '${{ params.limit }}' },
      dependsOn: [],
      dependents: ['transform', 'load'],
      retry: { retries: 2, delayMs: 10_000, backoff: 'exponential', maxDelayMs: null, jitter: false },
      timeoutMs: 300_000,
      when: null,
      triggerRule: 'all_success',
      continueOnError: false,
      onFailure: [
        {
          handler: 'notify.slack',
          with: null,
          afterConsecutiveFailures: null,
          timeoutMs: 300_000,
          position: { file: 'pipeline.yaml', line: 16, column: 16 },
        },
      ],
      queue: 'etl',
      description: null,
      stage: 0,
      position: { file: 'pipeline.yaml', line: 18, column: 3 },
    });
    expect(p.tasks.transform).toMatchObject({
      handler: 'shell',
      dependsOn: ['extract'],
      retry: { retries: 0, delayMs: 10_000 },
      timeoutMs: 60_000,
      // The task's own on_failure replaces the defaults'.
      onFailure: [{ handler: 'noop', with: { why: 'x' } }],
      stage: 1,
    });
    expect(p.tasks.load).toMatchObject({
      dependsOn: ['transform', 'extract'],
      dependents: [],
      triggerRule: 'all_done',
      continueOnError: true,
      retry: { jitter: true, maxDelayMs: 60_000 },
      when: false,
      stage: 2,
    });
    // Plain JSON: it survives a round trip.
    expect(JSON.parse(JSON.stringify(p))).toEqual(JSON.parse(JSON.stringify(p)));
  });

  it('uses built-in defaults when nothing is set', () => {
    const { plan } = compile('name: p\ntasks:\n  a: {}\n  b: {}\n  c: { depends_on: [a, b, a] }\n');
    expect(plan!.tasks.c).toMatchObject({
      dependsOn: ['a', 'b'],
      retry: { retries: 0, delayMs: 0, backoff: 'fixed', maxDelayMs: null, jitter: false },
      timeoutMs: null,
      triggerRule: 'all_success',
      continueOnError: false,
      onFailure: [],
      queue: 'default',
      when: null,
    });
    expect(plan!.concurrency).toBe(2);
    expect(plan!.retry).toEqual({
      retries: 0,
      delayMs: 0,
      backoff: 'fixed',
      maxDelayMs: null,
      jitter: false,
    });
  });

  it('orders topologically, stable in declaration order, with longest-path stages', () => {
    const { plan } = compile(`name: p
tasks:
  report: { depends_on: [join] }
  left: {}
  join: { depends_on: [left, right, deep] }
  right: {}
  deep: { depends_on: [right] }
  solo: {}
`);
    expect(plan!.order).toEqual(['left', 'right', 'deep', 'join', 'report', 'solo']);
    expect(plan!.stages).toEqual([['left', 'right', 'solo'], ['deep'], ['join'], ['report']]);
    expect(plan!.concurrency).toBe(3);
  });

  it('caps the default concurrency at 16', () => {
    const tasks = Array.from({ length: 20 }, (_, i) => `  t${i}: {}`).join('\n');
    expect(compile(`name: p\ntasks:\n${tasks}\n`).plan!.concurrency).toBe(16);
  });

  it('builds a graphology graph of the plan', () => {
    const { plan } = compile(yaml);
    const graph = buildGraph(plan!);
    expect(graph.order).toBe(3);
    expect(graph.size).toBe(3);
    expect(graph.hasDirectedEdge('extract', 'load')).toBe(true);
    expect(graph.outNeighbors('extract').sort()).toEqual(['load', 'transform']);
    expect(graph.getNodeAttributes('transform')).toEqual({
      handler: 'shell',
      stage: 1,
      triggerRule: 'all_success',
    });
  });

  it('reports every problem in one pass and returns no plan', () => {
    const result = compile(
      `name: p
params:
  n: { type: integer, default: x }
schedule: { cron: "* * *", timezone: Mars/Base }
tasks:
  a:
    handler: nope
    depends_on: [zz]
    timeout: 0
    with: { v: "\${{ params.m }}" }
`,
      registry,
    );
    expect(result.plan).toBeNull();
    expect(result.diagnostics.map((d) => d.code).sort()).toEqual([
      'CRON_INVALID',
      'DEPENDENCY_UNKNOWN',
      'DURATION_INVALID',
      'EXPRESSION_UNKNOWN_PARAM',
      'HANDLER_UNKNOWN',
      'PARAM_DEFAULT_TYPE',
      'TIMEZONE_UNKNOWN',
    ]);
  });
});
