import { describe, expect, it } from '@jest/globals';
import { Completion, RwLock, RwSemaphore, SeqCount, Simulation, SpinLock } from '@mmnsim/core';

describe('spinlock (spinlock_t)', () => {
  it('holding a spinlock is atomic context: sleeping inside is reported naming the lock', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1 });
    const lock = new SpinLock(sim.kernel, 'dev->lock');
    sim.spawn('t', 0, function* () {
      yield* lock.lock();
      yield* sim.scheduler.sleepFor(100);
      lock.unlock();
    });
    const r = sim.run();
    expect(r.violations[0]!.kind).toBe('sleep-in-atomic');
    expect(r.violations[0]!.message).toContain('spinlock dev->lock');
  });

  it('a contender spins on its CPU; the holder is never preempted on its own CPU', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const sim = Simulation.create({ seed, cpus: 2, strategy: 'random', log: false });
      const lock = new SpinLock(sim.kernel, 'l');
      let inside = 0;
      let maxInside = 0;
      let sameCpuRanWhileHeld = false;
      for (const cpu of [0, 1]) {
        sim.spawn(`w${cpu}`, cpu, function* () {
          for (let i = 0; i < 3; i++) {
            yield* lock.lock();
            inside++;
            maxInside = Math.max(maxInside, inside);
            yield* sim.scheduler.preempt();
            inside--;
            lock.unlock();
            yield* sim.scheduler.preempt();
          }
        });
      }
      sim.spawn('same-cpu-as-w0', 0, function* () {
        if (lock.owner?.context.name === 'cpu0') sameCpuRanWhileHeld = true;
      });
      expect(sim.run().reason).toBe('done');
      expect(maxInside).toBe(1);
      expect(sameCpuRanWhileHeld).toBe(false);
    }
  });

  it('unlocking a spinlock the task does not hold is reported', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1 });
    const lock = new SpinLock(sim.kernel, 'l');
    sim.spawn('t', 0, function* () {
      lock.unlock();
    });
    expect(sim.run().violations[0]!.kind).toBe('spinlock-bad-unlock');
  });
});

