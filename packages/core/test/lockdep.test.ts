import { describe, expect, it } from '@jest/globals';
import {
  GFP_KERNEL,
  GFP_NOWAIT,
  MMU_NOTIFIER_START_MAP,
  Mutex,
  RwSemaphore,
  Simulation,
  SpinLock,
} from '@mmnsim/core';
import type { LockMode } from '@mmnsim/core';

const kinds = (sim: Simulation) => sim.oracles.violations.map((v) => v.kind);

describe('lockdep: lock-order validation (notifier-core.md §5.3, kernel/locking/lockdep.c)', () => {
  it('reports an AB-BA inversion in a run that happened not to deadlock, showing both chains', () => {
    // t1 takes A then B and finishes before t2 takes B then A: no deadlock in this run.
    const sim = Simulation.create({
      seed: 1,
      cpus: 2,
      strategy: 'round-robin',
      stopOnViolation: false,
    });
    const a = new Mutex(sim.kernel, 'A');
    const b = new Mutex(sim.kernel, 'B');
    const t1 = sim.spawn('t1', 0, function* () {
      yield* a.lock();
      yield* b.lock();
      b.unlock();
      a.unlock();
    });
    sim.spawn('t2', 1, function* () {
      yield* sim.scheduler.join(t1);
      yield* b.lock();
      yield* a.lock();
      a.unlock();
      b.unlock();
    });
    const r = sim.run();
    expect(r.reason).toBe('violation'); // the run itself completed; the report is the failure
    expect(r.steps).toBeGreaterThan(0);
    expect(kinds(sim)).toEqual(['lockdep-circular']);
    const v = r.violations[0]!;
    expect(v.message).toContain('t2#1 is trying to acquire A (write) while holding B (write)');
    expect(v.message).toContain('existing dependency chain: A -> B (t1#0');
    expect(v.message).toContain('new dependency: B -> A (t2#1');
    expect(v.details).toMatchObject({
      existing: [{ from: 'A', to: 'B', task: 't1#0' }],
      new: { from: 'B', to: 'A', task: 't2#1' },
    });
    expect(v.evidence.length).toBeGreaterThan(0);
  });

  it('reports a three-lock cycle A->B, B->C, C->A', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1, stopOnViolation: false });
    const [a, b, c] = ['A', 'B', 'C'].map((n) => new Mutex(sim.kernel, n)) as [Mutex, Mutex, Mutex];
    sim.spawn('t', 0, function* () {
      for (const [x, y] of [
        [a, b],
        [b, c],
        [c, a],
      ] as const) {
        yield* x.lock();
        yield* y.lock();
        y.unlock();
        x.unlock();
      }
    });
    sim.run();
    expect(kinds(sim)).toEqual(['lockdep-circular']);
    expect(sim.oracles.violations[0]!.message).toContain('existing dependency chain: A -> B');
  });

  it('a consistent order is never reported, over many random schedules', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const sim = Simulation.create({ seed, cpus: 3, strategy: 'random', log: false });
      const a = new Mutex(sim.kernel, 'A');
      const b = new Mutex(sim.kernel, 'B');
      for (let c = 0; c < 3; c++) {
        sim.spawn(`t${c}`, c, function* () {
          yield* a.lock();
          yield* b.lock();
          b.unlock();
          a.unlock();
        });
      }
      expect(sim.run().violations).toEqual([]);
    }
  });

  it('reports recursive locking of one class, and accepts it with a nesting subclass', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1, stopOnViolation: false });
    const m1 = new Mutex(sim.kernel, 'inode->lock');
    const m2 = new Mutex(sim.kernel, 'inode->lock');
    sim.spawn('t', 0, function* () {
      yield* m1.lock();
      yield* m2.lock(1); // mutex_lock_nested(…, SINGLE_DEPTH_NESTING)
      m2.unlock();
      m1.unlock();
      yield* m1.lock();
      yield* m2.lock(); // same class, no annotation
      m2.unlock();
      m1.unlock();
    });
    sim.run();
    expect(kinds(sim)).toEqual(['lockdep-recursive']);
    expect(sim.oracles.violations[0]!.message).toContain('possible recursive locking detected');
  });

  it('a trylock acquisition adds no dependency (it cannot deadlock)', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1 });
    const a = new Mutex(sim.kernel, 'A');
    const b = new Mutex(sim.kernel, 'B');
    sim.spawn('t', 0, function* () {
      yield* a.lock();
      yield* b.lock();
      b.unlock();
      a.unlock();
      yield* b.lock();
      expect(a.tryLock()).toBe(true); // B then A, but only as a trylock
      a.unlock();
      b.unlock();
    });
    expect(sim.run().violations).toEqual([]);
  });

  it('recursive-read acquisitions may nest; a non-recursive reader nesting on one class is reported', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1, stopOnViolation: false });
    const rcu = sim.lockdep.map('rcu_read_lock');
    const sem = new RwSemaphore(sim.kernel, 'mm->mmap_lock');
    sim.spawn('t', 0, function* () {
      rcu.acquire('recursive-read');
      rcu.acquire('recursive-read');
      rcu.release();
      rcu.release();
      yield* sem.downRead();
      yield* sem.downRead(); // can deadlock behind a queued writer
      sem.upRead();
      sem.upRead();
    });
    sim.run();
    expect(kinds(sim)).toEqual(['lockdep-recursive']);
    expect(sim.oracles.violations[0]!.message).toContain('mm->mmap_lock (read)');
  });

  const cycle = (first: LockMode, second: LockMode) => {
    // t1: hold R (mode `first`), take M; t2: hold M, take R (mode `second`).
    const sim = Simulation.create({ seed: 1, cpus: 1, stopOnViolation: false });
    const r = sim.lockdep.map('R');
    const m = new Mutex(sim.kernel, 'M');
    sim.spawn('t1', 0, function* () {
      r.acquire(first);
      yield* m.lock();
      m.unlock();
      r.release();
    });
    sim.spawn('t2', 0, function* () {
      yield* m.lock();
      r.acquire(second);
      r.release();
      m.unlock();
    });
    sim.run();
    return kinds(sim);
  };

  it('a cycle through a recursive reader is not a deadlock (R held as reader, then taken recursively)', () => {
    // M -(ER)-> R -(SN)-> M: the junction at R is (xR) then (Sy): not strong, no report.
    expect(cycle('recursive-read', 'recursive-read')).toEqual([]);
  });

  it('the same cycle is reported when either side is a writer or a non-recursive reader', () => {
    expect(cycle('recursive-read', 'write')).toEqual(['lockdep-circular']);
    expect(cycle('write', 'recursive-read')).toEqual(['lockdep-circular']);
    expect(cycle('read', 'read')).toEqual(['lockdep-circular']);
  });

  it('reports a lock taken in a notifier callback and also held across a reclaiming allocation', () => {
    // The callback path: inside the invalidate_range_start map, take the driver lock.
    // The allocation path: hold the driver lock, allocate with GFP_KERNEL (fs_reclaim touches
    // the map). Reclaim can reach the callback, so this can deadlock.
    const sim = Simulation.create({
      seed: 1,
      cpus: 2,
      strategy: 'round-robin',
      stopOnViolation: false,
    });
    const map = sim.lockdep.map(MMU_NOTIFIER_START_MAP);
    const driverLock = new Mutex(sim.kernel, 'dmirror->mutex');
    const cb = sim.spawn('invalidate', 0, function* () {
      map.acquire();
      yield* driverLock.lock();
      driverLock.unlock();
      map.release();
    });
    sim.spawn('ioctl', 1, function* () {
      yield* sim.scheduler.join(cb);
      yield* driverLock.lock();
      sim.kernel.mightAlloc(GFP_KERNEL, 'kmalloc');
      driverLock.unlock();
    });
    const r = sim.run();
    expect(kinds(sim)).toEqual(['lockdep-circular']);
    // The chain runs through fs_reclaim, as the kernel's report does.
    expect(r.violations[0]!.message).toContain(
      `existing dependency chain: ${MMU_NOTIFIER_START_MAP} -> dmirror->mutex (invalidate#0`,
    );
    expect(r.violations[0]!.message).toContain('dmirror->mutex -> fs_reclaim (ioctl#1');
    expect(r.violations[0]!.message).toContain(
      `new dependency: fs_reclaim -> ${MMU_NOTIFIER_START_MAP} (ioctl#1`,
    );
  });

  it('GFP_NOWAIT and a memalloc_noreclaim scope do not touch the reclaim maps', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1 });
    const map = sim.lockdep.map(MMU_NOTIFIER_START_MAP);
    const driverLock = new Mutex(sim.kernel, 'drv->lock');
    sim.spawn('t', 0, function* () {
      map.acquire();
      yield* driverLock.lock();
      driverLock.unlock();
      map.release();
      yield* driverLock.lock();
      sim.kernel.mightAlloc(GFP_NOWAIT, 'kmalloc(GFP_NOWAIT)');
      const restore = sim.kernel.allocScope('noreclaim');
      sim.kernel.mightAlloc(GFP_KERNEL, 'kmalloc under memalloc_noreclaim');
      restore();
      driverLock.unlock();
    });
    expect(sim.run().violations).toEqual([]);
  });

  it('a blocking allocation in atomic context is reported as sleeping in atomic context', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1 });
    const ptl = new SpinLock(sim.kernel, 'ptl');
    sim.spawn('t', 0, function* () {
      yield* ptl.lock();
      sim.kernel.mightAlloc(GFP_KERNEL, 'alloc_page');
      ptl.unlock();
    });
    const r = sim.run();
    expect(r.violations[0]!.kind).toBe('sleep-in-atomic');
    expect(r.violations[0]!.message).toContain('alloc_page');
    expect(r.violations[0]!.message).toContain('spinlock ptl');
  });

  it('a task that exits holding a lock is reported', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1 });
    const m = new Mutex(sim.kernel, 'leaked');
    sim.spawn('leaker', 0, function* () {
      yield* m.lock();
    });
    const r = sim.run();
    expect(r.violations[0]!.kind).toBe('lockdep-held-at-exit');
    expect(r.violations[0]!.message).toContain('leaker#0 exited still holding 1 lock(s): leaked');
  });

  it('lockdep off: no graph, no reports, locks still work', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1, lockdep: false });
    const a = new Mutex(sim.kernel, 'A');
    const b = new Mutex(sim.kernel, 'B');
    sim.spawn('t', 0, function* () {
      for (const [x, y] of [
        [a, b],
        [b, a],
      ] as const) {
        yield* x.lock();
        yield* y.lock();
        y.unlock();
        x.unlock();
      }
    });
    expect(sim.run().violations).toEqual([]);
  });
});
