import { spawn, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { localOwner } from '../../src/engine/interrupted.js';
import { stopOrphanGroup } from '../../src/engine/resume.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const state = spawnSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' }).stdout.trim();
    return state !== '' && !state.startsWith('Z');
  } catch {
    return false;
  }
}

async function waitFor(check: () => boolean, ms = 3000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return check();
}

describe('stopOrphanGroup', () => {
  it('kills the process group of an attempt whose weft process on this host is gone', async () => {
    const child = spawn('sh', ['-c', 'sleep 30 & sleep 30; wait'], { detached: true, stdio: 'ignore' });
    child.unref();
    const pid = child.pid!;
    // A dead owner: a process that has already exited.
    const dead = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
    const deadOwner = localOwner().replace(/:\d+$/, `:${dead.stdout.trim()}`);
    expect(alive(pid)).toBe(true);
    expect(stopOrphanGroup({ pid, worker: deadOwner })).toBe(true);
    expect(await waitFor(() => !alive(pid))).toBe(true);
  });

  it('leaves alone the children of a live owner, and attempts without a process group', () => {
    const child = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
    child.unref();
    try {
      expect(stopOrphanGroup({ pid: child.pid!, worker: localOwner() })).toBe(false);
      expect(alive(child.pid!)).toBe(true);
      expect(stopOrphanGroup({ pid: null, worker: 'elsewhere:1' })).toBe(false);
    } finally {
      process.kill(-child.pid!, 'SIGKILL');
    }
  });
});

describe('runs executed by workers', () => {
  it('are never marked interrupted by the local heuristics, whatever their heartbeat', async () => {
    const { createMemoryStore } = await import('../../src/store/memory/memory-store.js');
    const { markInterruptedRuns } = await import('../../src/engine/interrupted.js');
    const { plan, ok } = await import('../support/plan-builder.js');
    const store = createMemoryStore();
    const old = new Date(0).toISOString();
    await store.createRun({
      id: 'r_q',
      pipeline: 'p',
      plan: plan({ tasks: [ok('a')] }),
      params: {},
      trigger: 'manual',
      scheduledFor: null,
      state: 'running',
      owner: 'weft-queue:1',
      createdAt: old,
    });
    await store.updateRun('r_q', { heartbeatAt: old, startedAt: old });
    expect(await markInterruptedRuns(store, { now: Date.now(), isOwnerAlive: () => false })).toEqual([]);
    expect((await store.getRun('r_q'))!.state).toBe('running');
  });
});