describe('rw_semaphore', () => {
  it('readers share; a writer excludes everyone', () => {
    let sharedRuns = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const sim = Simulation.create({ seed, cpus: 3, strategy: 'random', log: false });
      const sem = new RwSemaphore(sim.kernel, 'mm->mmap_lock');
      let readers = 0;
      let writers = 0;
      let bad = false;
      let sawSharing = false;
      for (const cpu of [0, 1]) {
        sim.spawn(`reader${cpu}`, cpu, function* () {
          for (let i = 0; i < 3; i++) {
            yield* sem.downRead();
            readers++;
            if (writers > 0) bad = true;
            if (readers > 1) sawSharing = true;
            yield* sim.scheduler.preempt();
            readers--;
            sem.upRead();
          }
        });
      }
      sim.spawn('writer', 2, function* () {
        for (let i = 0; i < 2; i++) {
          yield* sem.downWrite();
          writers++;
          if (readers > 0 || writers > 1) bad = true;
          yield* sim.scheduler.preempt();
          writers--;
          sem.upWrite();
        }
      });
      expect(sim.run().reason).toBe('done');
      expect(bad).toBe(false);
      if (sawSharing) sharedRuns++;
    }
    expect(sharedRuns).toBeGreaterThan(0);
  });

  it('is fair: a reader arriving while a writer waits queues behind the writer', () => {
    const sim = Simulation.create({ seed: 1, cpus: 3, strategy: 'round-robin' });
    const sem = new RwSemaphore(sim.kernel, 'sem');
    const order: string[] = [];
    sim.spawn('r1', 0, function* () {
      yield* sem.downRead();
      order.push('r1 in');
      for (let i = 0; i < 4; i++) yield* sim.scheduler.preempt();
      order.push('r1 out');
      sem.upRead();
    });
    sim.spawn('w', 1, function* () {
      yield* sim.scheduler.preempt();
      yield* sem.downWrite();
      order.push('w in');
      sem.upWrite();
    });
    sim.spawn('r2', 2, function* () {
      yield* sim.scheduler.preempt();
      yield* sim.scheduler.preempt();
      yield* sem.downRead();
      order.push('r2 in');
      sem.upRead();
    });
    expect(sim.run().reason).toBe('done');
    expect(order).toEqual(['r1 in', 'r1 out', 'w in', 'r2 in']);
  });

  it('downgrade_write turns the write hold into a read hold and lets queued readers in', () => {
    const sim = Simulation.create({ seed: 1, cpus: 2, strategy: 'round-robin' });
    const sem = new RwSemaphore(sim.kernel, 'sem');
    const order: string[] = [];
    sim.spawn('w', 0, function* () {
      yield* sem.downWrite();
      yield* sim.scheduler.preempt();
      yield* sim.scheduler.preempt();
      sem.downgradeWrite();
      order.push('downgraded');
      yield* sim.scheduler.preempt();
      yield* sim.scheduler.preempt();
      order.push(`w still reading with ${sem.readers} readers`);
      sem.upRead();
    });
    sim.spawn('r', 1, function* () {
      yield* sim.scheduler.preempt();
      yield* sem.downRead();
      order.push('r in');
      yield* sim.scheduler.preempt();
      yield* sim.scheduler.preempt();
      sem.upRead();
    });
    expect(sim.run().reason).toBe('done');
    expect(order).toEqual(['downgraded', 'r in', 'w still reading with 2 readers']);
  });

  it('trylocks never sleep and fail while the semaphore is busy', () => {
    const sim = Simulation.create({ seed: 1, cpus: 2, strategy: 'round-robin' });
    const sem = new RwSemaphore(sim.kernel, 'sem');
    const got: boolean[] = [];
    sim.spawn('holder', 0, function* () {
      yield* sem.downRead();
      yield* sim.scheduler.preempt();
      yield* sim.scheduler.preempt();
      sem.upRead();
    });
    sim.spawn('try', 1, function* () {
      got.push(sem.tryDownWrite(), sem.tryDownRead());
      sem.upRead();
    });
    sim.run();
    expect(got).toEqual([false, true]);
  });
});

describe('rwlock_t', () => {
  it('a writer waits for readers, spinning; readers and the writer hold atomic context', () => {
    const sim = Simulation.create({ seed: 3, cpus: 3, strategy: 'random' });
    const lock = new RwLock(sim.kernel, 'kvm->mmu_lock');
    let readers = 0;
    let conflict = false;
    for (const cpu of [0, 1]) {
      sim.spawn(`r${cpu}`, cpu, function* () {
        for (let i = 0; i < 3; i++) {
          yield* lock.readLock();
          readers++;
          expect(sim.scheduler.current.preemptDepth).toBe(1);
          yield* sim.scheduler.preempt();
          readers--;
          lock.readUnlock();
        }
      });
    }
    sim.spawn('w', 2, function* () {
      yield* lock.writeLock();
      if (readers > 0) conflict = true;
      lock.writeUnlock();
    });
    expect(sim.run().reason).toBe('done');
    expect(conflict).toBe(false);
  });
});

