import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Diagnostic } from '../../src/errors.js';
import { MAX_NESTING_DEPTH, MAX_PIPELINE_BYTES } from '../../src/pipeline/load.js';
import { createDefaultRegistry } from '../../src/project/default-handlers.js';
import { loadPipeline, loadPipelineText } from '../../src/project/load-pipeline.js';
import { tempProject, weft } from '../cli/helpers.js';
import { fastestOf } from '../support/fastest.js';
import { count, seededRng, type Rng } from './tier.js';

/**
 * Item 4: no input crashes the static chain. Generated mutations of every valid pipeline in the
 * repository go through loadPipelineText (YAML -> schema -> compile) with the default registry:
 * none may throw, every refusal is a coded diagnostic at a real position (line, column >= 1), and
 * the built-in prototypes keep every property descriptor they had. Mutations that guarantee a
 * refusal are also applied one at a time, each to every valid file, with its exact code.
 */

const ROOT = new URL('../..', import.meta.url).pathname;
const registry = createDefaultRegistry();

function corpus(): { name: string; text: string }[] {
  const files: { name: string; text: string }[] = [];
  for (const dir of ['pipelines', 'test/fixtures/valid']) {
    for (const entry of readdirSync(join(ROOT, dir))) {
      if (!entry.endsWith('.yaml') || entry.endsWith('.test.yaml')) continue;
      files.push({ name: `${dir}/${entry}`, text: readFileSync(join(ROOT, dir, entry), 'utf8') });
    }
  }
  return files;
}

function billionLaughs(levels = 10): string {
  const lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let i = 1; i < levels; i++) {
    lines.push(`a${i}: &a${i} [${Array.from({ length: 9 }, () => `*a${i - 1}`).join(',')}]`);
  }
  return lines.join('\n') + '\n';
}

const PROTO_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  '__defineGetter__',
  'hasOwnProperty',
  'toString',
  'valueOf',
];
const PUNCTUATION = [
  ':',
  '-',
  '[',
  ']',
  '{',
  '}',
  '"',
  "'",
  '&',
  '*',
  '|',
  '>',
  '%',
  '@',
  '`',
  '!',
  '#',
  ',',
  '?',
  '\t',
  '\n',
  '\\',
  '\u0000',
  '\uFEFF',
];
const SCALARS = [
  '~',
  '',
  '.nan',
  '-.inf',
  '1e999',
  '0x7fffffffffffffffff',
  '"\\uD800"',
  '!!binary aGVsbG8=',
  '!!timestamp 2001-12-14',
  '!foo bar',
  '!<tag:evil> x',
  '&x',
  '*nothing',
  '[',
  '{a: 1',
  'yes',
  '2d3h',
  '-1',
  "''",
  '|\n  x',
];

type Mutation = (text: string, rng: Rng) => string;

function lines(text: string): string[] {
  return text.split('\n');
}

