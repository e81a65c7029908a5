import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempProject, weft, WEFT_BIN } from './helpers.js';

// A user's mistake gets a clear message and exit 1 or 2, never a stack trace.

const STACK = /\bat .+\.(js|ts|mjs):\d+/;

const project = tempProject({
  'pipelines/ok.yaml': 'name: ok\ntasks:\n  a: { handler: noop }\n',
  'pipelines/invalid.yaml':
    'name: invalid\ntasks:\n  a: { handler: noop, depends_on: zz }\n  b: { handler: nope }\n',
});
afterAll(() => project.cleanup());
const cwd = project.dir;

describe('user errors', () => {
  it('an unknown pipeline name', () => {
    const result = weft(['run', 'nosuch'], { cwd });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('error: pipeline not found: nosuch [PIPELINE_NOT_FOUND]');
    expect(result.stderr).toMatch(/^hint: /m);
    expect(result.stderr).not.toMatch(STACK);
    const plan = weft(['plan', 'nosuch'], { cwd });
    expect(plan.code).toBe(1);
    expect(plan.stderr).toContain('pipeline not found: nosuch');
  });

  it('an unknown run id, for every command that takes one', () => {
    const logs = weft(['logs', 'nope'], { cwd });
    expect(logs.code).toBe(1);
    expect(logs.stderr).toMatch(/^error: no run nope in .*weft\.db \[RUN_NOT_FOUND\]$/m);
    expect(logs.stderr).not.toMatch(STACK);
    for (const args of [
      ['runs', 'nope'],
      ['cancel', 'nope'],
      ['resume', 'nope'],
    ]) {
      const result = weft(args, { cwd });
      expect(result.code, args.join(' ')).toBe(1);
      expect(result.stderr).toContain('no run nope');
      expect(result.stderr).not.toMatch(STACK);
    }
    // Only reading: no store is created where there was none.
    expect(existsSync(join(cwd, '.weft'))).toBe(false);
    const list = weft(['runs'], { cwd });
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^no runs yet in .*weft\.db$/m);
    expect(weft(['runs', '--format', 'json'], { cwd }).stdout).toBe('[]\n');
    expect(existsSync(join(cwd, '.weft'))).toBe(false);
  });

  it('an invalid pipeline given to weft run: exit 1, its diagnostics, nothing recorded', () => {
    const result = weft(['run', 'invalid'], { cwd });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('pipelines/invalid.yaml:3:35');
    expect(result.stderr).toContain('[DEPENDENCY_UNKNOWN]');
    expect(result.stderr).toContain('[HANDLER_UNKNOWN]');
    expect(result.stderr).toContain('is not a valid pipeline; nothing was run [PIPELINE_INVALID]');
    expect(result.stderr).not.toMatch(STACK);
    expect(result.stdout).toBe('');
    expect(existsSync(join(cwd, '.weft'))).toBe(false);
  });

  it('bad flag values are usage errors (exit 2) naming the flag', () => {
    const cases: [string[], string][] = [
      [['run', 'ok', '--concurrency', '0'], '--concurrency'],
      [['runs', '--limit', 'x'], '--limit'],
      [['runs', '--state', 'sleepy'], '--state'],
      [['run', 'ok', '--format', 'xml'], 'xml'],
      [['run'], 'pipeline'],
      [['logs'], 'run-id'],
    ];
    for (const [args, named] of cases) {
      const result = weft(args, { cwd });
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toContain(named);
      expect(result.stderr).not.toMatch(STACK);
    }
  });

  it('a reader that closes the pipe early (`weft schema | head -c 10`) is not an error', () => {
    // A real pipe (not a socket pair) so that the writes after head exits fail with EPIPE.
    const result = spawnSync(
      'sh',
      [
        '-c',
        `{ NO_COLOR=1 '${process.execPath}' '${WEFT_BIN}' schema; echo "weft exit $?" >&2; } | head -c 10`,
      ],
      { cwd, encoding: 'utf8' },
    );
    expect(result.stdout).toBe('{\n  "$sche');
    expect(result.stderr).not.toContain('EPIPE');
    expect(result.stderr).toBe('weft exit 0\n');
  });

  it('a broken weft.config.ts is reported with its file, not a stack', () => {
    const broken = tempProject({
      'weft.config.ts': 'export default { handlers: [ { name: "half" } ] };\n',
      'pipelines/ok.yaml': 'name: ok\ntasks:\n  a: { handler: noop }\n',
    });
    try {
      const result = weft(['run', 'ok'], { cwd: broken.dir });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('weft.config.ts');
      expect(result.stderr).toContain('[CONFIG_INVALID]');
      expect(result.stderr).not.toMatch(STACK);
    } finally {
      broken.cleanup();
    }
  });
});
