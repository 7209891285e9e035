import { describe, expect, it } from '@jest/globals';
import { SpinLock } from '@mmnsim/core';
import {
  Map_,
  MmuIntervalNotifier,
  MmuNotifier,
  MmuNotifierSubsystem,
  PAGE_SIZE,
  Prot,
} from '@mmnsim/mm';
import { mmSim, runOk } from './helpers.js';

describe('callbacks that never sleep may be plain functions (MaySleep)', () => {
  it('plain start/end/release of a classic subscriber are called like generator ones', () => {
    const { sim, proc } = mmSim();
    const mmn = sim.get(MmuNotifierSubsystem);
    const calls: string[] = [];
    const sub = new MmuNotifier({
      name: 'plain',
      invalidateRangeStart(_s, r) {
        calls.push(`start ${r.event}`);
        return 0;
      },
      invalidateRangeEnd(_s, r) {
        calls.push(`end ${r.event}`);
      },
      release() {
        calls.push('release');
      },
    });
    sim.spawn('app', 0, function* () {
      expect(yield* mmn.register(sub, proc.mm)).toBe(0);
      const a = yield* proc.mmap(
        0,
        2 * PAGE_SIZE,
        Prot.READ | Prot.WRITE,
        Map_.PRIVATE | Map_.ANONYMOUS,
      );
      yield* proc.store(a, 1);
      yield* proc.munmap(a, 2 * PAGE_SIZE);
      yield* proc.exit();
    });
    runOk(sim);
    expect(calls).toEqual(['start UNMAP', 'end UNMAP', 'release']);
  });

  it('a plain interval invalidate under a trylocked spinlock sets the sequence and collides with a reader', () => {
    const { sim, proc } = mmSim();
    const mmn = sim.get(MmuNotifierSubsystem);
    const lock = new SpinLock(sim.kernel, 'dev->lock');
    let calls = 0;
    const sub = new MmuIntervalNotifier({
      name: 'plain-interval',
      invalidate(s, _range, curSeq) {
        if (!lock.tryLock()) return false;
        mmn.setSeq(s, curSeq);
        calls++;
        lock.unlock();
        return true;
      },
    });
    let retry = false;
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(
        0,
        4 * PAGE_SIZE,
        Prot.READ | Prot.WRITE,
        Map_.PRIVATE | Map_.ANONYMOUS,
      );
      yield* proc.store(a, 1);
      expect(yield* mmn.intervalInsert(sub, proc.mm, a, 4 * PAGE_SIZE)).toBe(0);
      const seq = yield* mmn.readBegin(sub);
      yield* proc.munmap(a, PAGE_SIZE);
      yield* lock.lock();
      retry = mmn.readRetry(sub, seq);
      lock.unlock();
      yield* mmn.intervalRemove(sub);
    });
    runOk(sim);
    expect(calls).toBe(1);
    expect(retry).toBe(true);
  });
});
