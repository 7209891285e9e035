// Caller- and driver-side rules of the MMU notifier subsystem (notifier-core.md §9, invariants
// 35–48, plus 17 and 29 through the secondary-MMU oracle). For each rule, correct use runs clean
// and every misuse is reported — by the notifier oracles (src/internal/mmn/oracles.ts), the
// subsystem's own WARNs, lockdep, SRCU or might_sleep — with a message naming the rule.
//
// Runs keep going after a violation (stopOnViolation: false) so a test sees everything a misuse
// leads to, in order.
import { describe, expect, it } from '@jest/globals';
import {
  Completion,
  Errno,
  GFP_KERNEL,
  GFP_NOWAIT,
  MMU_NOTIFIER_START_MAP,
  Mutex,
  Simulation,
  SpinLock,
} from '@mmnsim/core';
import type { TaskGen, Violation } from '@mmnsim/core';
import {
  HmmPfn,
  hmmRangeFault,
  Madv,
  Map_,
  mmdrop,
  mmgrab,
  mmPlugin,
  MmService,
  MmuGather,
  MmuIntervalNotifier,
  MmuNotifier,
  MmuNotifierSubsystem,
  NotifierRange,
  PAGE_SIZE,
  Prot,
  ptePfn,
  ptePresent,
  SecondaryMmuEvents,
} from '@mmnsim/mm';
import type {
  MmCore,
  MmStruct,
  MmuNotifierOps,
  Process,
  SecondaryMapping,
  SecondaryMmu,
} from '@mmnsim/mm';
import { notifierOracles } from '../src/internal/mmn/oracles.js';
import type { NotifierLifetimeOracle, SecondaryInterval } from '../src/internal/mmn/oracles.js';
import { findVma, unmapPageRange } from '../src/internal/unmap.js';
import { IntervalDriver } from './fixtures/interval-driver.js';
import type { IntervalDriverOptions } from './fixtures/interval-driver.js';

const PS = PAGE_SIZE;
const RW = Prot.READ | Prot.WRITE;
const ANON = Map_.PRIVATE | Map_.ANONYMOUS;

interface World {
  sim: Simulation;
  core: MmCore;
  mmn: MmuNotifierSubsystem;
  proc: Process;
  life: NotifierLifetimeOracle;
  /** Secondary MMUs the oracle inspects (push drivers here). */
  mmus: SecondaryMmu[];
  /** Interval subscriptions per MMU for invariant 48 (push here). */
  intervals: SecondaryInterval[];
}

/** A simulation with the memory model, one process and every notifier oracle attached. */
function world(cpus = 2): World {
  const sim = Simulation.create({
    seed: 1,
    cpus,
    stopOnViolation: false,
    plugins: [mmPlugin({ totalFrames: 256 })],
  });
  const svc = sim.get(MmService);
  const mmus: SecondaryMmu[] = [];
  const intervals: SecondaryInterval[] = [];
  const [pairing, secondary, life] = notifierOracles(sim, { mmus, intervals });
  sim.addOracle(pairing);
  sim.addOracle(secondary);
  sim.addOracle(life);
  return {
    sim,
    core: svc.core,
    mmn: sim.get(MmuNotifierSubsystem),
    proc: svc.createProcess('app'),
    life,
    mmus,
    intervals,
  };
}

/** Runs the world; returns the violations (the run itself must end normally). */
function run(w: World): readonly Violation[] {
  const r = w.sim.run();
  expect(r.error).toBeUndefined();
  expect(['done', 'violation']).toContain(r.reason);
  return r.violations;
}

function kinds(vs: readonly Violation[]): string[] {
  return vs.map((v) => v.kind);
}

/** The one violation of `kind`, whose message must match `rule`. */
function only(vs: readonly Violation[], kind: string, rule: RegExp): Violation {
  const found = vs.filter((v) => v.kind === kind);
  expect(found).toHaveLength(1);
  expect(found[0]!.message).toMatch(rule);
  return found[0]!;
}

/** An interval driver of the fixture, watched by the oracles, with its interval declared. */
function driver(w: World, options: IntervalDriverOptions = {}): IntervalDriver {
  const d = new IntervalDriver(w.sim, 'dmirror0', options);
  w.mmus.push(d);
  w.intervals.push({ mmu: d.name, sub: d.sub });
  return d;
}

/** Maps `pages` anonymous pages and writes page i+1 into each; returns the address. */
function* populate(proc: Process, pages: number): TaskGen<number> {
  const a = yield* proc.mmap(0, pages * PS, RW, ANON);
  for (let i = 0; i < pages; i++) yield* proc.store(a + i * PS, i + 1);
  return a;
}

