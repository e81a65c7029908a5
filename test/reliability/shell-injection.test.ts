import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRun } from '../../src/engine/create-run.js';
import { executeRun } from '../../src/engine/execute-run.js';
import { createBuiltinRegistry } from '../../src/handlers/builtins.js';
import { loadPipelineText } from '../../src/project/load-pipeline.js';
import { createMemoryStore } from '../../src/store/memory/memory-store.js';
import { count, seededRng, type Rng } from './tier.js';

/**
 * Item 5: a parameter substituted into a `shell` task reaches the program as exactly the bytes
 * given, and never runs as shell syntax. Hostile values are generated; each is substituted into
 * a command STRING in every place weft quotes for (see handlers/shell-context.ts):
 *   s: a whole word                     printf '%s' ${{ params.pN }} > DIR/s-N
 *   d: inside "…" with text around      printf '%s' "<${{ params.pN }}>" > DIR/d-N
 *   q: inside '…' with text around      printf '%s' '<${{ params.pN }}>' > DIR/q-N
 *   c: an argument inside $( … )        : "$(printf '%s' ${{ params.pN }} > DIR/c-N)"
 * and into an argv array (a: a whole item, b: an item with a prefix), whose probe writes each
 * argument to a file. Every payload that would run something runs `touch CANARY`: the canary
 * must never exist.
 *
 * Values are batched (many substitutions per task, many tasks in one run) to keep it fast.
 */

const PER_TASK = 25;
/** Values per pipeline (and run): 5,000 of them in six forms would pass the 1 MiB file limit. */
const PER_PIPELINE = 1000;
let dir: string;
let canary: string;

function fragments(): string[] {
  return [
    "'",
    '"',
    "\\'",
    "'\\''",
    '\\',
    ';',
    '|',
    '||',
    '&&',
    '&',
    '$(touch CANARY)',
    '`touch CANARY`',
    '; touch CANARY',
    '| touch CANARY',
    '&& touch CANARY',
    "'; touch CANARY; '",
    '"; touch CANARY; "',
    '\n touch CANARY\n',
    '\r\ntouch CANARY',
    '$(',
    ')',
    '${IFS}',
    '$HOME',
    '$VAR',
    '${PATH}',
    '$1',
    '$@',
    '$$',
    '$?',
    '!!',
    '*',
    '?',
    '[a-z]',
    '{a,b}',
    '~',
    '~root',
    '-rf',
    '--help',
    '-',
    '--',
    '-n',
    '-e',
    '%s',
    '%n',
    '%%',
    '\\n',
    '\t',
    ' ',
    '  ',
    '#',
    '<',
    '>',
    '>>',
    '2>&1',
    '<(touch CANARY)',
    '>(touch CANARY)',
    '=',
    'a=b',
    'x$(touch CANARY)y',
    'é',
    '日本語',
    '🙂',
    '\u202Etxt.exe',
    'e\u0301',
    '\u2028',
    '\u00A0',
    '\uFEFF',
    '\u0007',
    '\u001b[31m',
    'ÿ',
    'EOF',
    '<<EOF\ntouch CANARY\nEOF',
    '\nEOF\ntouch CANARY\n',
    '"$(touch CANARY)"',
    "'$(touch CANARY)'",
    '\\"; touch CANARY; "',
    "\\'; touch CANARY; '",
    '\\$(touch CANARY)',
    '${X:-$(touch CANARY)}',
    'a[$(touch CANARY)]',
    '\\',
    '$',
    '`',
  ];
}

/** A hostile value: 1–6 fragments, CANARY replaced by the canary's path (no NUL: argv cannot hold one). */
function hostileValue(rng: Rng): string {
  const parts = fragments();
  let value = '';
  for (let n = 1 + rng.int(6); n > 0; n--) value += rng.pick(parts);
  if (rng.next() < 0.05) value = '';
  return value.replaceAll('CANARY', canary);
}

