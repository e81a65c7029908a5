import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { JsonValue } from '../../src/core/json.js';
import { createRun } from '../../src/engine/create-run.js';
import { createMasker, maskValue } from '../../src/engine/mask.js';
import { quoteShellWord } from '../../src/handlers/shell-quote.js';
import { decodeUtf8 } from '../../src/pipeline/decode-utf8.js';
import { resolveTemplate } from '../../src/pipeline/expressions.js';
import {
  MAX_ALIAS_COUNT,
  MAX_NESTING_DEPTH,
  MAX_PIPELINE_BYTES,
  parsePipelineText,
  readPipelineFile,
} from '../../src/pipeline/load.js';
import { resolveParams } from '../../src/pipeline/params.js';
import { loadPipelineSchema } from '../../src/pipeline/schema.js';
import { createPipelineValidator } from '../../src/pipeline/validate-schema.js';
import { createBuiltinRegistry } from '../../src/handlers/builtins.js';
import { loadPipelineText } from '../../src/project/load-pipeline.js';
import { createMemoryStore } from '../../src/store/memory/memory-store.js';

/** The hardening list, one test per point: what the parser, the validator and the dicts refuse. */

const codes = (text: string) =>
  parsePipelineText('p.yaml', text).diagnostics.map((d) => `${d.code} ${d.line}:${d.column}`);