/** The mutations; each returns text (invalid UTF-8 is decoded as the CLI decodes a file). */
const MUTATIONS: Record<string, Mutation> = {
  truncate: (text, rng) => text.slice(0, rng.int(text.length + 1)),
  indent: (text, rng) => {
    const all = lines(text);
    const i = rng.int(all.length);
    const shift = rng.int(7) - 3;
    all[i] = shift >= 0 ? ' '.repeat(shift) + all[i]! : all[i]!.replace(new RegExp(`^ {0,${-shift}}`), '');
    return all.join('\n');
  },
  tab: (text, rng) => {
    const all = lines(text);
    const i = rng.int(all.length);
    all[i] = all[i]!.replace(/^( *)/, (m) => (rng.next() < 0.5 ? '\t' + m : m.slice(0, -1) + '\t'));
    return all.join('\n');
  },
  duplicateLine: (text, rng) => {
    const all = lines(text);
    const i = rng.int(all.length);
    all.splice(i, 0, all[i]!);
    return all.join('\n');
  },
  swapLines: (text, rng) => {
    const all = lines(text);
    const i = rng.int(all.length);
    const j = rng.int(all.length);
    [all[i], all[j]] = [all[j]!, all[i]!];
    return all.join('\n');
  },
  protoKey: (text, rng) => {
    const all = lines(text);
    const i = rng.int(all.length);
    const indent = /^ */.exec(all[i]!)![0];
    const key = rng.pick(PROTO_KEYS);
    const value = rng.pick([
      '{ polluted: true }',
      '{ prototype: { polluted: 1 } }',
      'polluted',
      '[1]',
      '{}',
      '{ handler: noop }',
    ]);
    all.splice(i, 0, `${indent}${key}: ${value}`);
    return all.join('\n');
  },
  protoTask: (text) =>
    text.replace(
      /^tasks:\s*$/m,
      'tasks:\n  __proto__: { handler: noop }\n  constructor: { handler: noop, depends_on: __proto__ }',
    ),
  tag: (text, rng) => {
    const all = lines(text);
    // A `key: value` line that is not a comment and whose value is not an alias (a tag on an
    // alias is a syntax error, not a tag error); when there is none, any line, as before.
    const taggable = all.flatMap((line, i) => (/^\s*(- )?[\w"-]+: (?![*#])\S/.test(line) ? [i] : []));
    const i = taggable.length > 0 ? rng.pick(taggable) : rng.int(all.length);
    all[i] = all[i]!.replace(
      /: (\S)/,
      `: ${rng.pick(['!foo', '!!js/function', '!!python/object:os.system', '!<tag:x>', '!!set', '!!binary', '!!omap'])} $1`,
    );
    return all.join('\n');
  },
  aliasBomb: (text) => `${billionLaughs()}${text}`,
  aliasInTask: (text) =>
    text.replace(
      /^tasks:\s*$/m,
      `tasks:\n  bomb:\n    handler: noop\n    with: &w0 { a: 1 }\n  bomb2: { handler: noop, with: [*w0, *w0, *w0, *w0, *w0, *w0, *w0, *w0] }`,
    ),
  selfAlias: (text) => `${text}\nloop: &l [*l]\n`,
  deepFlow: (text, rng) => `${text}\nx: ${'['.repeat(1000 + rng.int(10_000))}`,
  deepBlock: (text, rng) => {
    const depth = 250 + rng.int(600);
    let out = text + '\ndeep:\n';
    for (let d = 1; d <= depth; d++) out += `${' '.repeat(d)}k:\n`;
    return out;
  },
  deepSeq: (text, rng) =>
    `${text}\nseq:\n${Array.from({ length: 300 + rng.int(400) }, (_, i) => `${'  '.repeat(i)}- `).join('\n')}x\n`,
  huge: (text, rng) => `${text}\n#${'x'.repeat(MAX_PIPELINE_BYTES + rng.int(1000))}\n`,
  bigButAllowed: (text, rng) => `${text}\ndescription: "${'y'.repeat(rng.int(MAX_PIPELINE_BYTES / 2))}"\n`,
  // Two new tasks that depend on each other, first in `tasks:` (every corpus file has a block
  // `tasks:`), so the cycle is certain whatever the existing tasks' dependencies are.
  cycle: (text) =>
    text.replace(
      /^tasks:[ \t]*$/m,
      'tasks:\n  cyc_a: { handler: noop, depends_on: [cyc_b] }\n  cyc_b: { handler: noop, depends_on: cyc_a }',
    ),
  selfDependency: (text) =>
    text.replace(/^ {2}([A-Za-z_][\w-]*):\s*$/m, (_m, name: string) => `  ${name}:\n    depends_on: ${name}`),
  punctuation: (text, rng) => {
    const at = rng.int(text.length + 1);
    return text.slice(0, at) + rng.pick(PUNCTUATION) + text.slice(at);
  },
  deleteChar: (text, rng) => {
    const at = rng.int(text.length);
    return text.slice(0, at) + text.slice(at + 1);
  },
  scalar: (text, rng) => {
    const all = lines(text);
    const i = rng.int(all.length);
    all[i] = all[i]!.replace(/: .*$/, `: ${rng.pick(SCALARS)}`);
    return all.join('\n');
  },
  documents: (text) => `${text}\n---\nname: second\n`,
  directive: (text) => `%YAML 1.1\n%TAG ! tag:evil.example,2000:\n---\n${text}`,
  flowCollapse: (text) => text.replace(/\n/g, ' '),
  crlf: (text) => text.replace(/\n/g, '\r\n'),
  bom: (text) => `\uFEFF${text}`,
  expression: (text, rng) => {
    const all = lines(text);
    const i = rng.int(all.length);
    all[i] = all[i]!.replace(
      /: .*$/,
      `: "${rng.pick(['${{', '${{ }}', '${{ tasks.x.output[ }}', '${{ params.__proto__ }}', '${{ env.constructor.prototype }}', '${{ ((((((((((1)))))))))) }}', '${{ ' + '!'.repeat(5000) + 'true }}', '${{ ' + '('.repeat(3000) + '1 }}'])}"`,
    );
    return all.join('\n');
  },
  manyTasks: (text, rng) =>
    text.replace(
      /^tasks:\s*$/m,
      `tasks:\n${Array.from({ length: 500 + rng.int(3000) }, (_, i) => `  t${i}: { handler: noop${i > 0 ? `, depends_on: t${rng.int(i)}` : ''} }`).join('\n')}`,
    ),
  schedule: (text, rng) =>
    `${text.replace(/^schedule:.*$/m, '')}\nschedule: { cron: "${rng.pick(['* * *', '61 * * * *', '0 0 31 2 *', '@reboot', '*/0 * * * *', '0 0 * * 8', '0 0 ? * *'])}", timezone: ${rng.pick(['Mars/Olympus', 'UTC', "''", 'Europe/Berlin'])} }\n`,
};

/**
 * Invalid UTF-8 is a byte-level mutation: it is applied last, written to a file and read through
 * readPipelineFile, as the CLI reads it (decoding it here first would hand the loader U+FFFD, which
 * is valid text). The garbage starts at a character boundary with a byte that can never start a
 * UTF-8 character, so the loader must refuse it exactly there; `at` is that place in the text.
 */
function invalidUtf8(text: string, rng: Rng): { bytes: Buffer; at: number } {
  const at = rng.int(text.length + 1);
  // Never between the halves of a surrogate pair: that is not a character boundary.
  const boundary = /[\uDC00-\uDFFF]/.test(text.charAt(at)) ? at - 1 : at;
  const neverLead = [...Array.from({ length: 0x40 }, (_, i) => 0x80 + i), 0xc0, 0xc1, 0xf5, 0xfe, 0xff];
  const garbage = Buffer.from([
    rng.pick(neverLead),
    ...Array.from({ length: 7 }, () => 0x80 + rng.int(0x80)),
  ]);
  const bytes = Buffer.concat([
    Buffer.from(text.slice(0, boundary), 'utf8'),
    garbage,
    Buffer.from(text.slice(boundary), 'utf8'),
  ]);
  return { bytes, at: boundary };
}

/** Where the loader must report the first bad byte of invalidUtf8's output (a BOM is no column). */
function encodingPosition(text: string, at: number): string {
  const before = text.slice(0, at).replace(/^\uFEFF/, '');
  const line = before.split('\n').length;
  return `${line}:${before.length - before.lastIndexOf('\n')}`;
}

const PROTOTYPES = { Object: Object.prototype, Array: Array.prototype, Function: Function.prototype };

/**
 * Every own property descriptor of the built-in prototypes. A polluting write replaces a value,
 * adds a getter or flips a flag without adding a name, so names alone would miss it.
 */
function prototypeSnapshot(): Map<string, PropertyDescriptor> {
  const snapshot = new Map<string, PropertyDescriptor>();
  for (const [name, proto] of Object.entries(PROTOTYPES)) {
    snapshot.set(`${name}: extensible`, { value: Object.isExtensible(proto) });
    snapshot.set(`${name}: [[Prototype]]`, { value: Object.getPrototypeOf(proto) as unknown });
    for (const key of Reflect.ownKeys(proto)) {
      snapshot.set(`${name}.${String(key)}`, Object.getOwnPropertyDescriptor(proto, key)!);
    }
  }
  return snapshot;
}

/** The differences between two snapshots, by identity of values, getters and setters. */
function prototypeChanges(before: Map<string, PropertyDescriptor>): string[] {
  const after = prototypeSnapshot();
  const changes: string[] = [];
  const fields = ['value', 'get', 'set', 'writable', 'enumerable', 'configurable'] as const;
  for (const [key, was] of before) {
    const now = after.get(key);
    if (!now) changes.push(`${key} removed`);
    else for (const f of fields) if (!Object.is(was[f], now[f])) changes.push(`${key}: ${f} changed`);
  }
  for (const key of after.keys()) if (!before.has(key)) changes.push(`${key} added`);
  return changes;
}

function checkDiagnostics(diagnostics: readonly Diagnostic[], label: string): void {
  for (const d of diagnostics) {
    if (!/^[A-Z][A-Z0-9_]*$/.test(d.code))
      throw new Error(`${label}: diagnostic without a code: ${JSON.stringify(d)}`);
    if (!(Number.isInteger(d.line) && d.line >= 1 && Number.isInteger(d.column) && d.column >= 1)) {
      throw new Error(`${label}: diagnostic ${d.code} at ${d.line}:${d.column}`);
    }
    if (typeof d.message !== 'string' || d.message === '')
      throw new Error(`${label}: ${d.code} has no message`);
  }
}

describe('malformed and hostile pipeline text', () => {
  const inputs = count(500, 10_000);
  let before: Map<string, PropertyDescriptor>;
  let scratch: string;
  beforeAll(() => {
    before = prototypeSnapshot();
    scratch = mkdtempSync(join(tmpdir(), 'weft-malformed-'));
  });
  afterAll(() => {
    rmSync(scratch, { recursive: true, force: true });
    // Nothing the fuzzing loaded may have reached a built-in prototype.
    expect(prototypeChanges(before)).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it(
    `${inputs} mutations of the valid pipelines: no throw, every problem coded and positioned`,
    async () => {
      const rng = seededRng('malformed-yaml');
      const files = corpus();
      expect(files.length).toBeGreaterThanOrEqual(5);
      const names = [...Object.keys(MUTATIONS), 'invalidUtf8'];
      const byCode = new Map<string, number>();
      let invalid = 0;
      let slowest = { ms: 0, label: '' };
      const started = performance.now();
      for (let i = 0; i < inputs; i++) {
        const file = rng.pick(files);
        // One to three mutations stacked; the byte-level one, if drawn, is applied last.
        const applied: string[] = [];
        let text = file.text;
        let garbage = false;
        for (let n = 1 + rng.int(3); n > 0; n--) {
          const name = rng.pick(names);
          applied.push(name);
          if (name === 'invalidUtf8') garbage = true;
          else text = MUTATIONS[name]!(text, rng);
        }
        const label = `#${i} ${file.name} [${applied.join(', ')}] (seed ${rng.seed})`;
        const t0 = performance.now();
        let loaded: ReturnType<typeof loadPipelineText>;
        let expected: string | null = null;
        try {
          if (garbage) {
            const { bytes, at } = invalidUtf8(text, rng);
            const path = join(scratch, `${i}.yaml`);
            writeFileSync(path, bytes);
            expected =
              bytes.length > MAX_PIPELINE_BYTES
                ? 'FILE_TOO_LARGE 1:1'
                : `YAML_ENCODING ${encodingPosition(text, at)}`;
            loaded = await loadPipeline(path, { registry });
          } else {
            // The one other refusal certain whatever came before: the last mutation made it too big.
            if (applied.at(-1) === 'huge') expected = 'FILE_TOO_LARGE 1:1';
            loaded = loadPipelineText(file.name, text, { registry });
          }
        } catch (error) {
          throw new Error(`${label}: the loader threw: ${(error as Error).stack ?? String(error)}`);
        }
        const ms = performance.now() - t0;
        if (ms > slowest.ms) slowest = { ms, label };
        checkDiagnostics(loaded.diagnostics, label);
        const errors = loaded.diagnostics.filter((d) => d.severity === 'error');
        if (expected !== null) {
          const found = errors.map((e) => `${e.code} ${e.line}:${e.column}`);
          if (found.length !== 1 || found[0] !== expected)
            throw new Error(`${label}: expected only ${expected}, got ${JSON.stringify(found)}`);
        }
        if (loaded.plan === null) {
          if (errors.length === 0) throw new Error(`${label}: no plan, yet no error diagnostic`);
          invalid += 1;
          for (const e of errors) byCode.set(e.code, (byCode.get(e.code) ?? 0) + 1);
        } else if (errors.length > 0) {
          throw new Error(`${label}: a plan despite errors`);
        }
        if (({} as Record<string, unknown>).polluted !== undefined)
          throw new Error(`${label}: Object.prototype polluted`);
      }
      const total = Math.round(performance.now() - started);
      console.log(
        `[reliability] malformed-yaml: ${inputs} inputs, ${invalid} invalid, ${total} ms (slowest ${Math.round(slowest.ms)} ms: ${slowest.label}); codes ${JSON.stringify(Object.fromEntries([...byCode].sort((a, b) => b[1] - a[1])))}`,
      );
      // What each mutation guarantees on its own is asserted below, one mutation at a time;
      // stacked, only the two refusals checked above are certain.
      expect(prototypeChanges(before)).toEqual([]);
    },
    count(60_000, 900_000),
  );

  describe('each mutation that must be refused, alone on every valid file, with its code', () => {
    const rounds = count(3, 40);
    /** `line:column` of the first character of the line after `prefix`. */
    const lineAfter = (prefix: string) => prefix.split('\n').length;
    const cases: {
      mutation: string;
      expect: (text: string, mutated: string) => { codes: string[]; line?: number; column?: number };
      maxMs?: number;
    }[] = [
      // 100 alias uses are reached in the third line of the bomb (9 + 81 + ...).
      { mutation: 'aliasBomb', expect: () => ({ codes: ['YAML_ALIAS_LIMIT'], line: 3 }), maxMs: 100 },
      { mutation: 'huge', expect: () => ({ codes: ['FILE_TOO_LARGE'], line: 1, column: 1 }) },
      {
        mutation: 'tag',
        expect: (text, mutated) => {
          // The one changed line holds the tag, and the diagnostic points at the tag itself.
          const before = text.split('\n');
          const i = mutated.split('\n').findIndex((l, n) => l !== before[n]);
          return { codes: ['YAML_TAG'], line: i + 1, column: mutated.split('\n')[i]!.indexOf('!') + 1 };
        },
      },
      { mutation: 'cycle', expect: () => ({ codes: ['DEPENDENCY_CYCLE'] }) },
      {
        mutation: 'documents',
        expect: (text) => ({ codes: ['YAML_SYNTAX'], line: lineAfter(`${text}\n`), column: 1 }),
      },
      {
        // The first `[` is at column 4 (`x: [`) and depth 2 (the document's mapping is depth 1).
        mutation: 'deepFlow',
        expect: (text) => ({
          codes: ['YAML_TOO_DEEP'],
          line: lineAfter(`${text}\n`),
          column: 3 + MAX_NESTING_DEPTH,
        }),
      },
    ];
    for (const c of cases) {
      it(`${c.mutation} is refused with its code${c.maxMs === undefined ? '' : ` in under ${c.maxMs} ms`}`, () => {
        const rng = seededRng(`malformed-yaml ${c.mutation}`);
        for (const file of corpus()) {
          for (let round = 0; round < rounds; round++) {
            const mutated = MUTATIONS[c.mutation]!(file.text, rng);
            const label = `${file.name} ${c.mutation} round ${round} (seed ${rng.seed})`;
            const { value: loaded, ms } =
              c.maxMs === undefined
                ? { value: loadPipelineText(file.name, mutated, { registry }), ms: 0 }
                : fastestOf(3, () => loadPipelineText(file.name, mutated, { registry }));
            const want = c.expect(file.text, mutated);
            const errors = loaded.diagnostics.filter((d) => d.severity === 'error');
            expect(loaded.plan, label).toBeNull();
            expect([...new Set(errors.map((e) => e.code))], label).toEqual(want.codes);
            if (want.line !== undefined) expect(errors[0]!.line, label).toBe(want.line);
            if (want.column !== undefined) expect(errors[0]!.column, label).toBe(want.column);
            if (c.maxMs !== undefined) expect(ms, label).toBeLessThan(c.maxMs);
          }
        }
      });
    }

    it('invalidUtf8 → YAML_ENCODING at the first bad byte, read from the file as the CLI reads it', async () => {
      const rng = seededRng('malformed-yaml invalidUtf8');
      for (const file of corpus()) {
        for (let round = 0; round < rounds * 5; round++) {
          const { bytes, at } = invalidUtf8(file.text, rng);
          const path = join(scratch, `utf8-${round}.yaml`);
          writeFileSync(path, bytes);
          const loaded = await loadPipeline(path, { registry });
          const label = `${file.name} at ${at} round ${round} (seed ${rng.seed})`;
          expect(loaded.plan, label).toBeNull();
          expect(
            loaded.diagnostics.map((d) => `${d.code} ${d.line}:${d.column}`),
            label,
          ).toEqual([`YAML_ENCODING ${encodingPosition(file.text, at)}`]);
        }
      }
    });
  });

  it('an alias bomb is refused in under 100 ms, with its code and position', () => {
    for (const levels of [4, 10, 30]) {
      const text = `${billionLaughs(levels)}name: bomb\ntasks: { a: { handler: noop, with: { x: *a${levels - 1} } } }\n`;
      const { value: loaded, ms } = fastestOf(3, () => loadPipelineText('bomb.yaml', text, { registry }));
      expect(ms).toBeLessThan(100);
      expect(loaded.plan).toBeNull();
      const codes = loaded.diagnostics.map((d) => d.code);
      expect(codes).toContain('YAML_ALIAS_LIMIT');
      const d = loaded.diagnostics.find((x) => x.code === 'YAML_ALIAS_LIMIT')!;
      expect(d.line).toBeGreaterThanOrEqual(2);
      expect(d.column).toBeGreaterThanOrEqual(1);
    }
  });

  it('10,000-deep nesting, flow and block, is refused at its position without a stack overflow', () => {
    for (const text of [
      `name: deep\ntasks:\n  a:\n    with: ${'['.repeat(10_000)}${']'.repeat(10_000)}\n`,
      `name: deep\ntasks:\n  a:\n    with: ${'{a: '.repeat(10_000)}1${'}'.repeat(10_000)}\n`,
      // Compact block sequences nest on one line: `- - - … x`.
      `name: deep\nx:\n  ${'- '.repeat(10_000)}x\n`,
      // Indented block maps: as deep as fits in 1 MiB.
      `name: deep\nx:\n${Array.from({ length: 1400 }, (_, i) => `${' '.repeat(i + 1)}k:`).join('\n')} 1\n`,
    ]) {
      const loaded = loadPipelineText('deep.yaml', text, { registry });
      expect(loaded.plan).toBeNull();
      expect(loaded.diagnostics.map((d) => d.code)).toEqual(['YAML_TOO_DEEP']);
      expect(loaded.diagnostics[0]!.line).toBeGreaterThanOrEqual(2);
    }
  });

  it('a file over 1 MiB is refused at 1:1 as FILE_TOO_LARGE', () => {
    const loaded = loadPipelineText('big.yaml', `name: big\n#${'x'.repeat(MAX_PIPELINE_BYTES)}\n`, {
      registry,
    });
    expect(loaded.diagnostics.map((d) => [d.code, d.line, d.column])).toEqual([['FILE_TOO_LARGE', 1, 1]]);
  });

  it('__proto__ and constructor keys stay plain keys and are refused as task names', () => {
    const text = [
      'name: proto',
      '__proto__: { polluted: true }',
      'params:',
      '  __proto__: { type: string, default: x }',
      'tasks:',
      '  __proto__: { handler: noop }',
      '  constructor: { handler: noop }',
      '  ok: { handler: noop, with: { __proto__: { polluted: 1 }, constructor: { prototype: { polluted: 1 } } } }',
      '',
    ].join('\n');
    const loaded = loadPipelineText('proto.yaml', text, { registry });
    expect(loaded.plan).toBeNull();
    const found = loaded.diagnostics.map((d) => `${d.code} ${d.line}:${d.column}`);
    expect(found).toContain('SCHEMA_UNKNOWN_KEY 2:1');
    expect(found).toContain('TASK_NAME_RESERVED 6:3');
    expect(found).toContain('TASK_NAME_RESERVED 7:3');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // The value kept __proto__ as an own key of a prototype-free object.
    const value = loaded.source.value as Record<string, unknown>;
    expect(Object.getPrototypeOf(value)).toBeNull();
    expect(Object.hasOwn(value, '__proto__')).toBe(true);
  });

  describe('through the real CLI', () => {
    let project: ReturnType<typeof tempProject>;
    beforeAll(() => {
      project = tempProject({});
      const dir = join(project.dir, 'pipelines');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'bomb.yaml'), `${billionLaughs()}name: bomb\ntasks: { a: {} }\n`);
      writeFileSync(join(dir, 'deep.yaml'), `name: deep\ntasks: { a: { with: ${'['.repeat(10_000)} } }\n`);
      writeFileSync(join(dir, 'tag.yaml'), 'name: tag\ntasks:\n  a: !!js/function "function () {}"\n');
      writeFileSync(
        join(dir, 'utf8.yaml'),
        Buffer.concat([
          Buffer.from('name: bad\ntasks:\n  a: { handler: "'),
          Buffer.from([0xff, 0xfe, 0xc3]),
          Buffer.from('" }\n'),
        ]),
      );
      writeFileSync(join(dir, 'big.yaml'), `name: big\n#${'x'.repeat(MAX_PIPELINE_BYTES + 10)}\n`);
      writeFileSync(
        join(dir, 'cycle.yaml'),
        'name: cycle\ntasks:\n  a: { handler: noop, depends_on: b }\n  b: { handler: noop, depends_on: a }\n',
      );
      writeFileSync(join(dir, 'proto.yaml'), 'name: proto\ntasks:\n  __proto__: { handler: noop }\n');
    });
    afterAll(() => project.cleanup());

    it('weft validate exits 1 with coded, positioned problems and no stack trace', () => {
      const result = weft(['validate', 'pipelines', '--format', 'json'], { cwd: project.dir });
      expect(result.code).toBe(1);
      expect(result.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);
      const report = JSON.parse(result.stdout) as {
        files: { file: string; errors: { code: string; line: number; column: number }[] }[];
      };
      const byFile = Object.fromEntries(
        report.files.map((f) => [f.file.replace(/^.*\//, ''), f.errors.map((e) => e.code)]),
      );
      expect(byFile['bomb.yaml']).toContain('YAML_ALIAS_LIMIT');
      expect(byFile['deep.yaml']).toContain('YAML_TOO_DEEP');
      expect(byFile['tag.yaml']).toContain('YAML_TAG');
      expect(byFile['big.yaml']).toContain('FILE_TOO_LARGE');
      expect(byFile['cycle.yaml']).toContain('DEPENDENCY_CYCLE');
      expect(byFile['proto.yaml']).toContain('TASK_NAME_RESERVED');
      expect(byFile['utf8.yaml']).toEqual(['YAML_ENCODING']);
      for (const f of report.files) for (const e of f.errors) expect(e.line >= 1 && e.column >= 1).toBe(true);
    });

    it('text output for a single hostile file: exit 1, file:line:column, no stack', () => {
      const result = weft(['validate', 'pipelines/deep.yaml'], { cwd: project.dir });
      expect(result.code).toBe(1);
      expect(`${result.stdout}${result.stderr}`).toMatch(/deep\.yaml:2:\d+/);
      expect(`${result.stdout}${result.stderr}`).not.toMatch(/\n\s+at .+:\d+:\d+/);
    });
  });
});