/** A pipeline substituting the values numbered `all` (params p<id>, files <form>-<id>). */
function pipelineFor(all: readonly number[]): string {
  const params: Record<string, unknown> = { dir: { type: 'string' } };
  for (const i of all) params[`p${i}`] = { type: 'string' };
  const tasks: Record<string, unknown> = {};
  for (let start = 0, batch = 0; start < all.length; start += PER_TASK, batch++) {
    const ids = all.slice(start, start + PER_TASK);
    // The command string: each value in each place, one printf each.
    const p = (i: number) => `\${{ params.p${i} }}`;
    const out = (form: string, i: number) => `\${{ params.dir }}/${form}-${i}`;
    tasks[`string_${batch}`] = {
      handler: 'shell',
      with: {
        command: ids
          .flatMap((i) => [
            `printf '%s' ${p(i)} > ${out('s', i)}`,
            `printf '%s' "<${p(i)}>" > ${out('d', i)}`,
            `printf '%s' '<${p(i)}>' > ${out('q', i)}`,
            `: "$(printf '%s' ${p(i)} > ${out('c', i)})"`,
          ])
          .join('\n'),
      },
    };
    // (b) argv: the probe writes its N-th argument to DIR/<prefix>-<id>; no shell parses the values.
    const probe =
      'd="$1"; shift; for id in ' +
      ids.join(' ') +
      '; do printf \'%s\' "$1" > "$d/a-$id"; shift; printf \'%s\' "$1" > "$d/b-$id"; shift; done';
    tasks[`argv_${batch}`] = {
      handler: 'shell',
      with: {
        command: [
          '/bin/sh',
          '-c',
          probe,
          'probe',
          '${{ params.dir }}',
          ...ids.flatMap((i) => [`\${{ params.p${i} }}`, `=\${{ params.p${i} }}`]),
        ],
      },
    };
  }
  return JSON.stringify({ name: 'injection', params, concurrency: 8, tasks });
}

