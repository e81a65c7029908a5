import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { JsonObject, JsonValue } from '../../src/core/json.js';
import { createMasker, MIN_SECRET_LENGTH, secretForms } from '../../src/engine/mask.js';
import { ENTRIES_TAG, SECRET_TEXT_TAG, sealParams, unsealParams } from '../../src/engine/secret-params.js';
import { createRun } from '../../src/engine/create-run.js';
import { executeRun } from '../../src/engine/execute-run.js';
import { prepareResume } from '../../src/engine/resume.js';
import { WeftError } from '../../src/errors.js';
import { HandlerRegistry } from '../../src/handlers/registry.js';
import { createMemoryStore } from '../../src/store/memory/memory-store.js';
import { plan, task } from '../support/plan-builder.js';
import { count, seededRng } from '../reliability/tier.js';

/** Sealing params (secret-params.ts): what is stored holds no form of a secret, and unseals to what was given. */

const NAMES = ['API_TOKEN', 'DB_PASSWORD'];

/** Every form the masker knows of each secret that appears in `text`. */
function formsIn(text: string, secrets: readonly string[]): string[] {
  return secrets.flatMap((s) => secretForms(s).filter((form) => text.includes(form)));
}

/** JSON values built from pieces of the secrets, their encodings, tag-like keys and plain text. */
function paramsArbitrary(secrets: readonly string[]): fc.Arbitrary<JsonObject> {
  const pieces = [
    ...secrets,
    ...secrets.flatMap((s) => [
      Buffer.from(s).toString('base64'),
      Buffer.from(`user:${s}`).toString('base64'),
      encodeURIComponent(s),
      JSON.stringify(s).slice(1, -1),
    ]),
    '$weft:secret-text',
    '$weft:entries',
    '${{ secrets.API_TOKEN }}',
    'Bearer ',
    '',
  ];
  const text = fc
    .array(fc.oneof(fc.constantFrom(...pieces), fc.string({ maxLength: 6 })), { maxLength: 4 })
    .map((parts) => parts.join(''));
  const { value } = fc.letrec<{ value: JsonValue }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      text,
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.array(tie('value'), { maxLength: 3 }),
      fc.dictionary(text, tie('value'), { maxKeys: 3 }),
    ),
  }));
  return fc.dictionary(fc.constantFrom('token', 'header', 'body', 'list', 'n'), value, { maxKeys: 4 });
}

describe('sealParams / unsealParams', () => {
  it(
    'stores no form of a secret in any text it keeps, and unseals to exactly what was given',
    () => {
      // Replayable like the reliability tests: WEFT_SEED=<printed seed>.
      const { seed } = seededRng('secret-params');
      const secret = fc.string({ unit: 'grapheme', minLength: MIN_SECRET_LENGTH, maxLength: 24 });
      fc.assert(
        fc.property(
          fc.tuple(secret, secret).chain(([a, b]) => fc.tuple(fc.constant([a, b]), paramsArbitrary([a, b]))),
          ([secrets, params]) => {
            const env = { API_TOKEN: secrets[0], DB_PASSWORD: secrets[1] };
            const sealed = sealParams(params, NAMES, env);
            // The user's text, wherever it is kept; the tags' own spelling is fixed and names only
            // the variable (a secret that happens to read "TOKEN" is not found in it by accident).
            for (const text of userTexts(sealed)) expect(formsIn(text, secrets), text).toEqual([]);
            const stored = JSON.parse(JSON.stringify(sealed)) as JsonObject;
            expect(unsealParams(stored, NAMES, env)).toEqual(params);
          },
        ),
        { numRuns: count(200, 5000), seed },
      );
    },
    count(20_000, 180_000),
  );

  it('leaves params without secrets exactly as given', () => {
    const params = { a: 'plain', b: { c: [1, 'two', null] }, d: true };
    expect(sealParams(params, NAMES, { API_TOKEN: 'tok-123456' })).toEqual(params);
    expect(sealParams(params, NAMES, {})).toEqual(params);
  });

  it('seals a secret as is and encoded, and the result is readable', () => {
    const env = { API_TOKEN: 'tok/en+secret', DB_PASSWORD: 'pw"word' };
    const sealed = sealParams(
      {
        header: `Bearer ${env.API_TOKEN}`,
        basic: `Basic ${Buffer.from(env.API_TOKEN).toString('base64')}`,
        nested: {
          list: [`x=${encodeURIComponent(env.API_TOKEN)}`],
          json: JSON.stringify({ p: env.DB_PASSWORD }),
        },
      },
      NAMES,
      env,
    );
    expect(sealed).toEqual({
      header: { [SECRET_TEXT_TAG]: ['Bearer ', { secret: 'API_TOKEN' }] },
      basic: { [SECRET_TEXT_TAG]: ['Basic ', { secret: 'API_TOKEN', form: 'base64' }] },
      nested: {
        list: [{ [SECRET_TEXT_TAG]: ['x=', { secret: 'API_TOKEN', form: 'url' }] }],
        json: { [SECRET_TEXT_TAG]: ['{"p":"', { secret: 'DB_PASSWORD', form: 'json' }, '"}'] },
      },
    });
    expect(JSON.stringify(sealed)).not.toContain('tok/en');
  });

  it('escapes user objects that look like tags, and keys that hold a secret', () => {
    const env = { API_TOKEN: 'abc-secret' };
    const params = {
      fake: { [SECRET_TEXT_TAG]: ['not', { secret: 'HOME' }] },
      keyed: { 'abc-secret': 1, other: 2 },
    };
    const sealed = sealParams(params, NAMES, env);
    expect(sealed.fake).toEqual({ [ENTRIES_TAG]: [[SECRET_TEXT_TAG, ['not', { secret: 'HOME' }]]] });
    expect(JSON.stringify(sealed)).not.toContain('abc-secret');
    expect(unsealParams(sealed, NAMES, env)).toEqual(params);
  });

  it('ignores values shorter than the masking minimum, as the masker does', () => {
    const short = 'x'.repeat(MIN_SECRET_LENGTH - 1);
    const long = 'y'.repeat(MIN_SECRET_LENGTH);
    expect(sealParams({ a: `${short}!` }, NAMES, { API_TOKEN: short })).toEqual({ a: `${short}!` });
    expect(createMasker([short])(`${short}!`)).toBe(`${short}!`);
    expect(sealParams({ a: `${long}!` }, NAMES, { API_TOKEN: long })).toEqual({
      a: { [SECRET_TEXT_TAG]: [{ secret: 'API_TOKEN' }, '!'] },
    });
    expect(createMasker([long])(`${long}!`)).toBe('***!');
  });

  it('fails with SECRET_MISSING naming the variable and the param, and refuses undeclared names', () => {
    const sealed = sealParams({ auth: { header: 'Bearer tok-123456' } }, NAMES, { API_TOKEN: 'tok-123456' });
    const missing = catchError(() => unsealParams(sealed, NAMES, {}));
    expect(missing).toMatchObject({ code: 'SECRET_MISSING', retryable: false });
    expect(missing.message).toContain('API_TOKEN');
    expect(missing.message).toContain('auth.header');
    const undeclared = catchError(() => unsealParams(sealed, ['DB_PASSWORD'], { API_TOKEN: 'tok-123456' }));
    expect(undeclared).toMatchObject({ code: 'SECRET_MISSING' });
    expect(undeclared.message).toContain('does not declare');
    // Expanded from the environment it runs in: a rotated secret gives the new value.
    expect(unsealParams(sealed, NAMES, { API_TOKEN: 'rotated-99' })).toEqual({
      auth: { header: 'Bearer rotated-99' },
    });
  });
});