/**
 * A classic (list) subscriber with its own shadow table, KVM-style: start zaps the range and
 * counts the open window, end uncounts it; `map` creates a translation from the CPU PTE unless
 * (when `checkInProgress`) a window is open — the check a correct driver makes under its lock.
 */
class ListMirror implements SecondaryMmu {
  readonly kind = 'shadow' as const;
  readonly sub: MmuNotifier;
  readonly lock: Mutex;
  inProgress = 0;
  private readonly table = new Map<number, { pfn: number; gen: number }>();
  private readonly events: SecondaryMmuEvents;

  constructor(
    private readonly w: World,
    readonly name: string,
    private readonly checkInProgress: boolean,
  ) {
    this.lock = new Mutex(w.sim.kernel, `${name}->mmu_lock`);
    this.events = new SecondaryMmuEvents(w.sim.kernel, name);
    this.sub = new MmuNotifier({
      name,
      invalidateRangeStart: (_s, range) => this.start(range),
      invalidateRangeEnd: () => this.end(),
    });
  }

  private *start(range: NotifierRange): TaskGen<number> {
    yield* this.lock.lock();
    this.inProgress++;
    for (const va of [...this.table.keys()]) {
      if (va >= range.start && va < range.end) {
        this.table.delete(va);
        this.events.unmap(range.mm, va);
      }
    }
    this.lock.unlock();
    return 0;
  }

  private *end(): TaskGen<void> {
    yield* this.lock.lock();
    this.inProgress--;
    this.lock.unlock();
  }

  *map(mm: MmStruct, va: number): TaskGen<boolean> {
    yield* this.lock.lock();
    const pte = this.w.core.pt.pte(mm, va);
    const ok = !(this.checkInProgress && this.inProgress > 0) && ptePresent(pte);
    if (ok) {
      const pfn = ptePfn(pte);
      const gen = this.w.core.phys.generation[pfn]!;
      this.table.set(va, { pfn, gen });
      this.events.map(mm, va, pfn, gen, false);
    }
    this.lock.unlock();
    return ok;
  }

  *mappings(): Iterable<SecondaryMapping> {
    for (const [va, e] of this.table)
      yield { mm: this.w.proc.mm, va, pfn: e.pfn, gen: e.gen, writable: false };
  }
}