describe('shell: hostile parameter values', () => {
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'weft-inject-'));
    canary = join(dir, 'canary');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(
    `${count(300, 5000)} generated values reach the probe byte for byte: a word, in "…", in '…', in $( … ), in argv`,
    async () => {
      const rng = seededRng('shell-injection');
      const n = count(300, 5000);
      const values = Array.from({ length: n }, () => hostileValue(rng));
      // The fixed worst cases are always among them.
      values.splice(
        0,
        6,
        `'; touch ${canary}; '`,
        `$(touch ${canary})`,
        `\`touch ${canary}\``,
        `-n\n-e`,
        `"; touch ${canary}; "`,
        `\\"$(touch ${canary})\\`,
      );
      const started = performance.now();
      let taskCount = 0;
      for (let first = 0; first < n; first += PER_PIPELINE) {
        const ids = Array.from({ length: Math.min(PER_PIPELINE, n - first) }, (_, k) => first + k);
        const loaded = loadPipelineText('injection.yaml', pipelineFor(ids), {
          registry: createBuiltinRegistry(),
        });
        expect(loaded.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
        const store = createMemoryStore();
        const params: Record<string, string> = { dir };
        for (const i of ids) params[`p${i}`] = values[i]!;
        const run = await createRun(store, {
          plan: loaded.plan!,
          params,
          trigger: 'manual',
          now: Date.now(),
        });
        const done = await executeRun(run.id, {
          store,
          registry: createBuiltinRegistry(),
          owner: 'test:1',
          env: { PATH: process.env.PATH, HOME: process.env.HOME, VAR: 'expanded' },
        });
        const tasks = await store.getTaskRuns(run.id);
        expect(tasks.filter((t) => t.state !== 'succeeded').map((t) => [t.task, t.error?.message])).toEqual(
          [],
        );
        expect(done.state).toBe('succeeded');
        taskCount += tasks.length;
      }
      const ms = Math.round(performance.now() - started);
      const mismatches: string[] = [];
      values.forEach((value, i) => {
        const expected = Buffer.from(value, 'utf8');
        const bracketed = Buffer.concat([Buffer.from('<'), expected, Buffer.from('>')]);
        for (const [file, want] of [
          [`s-${i}`, expected],
          [`d-${i}`, bracketed],
          [`q-${i}`, bracketed],
          [`c-${i}`, expected],
          [`a-${i}`, expected],
          [`b-${i}`, Buffer.concat([Buffer.from('='), expected])],
        ] as const) {
          const path = join(dir, file);
          const got = existsSync(path) ? readFileSync(path) : null;
          if (!got || !got.equals(want))
            mismatches.push(
              `${file}: want ${JSON.stringify(want.toString())} got ${got === null ? 'nothing' : JSON.stringify(got.toString())}`,
            );
        }
      });
      console.log(`[reliability] shell-injection: ${n} values x 6 forms in ${taskCount} tasks, ${ms} ms`);
      expect(mismatches.slice(0, 5)).toEqual([]);
      expect(existsSync(canary)).toBe(false);
    },
    count(20_000, 300_000),
  );

  it('the reported reproductions: a value inside "…" or \'…\' stays text; in a here-document body it is refused', async () => {
    const text = (command: string) =>
      JSON.stringify({
        name: 'repro',
        params: { v: { type: 'string' }, dir: { type: 'string' } },
        tasks: { t: { handler: 'shell', with: { command } } },
      });
    const value = `$(touch ${canary})`;
    for (const [command, want] of [
      ['echo "x${{ params.v }}" > "${{ params.dir }}/r-double"', `x${value}\n`],
      ["echo 'x${{ params.v }}' > ${{ params.dir }}/r-single", `x${value}\n`],
    ] as const) {
      const loaded = loadPipelineText('repro.yaml', text(command), { registry: createBuiltinRegistry() });
      expect(loaded.diagnostics).toEqual([]);
      const store = createMemoryStore();
      const run = await createRun(store, {
        plan: loaded.plan!,
        params: { v: value, dir },
        trigger: 'manual',
        now: Date.now(),
      });
      const done = await executeRun(run.id, {
        store,
        registry: createBuiltinRegistry(),
        owner: 'test:1',
        env: { PATH: process.env.PATH },
      });
      expect(done.state).toBe('succeeded');
      const file = command.includes('r-double') ? 'r-double' : 'r-single';
      expect(readFileSync(join(dir, file), 'utf8')).toBe(want);
    }
    const heredoc =
      'name: repro\nparams:\n  v: { type: string }\ntasks:\n  t:\n    handler: shell\n    with:\n      command: |\n        cat <<EOF\n        x${{ params.v }}\n        EOF\n';
    const loaded = loadPipelineText('repro.yaml', heredoc, { registry: createBuiltinRegistry() });
    expect(loaded.plan).toBeNull();
    expect(loaded.diagnostics.map((d) => `${d.code} ${d.line}:${d.column}`)).toEqual([
      'EXPRESSION_SHELL_CONTEXT 10:10',
    ]);
    expect(existsSync(canary)).toBe(false);
  });

  it('a value holding a NUL byte fails its task for good, runs nothing', async () => {
    const text = JSON.stringify({
      name: 'nul',
      params: { v: { type: 'string' } },
      tasks: {
        str: { handler: 'shell', with: { command: 'printf %s ${{ params.v }}' } },
        argv: { handler: 'shell', with: { command: ['printf', '%s', '${{ params.v }}'] } },
      },
    });
    const loaded = loadPipelineText('nul.yaml', text, { registry: createBuiltinRegistry() });
    const store = createMemoryStore();
    const run = await createRun(store, {
      plan: loaded.plan!,
      params: { v: `a\u0000; touch ${canary}` },
      trigger: 'manual',
      now: Date.now(),
    });
    const done = await executeRun(run.id, {
      store,
      registry: createBuiltinRegistry(),
      owner: 'test:1',
      env: { PATH: process.env.PATH },
    });
    expect(done.state).toBe('failed');
    const tasks = await store.getTaskRuns(run.id);
    for (const t of tasks) {
      expect(t.state).toBe('failed');
      expect(t.attempts).toBe(1);
    }
    expect(existsSync(canary)).toBe(false);
  });
});