describe('seqcount_t', () => {
  it('a reader that overlaps a write retries and never returns a torn value', () => {
    let retries = 0;
    for (let seed = 1; seed <= 30; seed++) {
      const sim = Simulation.create({ seed, cpus: 2, strategy: 'random', log: false });
      const sc = new SeqCount(sim.kernel, 'seq');
      const lock = new SpinLock(sim.kernel, 'writer lock');
      let lo = 0;
      let hi = 0;
      let torn = false;
      sim.spawn('writer', 0, function* () {
        for (let i = 1; i <= 5; i++) {
          yield* lock.lock();
          sc.writeBegin();
          lo = i;
          yield* sim.scheduler.preempt();
          hi = i;
          sc.writeEnd();
          lock.unlock();
        }
      });
      sim.spawn('reader', 1, function* () {
        for (let i = 0; i < 5; i++) {
          let a: number;
          let b: number;
          let s: number;
          do {
            s = yield* sc.readBegin();
            a = lo;
            yield* sim.scheduler.preempt();
            b = hi;
            if (sc.readRetry(s)) retries++;
          } while (sc.readRetry(s));
          if (a !== b) torn = true;
        }
      });
      expect(sim.run().reason).toBe('done');
      expect(torn).toBe(false);
    }
    expect(retries).toBeGreaterThan(0);
  });

  it('a writer with preemption enabled is reported', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1 });
    const sc = new SeqCount(sim.kernel, 'seq');
    sim.spawn('t', 0, function* () {
      sc.writeBegin();
      sc.writeEnd();
    });
    expect(sim.run().violations[0]!.kind).toBe('seqcount-preemptible-writer');
  });
});

describe('completion', () => {
  it('complete lets one waiter through; complete_all lets everyone through', () => {
    const sim = Simulation.create({ seed: 1, cpus: 3, strategy: 'round-robin' });
    const c = new Completion(sim.kernel, 'c');
    const through: string[] = [];
    for (const cpu of [0, 1]) {
      sim.spawn(`waiter${cpu}`, cpu, function* () {
        yield* c.wait();
        through.push(`waiter${cpu}`);
      });
    }
    sim.spawn('completer', 2, function* () {
      yield* sim.scheduler.preempt();
      c.complete();
      yield* sim.scheduler.preempt();
      yield* sim.scheduler.preempt();
      expect(through).toHaveLength(1);
      c.completeAll();
    });
    expect(sim.run().reason).toBe('done');
    expect(through.sort()).toEqual(['waiter0', 'waiter1']);
  });

  it('waiting for a completion in atomic context is reported even if it is already done', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1 });
    const c = new Completion(sim.kernel, 'c');
    c.completeAll();
    sim.spawn('t', 0, function* () {
      sim.kernel.preemptDisable('preempt_disable');
      yield* c.wait();
      sim.kernel.preemptEnable();
    });
    expect(sim.run().violations[0]!.kind).toBe('sleep-in-atomic');
  });
});

describe('reader/writer lock misuse (up_read/up_write, read_unlock/write_unlock)', () => {
  it('releasing a hold the task does not have is reported naming the call and the lock, and the lock is left as it was', () => {
    const sim = Simulation.create({ seed: 1, cpus: 2, stopOnViolation: false });
    const sem = new RwSemaphore(sim.kernel, 'mm->mmap_lock');
    const rw = new RwLock(sim.kernel, 'tasklist_lock');
    let stillHeld = false;
    const owner = sim.spawn('owner', 0, function* () {
      yield* sem.downWrite();
      yield* sim.scheduler.preempt();
      yield* sim.scheduler.preempt();
      sem.upWrite();
    });
    sim.spawn('other', 1, function* () {
      yield* sim.scheduler.preempt();
      sem.upWrite(); // not the writer
      sem.upRead(); // holds no read lock
      rw.readUnlock();
      rw.writeUnlock();
      stillHeld = !sem.tryDownRead();
      yield* sim.scheduler.join(owner);
    });
    const r = sim.run();
    expect(r.violations.map((v) => [v.kind, v.message])).toEqual([
      ['rwsem-bad-unlock', 'up_write(mm->mmap_lock) by other#1, but the writer is owner#0'],
      ['rwsem-bad-unlock', 'up_read(mm->mmap_lock) by other#1, which holds no read lock on it'],
      [
        'rwlock-bad-unlock',
        'read_unlock(tasklist_lock) by other#1, which holds no read lock on it',
      ],
      ['rwlock-bad-unlock', 'write_unlock(tasklist_lock) by other#1, but the writer is nobody'],
    ]);
    expect(stillHeld).toBe(true);
  });
});