describe('MMU notifier rules (notifier-core.md §9, invariants 35–48)', () => {
  it('35 end gets the same range object as its start: real operations pair; an end with another object is an unpaired end and leaves the window open; a second end is reported', () => {
    const ok = world();
    ok.sim.spawn('app', 0, function* () {
      const a = yield* populate(ok.proc, 4);
      const r = new NotifierRange('CLEAR', ok.proc.mm, a, a + PS);
      expect(yield* ok.mmn.invalidateRangeStart(r)).toBe(0);
      yield* ok.mmn.invalidateRangeEnd(r);
      yield* ok.proc.mprotect(a, 4 * PS, Prot.READ);
      yield* ok.proc.munmap(a, 4 * PS);
      yield* ok.proc.exit();
    });
    expect(run(ok)).toEqual([]);

    const other = world();
    other.sim.spawn('app', 0, function* () {
      const a = yield* populate(other.proc, 1);
      const r = new NotifierRange('CLEAR', other.proc.mm, a, a + PS);
      yield* other.mmn.invalidateRangeStart(r);
      // A second object with the same fields is not the same range (its blockable bit is unset).
      yield* other.mmn.invalidateRangeEnd(new NotifierRange('CLEAR', other.proc.mm, a, a + PS));
    });
    const vs = run(other);
    expect(kinds(vs)).toEqual(['mmn-end-without-start', 'mmn-window-not-closed']);
    only(vs, 'mmn-end-without-start', /same range object.*invariant 35/);
    only(vs, 'mmn-window-not-closed', /never|without its invalidate_range_end.*invariant 35/);

    const twice = world();
    twice.sim.spawn('app', 0, function* () {
      const a = yield* populate(twice.proc, 1);
      const r = new NotifierRange('CLEAR', twice.proc.mm, a, a + PS);
      yield* twice.mmn.invalidateRangeStart(r);
      yield* twice.mmn.invalidateRangeEnd(r);
      yield* twice.mmn.invalidateRangeEnd(r);
    });
    const vs2 = run(twice);
    expect(kinds(vs2)).toEqual(['mmn-end-twice']);
    only(vs2, 'mmn-end-twice', /exactly one end.*invariant 35/);
  });

  /** A subscriber that cannot invalidate without sleeping: -EAGAIN when not blockable, no end. */
  const nonblockFails: MmuNotifierOps = {
    name: 'nb-fails',
    *invalidateRangeStart(_s, range) {
      return range.blockable ? 0 : -Errno.EAGAIN;
    },
  };

  it('36 after a failed non-blocking start the caller neither calls end nor changes PTEs: the OOM reaper skips the VMA; an end, or a zap, after the failure is reported', () => {
    const ok = world();
    ok.sim.spawn('app', 0, function* () {
      yield* populate(ok.proc, 2);
      expect(yield* ok.mmn.register(new MmuNotifier(nonblockFails), ok.proc.mm)).toBe(0);
      // The reaper's start fails on every attempt: it skips the VMA (no zap, no end) and gives up.
      expect(yield* ok.sim.get(MmService).oomReap(ok.proc)).toBe(false);
    });
    expect(run(ok)).toEqual([]);

    const end = world();
    end.sim.spawn('app', 0, function* () {
      const a = yield* populate(end.proc, 1);
      yield* end.mmn.register(new MmuNotifier(nonblockFails), end.proc.mm);
      const r = new NotifierRange('UNMAP', end.proc.mm, a, a + PS);
      expect(yield* end.mmn.invalidateRangeStartNonblock(r)).toBe(-Errno.EAGAIN);
      yield* end.mmn.invalidateRangeEnd(r);
    });
    const vs = run(end);
    expect(kinds(vs)).toEqual(['mmn-end-after-failed-start']);
    only(vs, 'mmn-end-after-failed-start', /must not call end.*invariant 36/);

    const zap = world();
    zap.sim.spawn('reaper', 0, function* () {
      const proc = zap.proc;
      const a = yield* populate(proc, 1);
      yield* zap.mmn.register(new MmuNotifier(nonblockFails), proc.mm);
      const r = new NotifierRange('UNMAP', proc.mm, a, a + PS);
      yield* proc.mm.mmapLock.downRead();
      expect(yield* zap.mmn.invalidateRangeStartNonblock(r)).toBe(-Errno.EAGAIN);
      // A broken reaper that zaps anyway.
      const tlb = new MmuGather(zap.core, proc.mm);
      yield* unmapPageRange(zap.core, tlb, findVma(proc.mm, a)!, a, a + PS);
      yield* tlb.finish();
      proc.mm.mmapLock.upRead();
    });
    const vs2 = run(zap);
    expect(kinds(vs2)).toEqual(['mmn-pte-change-after-failed-start']);
    only(vs2, 'mmn-pte-change-after-failed-start', /leave the range alone.*invariant 36/);
  });

  it('37 the blocking start is never called from atomic context: the non-blocking one may be; a blocking start under a spinlock is might_sleep → sleep-in-atomic', () => {
    const ok = world();
    const lockOk = new SpinLock(ok.sim.kernel, 'driver->spin');
    ok.sim.spawn('app', 0, function* () {
      const a = yield* populate(ok.proc, 1);
      const r = new NotifierRange('UNMAP', ok.proc.mm, a, a + PS);
      yield* lockOk.lock();
      expect(yield* ok.mmn.invalidateRangeStartNonblock(r)).toBe(0);
      yield* ok.mmn.invalidateRangeEnd(r);
      lockOk.unlock();
    });
    expect(run(ok)).toEqual([]);

    const bad = world();
    const lock = new SpinLock(bad.sim.kernel, 'driver->spin');
    bad.sim.spawn('app', 0, function* () {
      const a = yield* populate(bad.proc, 1);
      const r = new NotifierRange('CLEAR', bad.proc.mm, a, a + PS);
      yield* lock.lock();
      yield* bad.mmn.invalidateRangeStart(r);
      lock.unlock();
      yield* bad.mmn.invalidateRangeEnd(r);
    });
    const vs = run(bad);
    expect(kinds(vs)).toEqual(['sleep-in-atomic']);
    only(vs, 'sleep-in-atomic', /mmu_notifier_invalidate_range_start.*driver->spin/);
  });

  it('38 a lock taken in a callback is never held across a reclaiming allocation nor around read_begin: GFP_NOWAIT is fine; GFP_KERNEL, and read_begin under the lock, are lockdep cycles through the notifier map', () => {
    /** Binds a driver, mirrors a page and lets one invalidation take the driver lock inside the map. */
    function* primed(w: World, d: IntervalDriver): TaskGen<number> {
      const a = yield* populate(w.proc, 2);
      expect(yield* d.bind(w.proc.mm, a, 2 * PS)).toBe(0);
      expect(yield* d.fault(a)).toBe(0);
      yield* w.proc.madvise(a, PS, Madv.DONTNEED); // invalidate: map → driver lock
      return a;
    }

    const ok = world();
    const dOk = driver(ok);
    ok.sim.spawn('app', 0, function* () {
      const a = yield* primed(ok, dOk);
      yield* dOk.lock.lock();
      ok.sim.kernel.mightAlloc(GFP_NOWAIT, 'kmalloc(GFP_NOWAIT) under the driver lock');
      dOk.lock.unlock();
      expect(yield* dOk.fault(a + PS)).toBe(0); // read_begin before the lock, as the pattern says
      yield* dOk.unbind();
    });
    expect(run(ok)).toEqual([]);

    const alloc = world();
    const dAlloc = driver(alloc);
    alloc.sim.spawn('app', 0, function* () {
      yield* primed(alloc, dAlloc);
      yield* dAlloc.lock.lock();
      alloc.sim.kernel.mightAlloc(GFP_KERNEL, 'kmalloc(GFP_KERNEL) under the driver lock');
      dAlloc.lock.unlock();
    });
    const vs = run(alloc);
    expect(kinds(vs)).toEqual(['lockdep-circular']);
    expect(vs[0]!.message).toContain(MMU_NOTIFIER_START_MAP);
    expect(vs[0]!.message).toContain('dmirror0->mutex');

    const begin = world();
    const dBegin = driver(begin);
    begin.sim.spawn('app', 0, function* () {
      yield* primed(begin, dBegin);
      yield* dBegin.lock.lock();
      yield* begin.mmn.readBegin(dBegin.sub);
      dBegin.lock.unlock();
    });
    const vs2 = run(begin);
    expect(kinds(vs2)).toEqual(['lockdep-circular']);
    expect(vs2[0]!.message).toContain(MMU_NOTIFIER_START_MAP);
    expect(vs2[0]!.message).toContain('dmirror0->mutex');
  });

  it('39 set_seq is called unconditionally in invalidate, under the driver lock: the pattern holds; a missing set_seq and an unlocked one are reported', () => {
    const ok = world();
    const dOk = driver(ok);
    ok.sim.spawn('app', 0, function* () {
      const a = yield* populate(ok.proc, 2);
      yield* dOk.bind(ok.proc.mm, a, 2 * PS);
      expect(yield* dOk.fault(a, 2)).toBe(0);
      yield* ok.proc.munmap(a, 2 * PS);
      yield* dOk.unbind();
    });
    expect(run(ok)).toEqual([]);
    expect(dOk.stats.invalidates).toBeGreaterThan(0);

    const missing = world();
    const dMissing = driver(missing, { noSetSeq: true });
    missing.sim.spawn('app', 0, function* () {
      const a = yield* populate(missing.proc, 2);
      yield* dMissing.bind(missing.proc.mm, a, 2 * PS);
      yield* dMissing.fault(a, 2);
      yield* missing.proc.munmap(a, 2 * PS);
      yield* dMissing.unbind();
    });
    const vs = run(missing);
    expect(kinds(vs)).toEqual(['mmn-set-seq-missing']);
    only(vs, 'mmn-set-seq-missing', /without calling mmu_interval_set_seq.*invariant 39/);

    const unlocked = world();
    unlocked.sim.spawn('app', 0, function* () {
      const mmn = unlocked.mmn;
      const a = yield* populate(unlocked.proc, 1);
      const sub = new MmuIntervalNotifier({
        name: 'nolock',
        *invalidate(s, _range, curSeq) {
          mmn.setSeq(s, curSeq);
          return true;
        },
      });
      yield* mmn.intervalInsert(sub, unlocked.proc.mm, a, PS);
      yield* mmn.readBegin(sub);
      yield* unlocked.proc.munmap(a, PS);
      yield* mmn.intervalRemove(sub);
    });
    const vs2 = run(unlocked);
    expect(kinds(vs2)).toEqual(['mmn-set-seq-unlocked']);
    only(vs2, 'mmn-set-seq-unlocked', /driver lock.*invariant 39/);
  });

  it('40 read_retry is called with the driver lock held (check_retry may be lockless): the pattern holds; a retry outside the lock is reported', () => {
    const ok = world();
    const dOk = driver(ok);
    ok.sim.spawn('app', 0, function* () {
      const a = yield* populate(ok.proc, 1);
      yield* dOk.bind(ok.proc.mm, a, PS);
      const seq = yield* ok.mmn.readBegin(dOk.sub);
      yield* ok.proc.madvise(a, PS, Madv.DONTNEED);
      expect(ok.mmn.checkRetry(dOk.sub, seq)).toBe(true); // lockless: only true is reliable
      expect(yield* dOk.fault(a)).toBe(0);
      yield* dOk.unbind();
    });
    expect(run(ok)).toEqual([]);

    const bad = world();
    const d = driver(bad, { retryOutsideLock: true });
    bad.sim.spawn('app', 0, function* () {
      const a = yield* populate(bad.proc, 1);
      yield* d.bind(bad.proc.mm, a, PS);
      yield* d.fault(a);
      yield* bad.proc.madvise(a, PS, Madv.DONTNEED); // set_seq under the lock: now it is known
      yield* d.fault(a);
      yield* d.unbind();
    });
    const vs = run(bad);
    expect(kinds(vs)).toEqual(['mmn-read-retry-unlocked']);
    only(vs, 'mmn-read-retry-unlocked', /without the driver lock.*invariant 40/);
  });

  it('41 insert needs mm_users > 0 and no mmap_lock; insert_locked needs mmap_lock for write: both forms used right hold; each misuse is reported', () => {
    const ok = world();
    ok.sim.spawn('app', 0, function* () {
      const { mmn, proc } = ok;
      const a = yield* populate(ok.proc, 2);
      const ops = {
        name: 'ok',
        *invalidate() {
          return true;
        },
      };
      const s1 = new MmuIntervalNotifier(ops);
      const s2 = new MmuIntervalNotifier(ops);
      expect(yield* mmn.intervalInsert(s1, proc.mm, a, PS)).toBe(0);
      yield* proc.mm.mmapLock.downWrite();
      expect(yield* mmn.intervalInsertLocked(s2, proc.mm, a + PS, PS)).toBe(0);
      proc.mm.mmapLock.upWrite();
      yield* mmn.intervalRemove(s1);
      yield* mmn.intervalRemove(s2);
    });
    expect(run(ok)).toEqual([]);

    const bad = world();
    bad.sim.spawn('app', 0, function* () {
      const { mmn, proc } = bad;
      const a = yield* populate(proc, 2);
      const ops = {
        name: 'bad',
        *invalidate() {
          return true;
        },
      };
      const first = new MmuIntervalNotifier(ops);
      yield* mmn.intervalInsert(first, proc.mm, a, PS);
      // insert_locked without mmap_lock for write.
      const s2 = new MmuIntervalNotifier(ops);
      yield* mmn.intervalInsertLocked(s2, proc.mm, a + PS, PS);
      // insert with mmap_lock held (for read).
      const s3 = new MmuIntervalNotifier(ops);
      yield* proc.mm.mmapLock.downRead();
      yield* mmn.intervalInsert(s3, proc.mm, a, PS);
      proc.mm.mmapLock.upRead();
      // insert once the last user is gone (the struct kept alive by the first subscription).
      yield* proc.exit();
      const s4 = new MmuIntervalNotifier(ops);
      expect(yield* mmn.intervalInsert(s4, proc.mm, a, PS)).toBe(-Errno.EINVAL);
      for (const s of [first, s2, s3]) yield* mmn.intervalRemove(s);
    });
    const vs = run(bad);
    expect(kinds(vs)).toEqual([
      'mmap-lock-not-held',
      'mmn-insert-mmap-locked',
      'mmn-insert-no-users',
    ]);
    only(vs, 'mmap-lock-not-held', /insert_locked.*mmap_lock held for write/);
    only(vs, 'mmn-insert-mmap-locked', /insert_locked.*invariant 41/);
    only(vs, 'mmn-insert-no-users', /mm_users 0.*invariant 41/);
  });

  it('42 remove is never called from inside a callback: remove from a task holds; remove from invalidate is reported instead of waiting for its own window', () => {
    const ok = world();
    ok.sim.spawn('app', 0, function* () {
      const a = yield* populate(ok.proc, 1);
      const sub = new MmuIntervalNotifier({
        name: 'ok',
        *invalidate() {
          return true;
        },
      });
      yield* ok.mmn.intervalInsert(sub, ok.proc.mm, a, PS);
      yield* ok.proc.munmap(a, PS);
      yield* ok.mmn.intervalRemove(sub);
    });
    expect(run(ok)).toEqual([]);

    const bad = world();
    bad.sim.spawn('app', 0, function* () {
      const mmn = bad.mmn;
      const a = yield* populate(bad.proc, 1);
      const sub = new MmuIntervalNotifier({
        name: 'self-remove',
        *invalidate(s) {
          yield* mmn.intervalRemove(s);
          return true;
        },
      });
      yield* mmn.intervalInsert(sub, bad.proc.mm, a, PS);
      yield* bad.proc.munmap(a, PS);
      yield* mmn.intervalRemove(sub);
    });
    const vs = run(bad);
    expect(kinds(vs)).toEqual(['mmn-call-from-callback']);
    only(vs, 'mmn-call-from-callback', /mmu_interval_notifier_remove.*invariant 42/);
  });

  it('43 unregister and synchronize are never called from a callback or the notifier SRCU section (put from release is fine): both the rule and the SRCU self-deadlock are reported', () => {
    const freed: string[] = [];
    const putFromRelease: MmuNotifierOps = {
      name: 'put-in-release',
      *release(sub) {
        okW.mmn.put(sub);
      },
      allocNotifier: () => new MmuNotifier(putFromRelease),
      freeNotifier: (s) => freed.push(s.ops.name),
    };
    const okW = world();
    okW.sim.spawn('app', 0, function* () {
      yield* populate(okW.proc, 1);
      expect(yield* okW.mmn.get(putFromRelease, okW.proc.mm)).toBeInstanceOf(MmuNotifier);
      yield* okW.proc.exit();
    });
    expect(run(okW)).toEqual([]);
    expect(freed).toEqual(['put-in-release']);

    const unreg = world();
    let releasing = false;
    const sub = new MmuNotifier({
      name: 'unregister-in-release',
      *release(s, mm) {
        // Idempotent, as release must be (invariant 11): unregister calls release again.
        if (releasing) return;
        releasing = true;
        yield* unreg.mmn.unregister(s, mm);
      },
    });
    unreg.sim.spawn('app', 0, function* () {
      yield* populate(unreg.proc, 1);
      yield* unreg.mmn.register(sub, unreg.proc.mm);
      yield* unreg.proc.exit();
    });
    const vs = run(unreg);
    expect(kinds(vs)).toEqual(['mmn-call-from-callback', 'srcu-sync-in-read-section']);
    only(vs, 'mmn-call-from-callback', /mmu_notifier_unregister.*invariant 43/);
    only(vs, 'srcu-sync-in-read-section', /synchronize_srcu\(mmu_notifier srcu\)/);

    const sync = world();
    sync.sim.spawn('app', 0, function* () {
      const mmn = sync.mmn;
      yield* mmn.srcu.read(function* () {
        yield* mmn.synchronize();
      });
    });
    const vs2 = run(sync);
    expect(kinds(vs2)).toEqual(['srcu-sync-in-read-section']);
  });

  /** get/put ops whose frees are counted. */
  function getPutOps(w: () => World, frees: number[]): MmuNotifierOps {
    const ops: MmuNotifierOps = {
      name: 'gp',
      allocNotifier: () => new MmuNotifier(ops),
      freeNotifier: () => {
        frees.push(w().sim.kernel.clock.now);
      },
    };
    return ops;
  }

  it('44 each get is paired with one put, and put with users 0 WARNs: balanced get/put frees once; an unbalanced one is reported at module unload; an extra put is reported', () => {
    const frees: number[] = [];
    const ok = world();
    const ops = getPutOps(() => ok, frees);
    ok.sim.spawn('drv', 0, function* () {
      yield* populate(ok.proc, 1);
      const a = (yield* ok.mmn.get(ops, ok.proc.mm)) as MmuNotifier;
      const b = (yield* ok.mmn.get(ops, ok.proc.mm)) as MmuNotifier;
      expect(b).toBe(a);
      expect(a.users).toBe(2);
      ok.mmn.put(a);
      ok.mmn.put(b);
      yield* ok.mmn.synchronize();
      expect(frees).toHaveLength(1);
      ok.life.unload('gp_drv', [ops]);
    });
    expect(run(ok)).toEqual([]);

    const leak = world();
    const opsLeak = getPutOps(() => leak, []);
    leak.sim.spawn('drv', 0, function* () {
      yield* populate(leak.proc, 1);
      const a = (yield* leak.mmn.get(opsLeak, leak.proc.mm)) as MmuNotifier;
      yield* leak.mmn.get(opsLeak, leak.proc.mm);
      leak.mmn.put(a);
      yield* leak.mmn.synchronize();
      leak.life.unload('gp_drv', [opsLeak]);
    });
    const vs = run(leak);
    expect(kinds(vs)).toEqual(['mmn-get-put-unbalanced']);
    only(vs, 'mmn-get-put-unbalanced', /1 user\(s\).*invariant 44/);

    const extra = world();
    const opsExtra = getPutOps(() => extra, []);
    extra.sim.spawn('drv', 0, function* () {
      yield* populate(extra.proc, 1);
      const a = (yield* extra.mmn.get(opsExtra, extra.proc.mm)) as MmuNotifier;
      extra.mmn.put(a);
      extra.mmn.put(a);
      yield* extra.mmn.synchronize();
    });
    const vs2 = run(extra);
    expect(kinds(vs2)).toEqual(['mmn-put-zero-users']);
    only(vs2, 'mmn-put-zero-users', /users == 0.*invariant 44/);
  });

  it('45 a module that used put calls synchronize before unloading: with it the free runs first; without it the unload is reported, and so is the free that then runs into unloaded code', () => {
    const frees: number[] = [];
    const ok = world();
    const ops = getPutOps(() => ok, frees);
    ok.sim.spawn('drv', 0, function* () {
      yield* populate(ok.proc, 1);
      ok.mmn.put((yield* ok.mmn.get(ops, ok.proc.mm)) as MmuNotifier);
      yield* ok.mmn.synchronize();
      ok.life.unload('gp_drv', [ops]);
    });
    expect(run(ok)).toEqual([]);
    expect(frees).toHaveLength(1);

    const bad = world();
    const opsBad = getPutOps(() => bad, []);
    bad.sim.spawn('drv', 0, function* () {
      yield* populate(bad.proc, 1);
      bad.mmn.put((yield* bad.mmn.get(opsBad, bad.proc.mm)) as MmuNotifier);
      bad.life.unload('gp_drv', [opsBad]);
    });
    const vs = run(bad);
    expect(kinds(vs)).toEqual(['mmn-unload-before-synchronize', 'mmn-free-after-unload']);
    only(vs, 'mmn-unload-before-synchronize', /mmu_notifier_synchronize.*invariant 45/);
    only(vs, 'mmn-free-after-unload', /unloaded.*invariant 45/);
  });

  it('43 a release that is not idempotent and calls mmu_notifier_unregister recurses: reported, stopped at a fixed depth, the same log at any JavaScript stack depth', () => {
    const logs: string[] = [];
    for (let attempt = 0; attempt < 2; attempt++) {
      const w = world();
      const sub = new MmuNotifier({
        name: 'unregister-in-release',
        *release(s, mm) {
          yield* w.mmn.unregister(s, mm); // no guard: unregister calls release again
        },
      });
      w.sim.spawn('app', 0, function* () {
        yield* populate(w.proc, 1);
        yield* w.mmn.register(sub, w.proc.mm);
        yield* w.proc.exit();
      });
      // The second run starts deeper in the JavaScript stack: its log must not change.
      const vs =
        attempt === 0
          ? run(w)
          : (function deeper(n: number): readonly Violation[] {
              return n === 0 ? run(w) : deeper(n - 1);
            })(200);
      expect(vs.filter((v) => v.kind === 'mmn-call-from-callback').length).toBeGreaterThan(0);
      expect(
        vs.some((v) =>
          /kernel stack overflow: MMU notifier callbacks nested 64 deep/.test(v.message),
        ),
      ).toBe(true);
      expect(vs.some((v) => /Maximum call stack/.test(v.message))).toBe(false);
      logs.push(w.sim.toNdjson());
    }
    expect(logs[1]).toBe(logs[0]);
  });

  it('46 free_notifier never sleeps: a non-sleeping free holds; one that sleeps is sleep-in-atomic in the SRCU callback', () => {
    for (const sleeps of [false, true]) {
      const w = world();
      const ops: MmuNotifierOps = {
        name: 'free-sleeps',
        allocNotifier: () => new MmuNotifier(ops),
        freeNotifier: () => {
          if (sleeps) w.sim.kernel.mightAlloc(GFP_KERNEL, 'kmalloc(GFP_KERNEL) in free_notifier');
          else w.sim.kernel.mightAlloc(GFP_NOWAIT, 'kmalloc(GFP_NOWAIT) in free_notifier');
        },
      };
      w.sim.spawn('drv', 0, function* () {
        yield* populate(w.proc, 1);
        w.mmn.put((yield* w.mmn.get(ops, w.proc.mm)) as MmuNotifier);
        yield* w.mmn.synchronize();
      });
      const vs = run(w);
      if (!sleeps) expect(vs).toEqual([]);
      else {
        expect(kinds(vs)).toEqual(['sleep-in-atomic']);
        only(vs, 'sleep-in-atomic', /free_notifier/);
      }
    }
  });

  it('47 hmm_range_fault runs under mmget_not_zero: the driver pattern fails cleanly once the mm is gone; a fault path without it is reported', () => {
    const ok = world();
    const d = driver(ok);
    ok.sim.spawn('app', 0, function* () {
      const a = yield* populate(ok.proc, 1);
      yield* d.bind(ok.proc.mm, a, PS);
      expect(yield* d.fault(a)).toBe(0);
      yield* ok.proc.exit(); // interval callbacks run with mm_users 0 (RELEASE, exit UNMAP)
      expect(yield* d.fault(a)).toBe(-Errno.EFAULT); // F1 refuses
      yield* d.unbind();
    });
    expect(run(ok)).toEqual([]);

    const bad = world();
    bad.sim.spawn('app', 0, function* () {
      const { proc, core } = bad;
      const a = yield* populate(proc, 1);
      mmgrab(proc.mm);
      yield* proc.exit();
      yield* proc.mm.mmapLock.downRead();
      yield* hmmRangeFault(core, {
        mm: proc.mm,
        notifierSeqChanged: () => false,
        start: a,
        end: a + PS,
        hmmPfns: [0],
        defaultFlags: HmmPfn.REQ_FAULT,
        pfnFlagsMask: 0,
      });
      proc.mm.mmapLock.upRead();
      mmdrop(core, proc.mm);
    });
    const vs = run(bad);
    expect(kinds(vs)).toEqual(['hmm-no-mm-users']);
    only(vs, 'hmm-no-mm-users', /mmget_not_zero/);
  });

  it('48 device mappings stay inside the subscription interval: the pattern clamps to it; a driver mapping a page outside is reported', () => {
    for (const ignoreInterval of [false, true]) {
      const w = world();
      const d = driver(w, { ignoreInterval });
      w.sim.spawn('app', 0, function* () {
        const a = yield* populate(w.proc, 3);
        yield* d.bind(w.proc.mm, a + PS, PS); // the middle page only
        expect(yield* d.fault(a, 3)).toBe(0);
        expect(d.size).toBe(ignoreInterval ? 3 : 1);
        yield* d.unbind();
      });
      const vs = run(w);
      if (!ignoreInterval) expect(vs).toEqual([]);
      else {
        expect(kinds(vs)).toEqual([
          'secondary-map-outside-interval',
          'secondary-map-outside-interval',
        ]);
        expect(vs[0]!.message).toMatch(/outside its interval subscription.*invariant 48/);
      }
    }
  });

  it('17 a list subscriber establishes no mapping inside an open window: counting windows (as KVM does) holds; mapping while a window is open is reported by the secondary-MMU oracle', () => {
    for (const checkInProgress of [true, false]) {
      const w = world();
      const mirror = new ListMirror(w, 'kvm0', checkInProgress);
      w.mmus.push(mirror);
      const opened = new Completion(w.sim.kernel, 'window opened');
      const tried = new Completion(w.sim.kernel, 'device tried');
      let addr = 0;
      w.sim.spawn('app', 0, function* () {
        addr = yield* populate(w.proc, 1);
        yield* w.mmn.register(mirror.sub, w.proc.mm);
        const r = new NotifierRange('CLEAR', w.proc.mm, addr, addr + PS);
        yield* w.mmn.invalidateRangeStart(r);
        opened.complete();
        yield* tried.wait();
        yield* w.mmn.invalidateRangeEnd(r);
        yield* w.mmn.unregister(mirror.sub, w.proc.mm);
      });
      let mapped = false;
      w.sim.spawn('vcpu', 1, function* () {
        yield* opened.wait();
        mapped = yield* mirror.map(w.proc.mm, addr);
        tried.complete();
      });
      const vs = run(w);
      expect(mapped).toBe(!checkInProgress);
      if (checkInProgress) expect(vs).toEqual([]);
      else {
        expect(kinds(vs)).toEqual(['secondary-map-in-window']);
        only(vs, 'secondary-map-in-window', /inside the open invalidation window.*invariant 17/);
      }
    }
  });

  it('29 no mapping survives its invalidate: a driver that ignores invalidations is caught when start returns, when the frame is freed, and when the device reads through it', () => {
    const w = world();
    const d = driver(w, { noZap: true });
    let value: number | null = null;
    w.sim.spawn('app', 0, function* () {
      const a = yield* populate(w.proc, 1);
      yield* d.bind(w.proc.mm, a, PS);
      expect(yield* d.fault(a)).toBe(0);
      yield* w.proc.munmap(a, PS);
      value = d.read(a);
      yield* d.unbind();
    });
    const vs = run(w);
    expect(kinds(vs)).toEqual([
      'secondary-mapping-survived-start',
      'secondary-mapping-to-freed-frame',
      'secondary-use-after-free',
    ]);
    only(
      vs,
      'secondary-mapping-survived-start',
      /before its start\/invalidate callback returns.*invariants 17, 29/,
    );
    only(vs, 'secondary-mapping-to-freed-frame', /still maps it.*invariants 18, 29/);
    only(vs, 'secondary-use-after-free', /which is free.*invariant 29/);
    expect(value).toBe(1); // the stale read still sees the old content
  });
});
