import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';

describe('ManualClock', () => {
  it('wakes sleepers in time order and only when time reaches them', async () => {
    const clock = new ManualClock(1000);
    const woke: number[] = [];
    void clock.sleep(300).then(() => woke.push(clock.now()));
    void clock.sleep(100).then(() => woke.push(clock.now()));
    await clock.advance(50);
    expect(woke).toEqual([]);
    await clock.advance(300);
    expect(woke).toEqual([1100, 1300]);
    expect(clock.now()).toBe(1350);
  });

  it('rejects an aborted sleep and forgets it', async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    const sleeping = clock.sleep(1000, controller.signal);
    controller.abort(new Error('stop'));
    await expect(sleeping).rejects.toThrow('stop');
    expect(clock.pending).toBe(0);
  });

  it('leaves no abort listener behind after a normal wake', async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    let listeners = 0;
    const add = controller.signal.addEventListener.bind(controller.signal);
    const remove = controller.signal.removeEventListener.bind(controller.signal);
    controller.signal.addEventListener = ((...args: Parameters<typeof add>) => {
      listeners++;
      add(...args);
    }) as typeof add;
    controller.signal.removeEventListener = ((...args: Parameters<typeof remove>) => {
      listeners--;
      remove(...args);
    }) as typeof remove;
    for (let i = 0; i < 20; i++) {
      const sleeping = clock.sleep(10, controller.signal);
      await clock.advance(10);
      await sleeping;
    }
    expect(listeners).toBe(0);
  });
});