describe('YAML parser configured for safety', () => {
  it('size cap: over 1 MiB is refused, as text and as a file (by its size, before reading it)', async () => {
    expect(MAX_PIPELINE_BYTES).toBe(1024 * 1024);
    const just = `name: x\n#${'a'.repeat(MAX_PIPELINE_BYTES - 10)}\n`;
    expect(Buffer.byteLength(just)).toBeLessThanOrEqual(MAX_PIPELINE_BYTES);
    expect(codes(just)).toEqual([]);
    // Multi-byte characters count as bytes, not as characters.
    expect(codes(`name: x\n#${'é'.repeat(MAX_PIPELINE_BYTES / 2 + 1)}\n`)).toEqual(['FILE_TOO_LARGE 1:1']);
    const dir = mkdtempSync(join(tmpdir(), 'weft-hard-'));
    try {
      const file = join(dir, 'big.yaml');
      writeFileSync(file, Buffer.alloc(MAX_PIPELINE_BYTES + 1, 0x23));
      const read = await readPipelineFile(file);
      expect(read.diagnostics.map((d) => [d.code, d.line, d.column])).toEqual([['FILE_TOO_LARGE', 1, 1]]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it(`alias limit: ${MAX_ALIAS_COUNT} alias uses pass, one more is YAML_ALIAS_LIMIT at the alias`, () => {
    const uses = (n: number) =>
      `name: x\nbase: &b [1]\nlist:\n${Array.from({ length: n }, () => '  - *b').join('\n')}\n`;
    expect(codes(uses(MAX_ALIAS_COUNT))).toEqual([]);
    expect(codes(uses(MAX_ALIAS_COUNT + 1))).toEqual([`YAML_ALIAS_LIMIT ${MAX_ALIAS_COUNT + 4}:5`]);
    // A self-referencing alias is refused, not expanded forever.
    expect(codes('a: &a [*a]\n').map((c) => c.split(' ')[0])).toEqual(['YAML_ALIAS_LIMIT']);
  });

  it('no custom tags: language tags and unknown tags are refused; core tags keep plain values', () => {
    for (const [tag, column] of [
      ['!!js/function', 4],
      ['!foo', 4],
      ['!!binary', 4],
      ['!!set', 4],
      ['!!timestamp', 4],
      ['!<tag:yaml.org,2002:python/object>', 4],
      ['!!omap', 4],
    ] as const) {
      const found = codes(`a: ${tag} x\n`);
      expect(found, tag).toEqual([`YAML_TAG 1:${column}`]);
    }
    const { source } = parsePipelineText('p.yaml', 'a: !!str 1\nb: !!int "2"\nc: 2001-12-14\n');
    expect(source.value).toEqual({ a: '1', b: 2, c: '2001-12-14' });
  });

  it(`depth: ${MAX_NESTING_DEPTH} levels pass, one more is YAML_TOO_DEEP, with or without aliases`, () => {
    const nested = (n: number) => `a: ${'['.repeat(n - 1)}${']'.repeat(n - 1)}\n`;
    expect(codes(nested(MAX_NESTING_DEPTH))).toEqual([]);
    expect(codes(nested(MAX_NESTING_DEPTH + 1)).map((c) => c.split(' ')[0])).toEqual(['YAML_TOO_DEEP']);
    // Aliases may not stack depth past the limit either.
    const half = Math.ceil(MAX_NESTING_DEPTH / 2) + 2;
    const stacked = `a: &a ${'['.repeat(half)}${']'.repeat(half)}\nb: ${'['.repeat(half)}*a${']'.repeat(half)}\n`;
    expect(codes(stacked).map((c) => c.split(' ')[0])).toEqual(['YAML_TOO_DEEP']);
  });

  it('one document per file, and no directives that change tags', () => {
    expect(codes('name: a\n---\nname: b\n').map((c) => c.split(' ')[0])).toEqual(['YAML_SYNTAX']);
    expect(codes('%TAG ! tag:evil.example,2000:\n---\na: !x 1\n').map((c) => c.split(' ')[0])).toContain(
      'YAML_TAG',
    );
  });
});

describe('ajv strict, without $data', () => {
  it('an unknown keyword in a schema is a compile error (strict)', () => {
    expect(() =>
      createPipelineValidator({ type: 'object', properties: { a: { type: 'string', frobnicate: true } } }),
    ).toThrow(/strict mode: unknown keyword: "frobnicate"/);
  });

  it('$data references are not enabled: a schema using one is refused, data cannot steer validation', () => {
    expect(() =>
      createPipelineValidator({
        type: 'object',
        properties: { a: { type: 'number', minimum: { $data: '1/b' } } },
      }),
    ).toThrow();
    // The real schema compiles in strict mode and uses no $data.
    const schema = JSON.stringify(loadPipelineSchema());
    expect(schema).not.toContain('"$data"');
    expect(() => createPipelineValidator(loadPipelineSchema())).not.toThrow();
  });
});

describe('every ajv instance is strict', () => {
  it('a handler whose args schema misspells a keyword is reported by validate, not ignored', () => {
    const registry = createBuiltinRegistry().register({
      name: 'typo',
      args: { type: 'object', properties: { n: { type: 'integer', minimun: 1 } } },
      run: () => null,
    });
    const loaded = loadPipelineText(
      'p.yaml',
      'name: p\ntasks:\n  a:\n    handler: typo\n    with: { n: 0 }\n',
      {
        registry,
      },
    );
    expect(loaded.plan).toBeNull();
    const diagnostic = loaded.diagnostics.find((d) => d.code === 'HANDLER_ARGS');
    expect(diagnostic?.message).toMatch(/invalid args schema: strict mode: unknown keyword: "minimun"/);
    expect([diagnostic?.line, diagnostic?.column]).toEqual([4, 14]); // at the handler's name
  });

  it('no source file builds ajv with strict off or $data on', () => {
    const root = fileURLToPath(new URL('../../src/', import.meta.url));
    const files = readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    const builders = files.filter((f) => /new Ajv(2020)?\(/.test(readFileSync(join(root, f), 'utf8')));
    expect(builders.length).toBeGreaterThanOrEqual(4);
    for (const file of builders) {
      const text = readFileSync(join(root, file), 'utf8');
      expect(text, file).not.toMatch(/strict:\s*false|\$data:\s*true/);
      expect(text, file).toMatch(/STRICT_AJV_OPTIONS|strict: true/);
    }
  });
});

describe('objects keyed by user input have no prototype', () => {
  it('the loader: every mapping, and a __proto__ key is an own key', () => {
    const { source } = parsePipelineText(
      'p.yaml',
      'name: x\ntasks:\n  __proto__: { polluted: true }\n  a: { with: { constructor: 1 } }\n',
    );
    const value = source.value as { tasks: Record<string, { with?: object }> };
    expect(Object.getPrototypeOf(value)).toBeNull();
    expect(Object.getPrototypeOf(value.tasks)).toBeNull();
    expect(Object.getPrototypeOf(value.tasks.a!.with!)).toBeNull();
    expect(Object.keys(value.tasks)).toEqual(['__proto__', 'a']);
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
  });

  it('the plan, params and run params', async () => {
    const loaded = loadPipelineText(
      'p.yaml',
      'name: x\nparams:\n  toString: { type: string, default: a }\ntasks:\n  valueOf: { handler: noop }\n  hasOwnProperty: { handler: noop, depends_on: valueOf }\n',
      { registry: createBuiltinRegistry() },
    );
    expect(loaded.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const plan = loaded.plan!;
    expect(Object.getPrototypeOf(plan.tasks)).toBeNull();
    expect(Object.keys(plan.tasks).sort()).toEqual(['hasOwnProperty', 'valueOf']);
    const { params, errors } = resolveParams(plan.params, { toString: 'b' }, 'json');
    expect(errors).toEqual([]);
    expect(Object.getPrototypeOf(params)).toBeNull();
    const store = createMemoryStore();
    const run = await createRun(store, { plan, params, trigger: 'manual', now: Date.now() });
    expect((await store.getRun(run.id))!.params).toEqual({ toString: 'b' });
  });

  it('expression results and masked values keep __proto__ as data', () => {
    const scope = {
      params: { v: 'x' },
      env: {},
      tasks: {},
      run: { id: 'r', scheduled_for: null, attempt: 1 },
    };
    const resolved = resolveTemplate(
      JSON.parse('{"__proto__": {"polluted": "${{ params.v }}"}}') as JsonValue,
      scope,
      { quoteKeys: ['command'], quote: quoteShellWord },
    ) as Record<string, unknown>;
    expect(Object.hasOwn(resolved, '__proto__')).toBe(true);
    const masked = maskValue(
      JSON.parse('{"__proto__": {"polluted": "abc-secret"}}'),
      createMasker(['abc-secret']),
    ) as Record<string, unknown>;
    expect(Object.hasOwn(masked, '__proto__')).toBe(true);
    expect(masked.__proto__).toEqual({ polluted: '***' });
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
  });
});

describe('errors, not warnings: bad bytes and directives the loader cannot honour', () => {
  /** Writes raw bytes to a file and reads it as the CLI does; returns "CODE line:column" per problem. */
  const fileCodes = async (...parts: (string | number[])[]): Promise<string[]> => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-utf8-'));
    try {
      const file = join(dir, 'p.yaml');
      writeFileSync(
        file,
        Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p)))),
      );
      const read = await readPipelineFile(file);
      return read.diagnostics.map((d) => `${d.code} ${d.severity} ${d.line}:${d.column}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('invalid UTF-8 in a file is YAML_ENCODING at the first bad byte, never U+FFFD in the value', async () => {
    // In a quoted description: `description: "ab` is 16 characters, the bad byte is column 17.
    expect(await fileCodes('name: x\ndescription: "ab', [0xff, 0xfe], '"\n')).toEqual([
      'YAML_ENCODING error 2:17',
    ]);
    // In a comment, after a valid two-byte character: columns count characters, not bytes.
    expect(await fileCodes('name: x\n# \u00e9 ', [0xc3], '\ntasks: {}\n')).toEqual([
      'YAML_ENCODING error 2:5',
    ]);
    // A lead byte cut off by the end of the file.
    expect(await fileCodes('name: x\n', [0xe2, 0x82])).toEqual(['YAML_ENCODING error 2:1']);
    // Well-formed-looking but forbidden: an overlong `/`, a UTF-16 surrogate, a code point > U+10FFFF.
    expect(await fileCodes('a: ', [0xc0, 0xaf], '\n')).toEqual(['YAML_ENCODING error 1:4']);
    expect(await fileCodes('a: b', [0xed, 0xa0, 0x80], '\n')).toEqual(['YAML_ENCODING error 1:5']);
    expect(await fileCodes('a: b', [0xf4, 0x90, 0x80, 0x80], '\n')).toEqual(['YAML_ENCODING error 1:5']);
    // The first of several bad bytes is the one reported.
    expect(await fileCodes('a: 1\nb: ', [0x80], '\nc: ', [0xff], '\n')).toEqual(['YAML_ENCODING error 2:4']);
  });

  it('a BOM is accepted (and not counted as a column); valid multi-byte text is untouched', async () => {
    expect(await fileCodes([0xef, 0xbb, 0xbf], 'name: x\n')).toEqual([]);
    expect(await fileCodes([0xef, 0xbb, 0xbf], 'a: ', [0xff], '\n')).toEqual(['YAML_ENCODING error 1:4']);
    const dir = mkdtempSync(join(tmpdir(), 'weft-utf8-'));
    try {
      const file = join(dir, 'p.yaml');
      writeFileSync(file, Buffer.from('\uFEFFname: "caf\u00e9 \u{1F600} \uFFFD"\n'));
      const read = await readPipelineFile(file);
      expect(read.diagnostics).toEqual([]);
      // A U+FFFD the user really wrote (EF BF BD) is valid text and kept.
      expect(read.source.value).toEqual({ name: 'caf\u00e9 \u{1F600} \uFFFD' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the position agrees with a WHATWG decoder: valid iff it decodes, and U+FFFD starts exactly there', () => {
    const lenient = new TextDecoder('utf-8');
    const strict = new TextDecoder('utf-8', { fatal: true });
    // Bytes biased towards the interesting ranges: ASCII, newlines, continuation and lead bytes.
    const byte = fc.oneof(
      fc.integer({ min: 0, max: 0xff }),
      fc.constantFrom(0x0a, 0x41, 0x80, 0xbf, 0xc3, 0xe0, 0xed, 0xf0, 0xf4),
    );
    fc.assert(
      fc.property(fc.array(byte, { maxLength: 40 }), (array) => {
        const bytes = Uint8Array.from(array);
        let decodes = true;
        try {
          strict.decode(bytes);
        } catch {
          decodes = false;
        }
        const result = decodeUtf8(bytes);
        expect(result.ok).toBe(decodes);
        if (result.ok) return;
        const before = lenient.decode(bytes.subarray(0, result.offset));
        expect(before).not.toContain('\uFFFD');
        expect(lenient.decode(bytes).startsWith(before + '\uFFFD')).toBe(true);
        expect(result.line).toBe(before.split('\n').length);
      }),
      { numRuns: 2000 },
    );
  });

  it('yaml warnings are errors: an unknown directive, %YAML 1.1 and an unknown version refuse the file', () => {
    const all = (text: string) =>
      parsePipelineText('p.yaml', text).diagnostics.map(
        (d) => `${d.code} ${d.severity} ${d.line}:${d.column}`,
      );
    const body = '---\nname: x\ntasks: { a: { handler: noop } }\n';
    expect(all(`%FOO bar\n${body}`)).toEqual(['YAML_SYNTAX error 1:1']);
    // yaml accepts 1.1 silently; weft would still read it with 1.2 meanings (`yes` a string).
    expect(all(`%YAML 1.1\n${body}`)).toEqual(['YAML_SYNTAX error 1:7']);
    expect(all(`%YAML 1.3\n${body}`)).toEqual(['YAML_SYNTAX error 1:7']);
    expect(all(`%YAML 1.2\n${body}`)).toEqual([]);
    // A refused file has no value, so no later stage runs on it.
    expect(parsePipelineText('p.yaml', `%YAML 1.1\n${body}`).source.value).toBeUndefined();
    // And the whole static chain says invalid, as `weft validate` does.
    const loaded = loadPipelineText('p.yaml', `%FOO bar\n${body}`, { registry: createBuiltinRegistry() });
    expect(loaded.plan).toBeNull();
    expect(loaded.diagnostics.map((d) => d.severity)).toEqual(['error']);
  });
});
