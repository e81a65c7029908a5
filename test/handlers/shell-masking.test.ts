import { describe, expect, it } from 'vitest';
import { createRun } from '../../src/engine/create-run.js';
import { executeRun } from '../../src/engine/execute-run.js';
import { createBuiltinRegistry } from '../../src/handlers/builtins.js';
import { loadPipelineText } from '../../src/project/load-pipeline.js';
import { createMemoryStore } from '../../src/store/memory/memory-store.js';

/**
 * The shell handler cuts text in three places: each stderr line quoted in the error (500
 * characters), the captured stdout (stdout_limit bytes) and an over-long line logged in pieces
 * (64 KiB). A secret lying across a cut must be masked whole: once cut, the engine's own
 * masking no longer recognises it, and its first characters would be stored.
 */

const SECRET = 'S3CRET-token-0123456789abcdef';
/** Long enough to be recognised by no other rule: the first 12 characters of the secret. */
const PREFIX = SECRET.slice(0, 12);

async function runCommand(command: string, extra: Record<string, unknown> = {}) {
  const text = JSON.stringify({
    name: 'mask',
    secrets: ['TOKEN'],
    tasks: { t: { handler: 'shell', with: { command, ...extra } } },
  });
  const loaded = loadPipelineText('mask.yaml', text, { registry: createBuiltinRegistry() });
  expect(loaded.diagnostics).toEqual([]);
  const store = createMemoryStore();
  const run = await createRun(store, { plan: loaded.plan!, params: {}, trigger: 'manual', now: Date.now() });
  await executeRun(run.id, {
    store,
    registry: createBuiltinRegistry(),
    owner: 'test:1',
    env: { PATH: process.env.PATH, TOKEN: SECRET },
  });
  const [task] = await store.getTaskRuns(run.id);
  const attempts = await store.getAttempts(run.id, 't');
  const logs = await store.getLogs(run.id);
  return { task: task!, attempts, logs };
}

describe('shell: a secret across a cut is masked whole', () => {
  it.each([490, 495, 499])(
    'in the stderr tail of the error: the secret starting at character %i of a line (the cut is at 500)',
    async (start) => {
      const { task, attempts } = await runCommand(`printf '%${start}s%s tail\\n' '' "$TOKEN" >&2; exit 1`);
      expect(task.state).toBe('failed');
      const message = attempts[0]!.error!.message;
      expect(message).not.toContain(PREFIX);
      // Masked, then cut: what is left of the secret is (part of) its mask.
      expect(message).toContain(`${' '.repeat(start)}*`);
      expect(task.error!.message).not.toContain(PREFIX);
    },
  );

  it('in a stderr line far longer than the cut: still cut, still masked', async () => {
    const { attempts } = await runCommand(`printf '%497s%s%2000s\\n' '' "$TOKEN" '' >&2; exit 1`);
    const line = attempts[0]!.error!.message.split('\n')[1]!;
    expect(line).toBe(`${' '.repeat(497)}***…`);
  });

  it('in the captured stdout: the secret across byte stdout_limit', async () => {
    const { task } = await runCommand(`printf '%95s%s and more\\n' '' "$TOKEN"`, { stdout_limit: 100 });
    expect(task.state).toBe('succeeded');
    const stdout = (task.output as { stdout: string }).stdout;
    expect(stdout).not.toContain(PREFIX);
    expect(stdout).toBe(
      `${' '.repeat(95)}*** a\n[weft: stdout truncated to 100 bytes, ${95 + SECRET.length + 10 - 100} more bytes not kept]`,
    );
  });

  it('in the log: an over-long line logged in pieces, with the secret across every cut', async () => {
    // The secret back to back, 8,192 times on one line (237,568 characters), written at once (the
    // pipe then splits it at sizes unrelated to the secret's): wherever a piece is cut, the cut
    // falls inside an occurrence unless it hits a boundary exactly.
    const { task, logs } = await runCommand(
      'x=$TOKEN; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13; do x=$x$x; done; printf \'%s\\n\' "$x"',
    );
    expect(task.state).toBe('succeeded');
    const pieces = logs.filter((l) => l.level === 'stdout').map((l) => l.message);
    expect(pieces.length).toBeGreaterThan(1);
    // Nothing but masks: any other character is part of the secret.
    expect(pieces.filter((piece) => !/^\**$/.test(piece)).map((piece) => piece.slice(0, 40))).toEqual([]);
    expect(pieces.join('').length).toBe(8192 * 3);
  });
});