/** The strings of a sealed value that come from the user: literal parts, plain strings and keys. */
function userTexts(value: JsonValue): string[] {
  if (typeof value === 'string') return [value];
  if (value === null || typeof value !== 'object') return [];
  if (Array.isArray(value)) return value.flatMap(userTexts);
  const keys = Object.keys(value);
  if (keys.length === 1 && keys[0] === SECRET_TEXT_TAG) {
    return (value[SECRET_TEXT_TAG] as JsonValue[]).filter((p): p is string => typeof p === 'string');
  }
  if (keys.length === 1 && keys[0] === ENTRIES_TAG) {
    return (value[ENTRIES_TAG] as [JsonValue, JsonValue][]).flatMap(([k, v]) => [
      ...userTexts(k),
      ...userTexts(v),
    ]);
  }
  return [...keys, ...Object.values(value).flatMap(userTexts)];
}

describe('executeRun where a sealed secret is not set', () => {
  it('fails the run with SECRET_MISSING before any task runs; a resume where it is set runs them', async () => {
    const seen: unknown[] = [];
    const registry = new HandlerRegistry([
      { name: 'see', run: (_args, ctx) => void seen.push(ctx.params.header) },
    ]);
    const p = plan({
      secrets: ['API_TOKEN'],
      params: { header: { type: 'string' } },
      tasks: [task('a', { handler: 'see' })],
    });
    const store = createMemoryStore();
    const env = { API_TOKEN: 'tok-123456' };
    const created = await createRun(store, {
      plan: p,
      params: { header: 'Bearer tok-123456' },
      trigger: 'manual',
      now: Date.now(),
      env,
    });
    const failed = await executeRun(created.id, { store, registry, owner: 'test:1', env: {} });
    expect(failed).toMatchObject({ state: 'failed', error: { code: 'SECRET_MISSING' } });
    expect(failed.error!.message).toContain('API_TOKEN');
    expect(seen).toEqual([]);
    expect((await store.getTaskRuns(created.id)).map((t) => t.state)).toEqual(['pending']);

    await prepareResume(store, created.id, { now: Date.now(), env });
    const done = await executeRun(created.id, { store, registry, owner: 'test:1', env });
    expect(done.state).toBe('succeeded');
    expect(seen).toEqual(['Bearer tok-123456']);
    await store.close();
  });
});

function catchError(fn: () => unknown): WeftError {
  try {
    fn();
  } catch (error) {
    if (error instanceof WeftError) return error;
    throw error;
  }
  throw new Error('expected an error');
}
