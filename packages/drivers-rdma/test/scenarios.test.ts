// The RDMA scenarios of users-and-hardware.md §7 (17, 18, 20, 22): each sets up the smallest
// simulation that shows the behaviour, with the notifier oracles (SecondaryMmuOracle over the NIC)
// and the rdma oracle attached, and asserts what the kernel does. Interleavings that matter are
// forced with a scripted strategy driven by the events of the run.
import { describe, expect, it } from '@jest/globals';
import { Completion, Errno } from '@mmnsim/core';
import type { RunResult, TaskGen } from '@mmnsim/core';
import {
  Map_,
  MAX_OOM_REAP_RETRIES,
  MmuNotifier,
  MmuNotifierSubsystem,
  NotifierRange,
  PAGE_SIZE,
  Prot,
  ptePfn,
  pteMapsPage,
} from '@mmnsim/mm';
import type { MmCore, Process } from '@mmnsim/mm';
import { HMM_RANGE_DEFAULT_TIMEOUT_NS, IbAccess } from '@mmnsim/drivers-rdma';
import type { OdpMr, PinnedMr, RdmaBug, WorkCompletion } from '@mmnsim/drivers-rdma';
import { ofType, rdmaSim, runOk, scripted } from './helpers.js';

const RW = Prot.READ | Prot.WRITE;
const ANON = Map_.PRIVATE | Map_.ANONYMOUS;
const ALL = IbAccess.LOCAL_WRITE | IbAccess.REMOTE_WRITE | IbAccess.REMOTE_READ;
const MiB = 0x100000;
const KiB = 1024;

/** The frame the CPU maps at `va` of `proc`, or -1. */
function cpuPfn(proc: Process, core: MmCore, va: number): number {
  const pte = core.pt.pte(proc.mm, va);
  return pteMapsPage(pte) ? ptePfn(pte) : -1;
}

/**
 * Scenario 17: an ODP MR over [V, V + 1 MiB); the NIC writes at V + 8 KiB, which it has no
 * translation for. The fault handler takes its snapshot (read_begin, hmm_range_fault) and, before
 * it takes umem_mutex, the process unmaps that page and maps a new one there. `trigger` names the
 * event after which the unmapper runs.
 */
function scenario17(bugs: RdmaBug[], trigger: 'rdma.odp.snapshot' | 'rdma.odp.dma_map') {
  let phase: 'fault' | 'invalidate' | 'done' = 'fault';
  const w = rdmaSim({
    strategy: scripted(() => (phase === 'invalidate' ? ['unmapper'] : [])),
    bugs,
    stopOnViolation: bugs.length === 0,
  });
  const { sim, nic, proc, qp, mm } = w;
  const go = new Completion(sim.kernel, 'unmapper.go');
  const seen = {
    V: 0,
    P: -1,
    Pgen: -1,
    Q: -1,
    Qgen: -1,
    other: 0,
    otherPfn: -1,
    loads: [] as number[],
  };
  let wc: WorkCompletion | null = null;
  const arm = () => {
    if (phase !== 'fault') return;
    phase = 'invalidate';
    go.complete();
  };
  if (trigger === 'rdma.odp.snapshot') {
    sim.bus.on('rdma.odp.snapshot').subscribe((e) => {
      if (e.data.fault && e.data.result === 0) arm();
    });
  } else {
    sim.bus.on('rdma.odp.dma_map').subscribe(() => arm());
  }
  sim.spawn('app', 0, function* () {
    const V = yield* proc.mmap(0, MiB, RW, ANON);
    seen.V = V;
    const mr = yield* nic.registerOdpMr(proc, V, MiB, ALL); // nothing present yet: an empty MTT
    if (typeof mr === 'number') throw new Error(`registerOdpMr: ${mr}`);
    yield* proc.store(V + 8 * KiB, 42); // page P, mapped by the CPU only
    // Another mapping, its page table already there: its second page is allocated later.
    const other = yield* proc.mmap(V + 4 * MiB, 8 * KiB, RW, ANON | Map_.FIXED);
    yield* proc.store(other, 1);
    seen.other = other + 4 * KiB;
    seen.P = cpuPfn(proc, mm.core, V + 8 * KiB);
    seen.Pgen = mm.core.phys.generation[seen.P]!;
    const unmapper = sim.spawn('unmapper', 0, function* (): TaskGen<void> {
      yield* go.wait();
      yield* proc.munmap(V + 8 * KiB, 4 * KiB); // P is freed
      // Another mapping of the process gets P as its data page (the allocator hands out the
      // most recently freed frame, and that mapping's page table exists already).
      yield* proc.store(seen.other, 1234);
      seen.otherPfn = cpuPfn(proc, mm.core, seen.other);
      yield* proc.mmap(V + 8 * KiB, 4 * KiB, RW, ANON | Map_.FIXED);
      yield* proc.store(V + 8 * KiB, 77); // the new page Q
      seen.Q = cpuPfn(proc, mm.core, V + 8 * KiB);
      seen.Qgen = mm.core.phys.generation[seen.Q]!;
      phase = 'done';
    });
    wc = yield* qp.execute({
      opcode: 'RDMA_WRITE',
      remote: { mr, addr: V + 8 * KiB + 4 },
      data: [99],
    });
    yield* sim.scheduler.join(unmapper);
    seen.loads = [
      yield* proc.load(V + 8 * KiB),
      yield* proc.load(V + 8 * KiB + 4),
      yield* proc.load(seen.other + 4),
    ];
    yield* nic.deregisterMr(mr);
    yield* proc.exit();
  });
  return { ...w, seen, wc: () => wc!, phase: () => phase };
}

describe('users-and-hardware.md §7 scenario 17: ODP fault racing an invalidation', () => {
  it('scenario 17: read_retry under umem_mutex sees the collision, the fault retries, and the MTT never points to the freed page', () => {
    const s = scenario17([], 'rdma.odp.snapshot');
    runOk(s.sim);
    expect(s.phase()).toBe('done');
    const kworker = s.nic.faultTask.id;
    // The first snapshot was stale: read_retry said so under the lock, the fault path retried.
    const retries = ofType(s.sim, 'mmn.read_retry').filter((e) => e.task === kworker);
    expect(retries.map((e) => e.data.retry)).toEqual([true, false]);
    expect(s.nic.odpStats.collisions).toBe(1);
    // The device translation only ever pointed at the new page Q, never at (P, its generation).
    const maps = ofType(s.sim, 'smmu.map').map((e) => [e.data.pfn, e.data.gen]);
    expect(maps).toEqual([[s.seen.Q, s.seen.Qgen]]);
    expect(maps).not.toContainEqual([s.seen.P, s.seen.Pgen]);
    // The NIC's write landed in the process's current page.
    expect(s.wc().status).toBe('SUCCESS');
    expect(s.wc().faults).toBe(1);
    expect(s.seen.loads).toEqual([77, 99, 0]);
    expect(s.seen.otherPfn).toBe(s.seen.P); // the freed page went to another mapping
  });

  it('scenario 17, bug: without read_retry the MTT is programmed from the stale snapshot and the NIC writes into the freed page', () => {
    const s = scenario17(['no-read-retry'], 'rdma.odp.snapshot');
    const r = s.sim.run();
    const kinds = r.violations.map((v) => v.kind);
    expect(kinds[0]).toBe('odp-mtt-update-unchecked');
    expect(kinds).toContain('secondary-use-after-free');
    // The MTT entry was made from (P, old generation): DMA into memory the mm freed.
    const maps = ofType(s.sim, 'smmu.map').map((e) => [e.data.pfn, e.data.gen]);
    expect(maps).toContainEqual([s.seen.P, s.seen.Pgen]);
    // The device's write went to P, which now belongs to another mapping of the process.
    expect(s.seen.otherPfn).toBe(s.seen.P);
    expect(s.seen.loads).toEqual([77, 0, 99]);
  });

  it('scenario 17, bug: an MTT update the NIC executes after umem_mutex was dropped installs a translation to the freed page', () => {
    const s = scenario17(['mtt-after-unlock'], 'rdma.odp.dma_map');
    const r = s.sim.run();
    const kinds = r.violations.map((v) => v.kind);
    expect(kinds[0]).toBe('odp-mtt-update-unlocked');
    expect(kinds).toContain('secondary-use-after-free');
    expect(s.seen.loads).toEqual([77, 0, 99]);
  });
});

describe('users-and-hardware.md §7 scenario 18: read_begin blocks during an invalidation', () => {
  it('scenario 18: a device fault during an open invalidation window of the MR sleeps in read_begin until the window ends, then maps', () => {
    const { sim, nic, proc, qp } = rdmaSim();
    const mmn = sim.get(MmuNotifierSubsystem);
    const release = new Completion(sim.kernel, 'window.release');
    const entered = new Completion(sim.kernel, 'window.entered');
    // A classic subscriber that holds every invalidation window open until `release`: the
    // interval pass (the MR's invalidate) has run, the mm's sequence is odd.
    const holder = new MmuNotifier({
      name: 'window-holder',
      *invalidateRangeStart() {
        entered.complete();
        yield* release.wait();
        return 0;
      },
    });
    let V = 0;
    let wc: WorkCompletion | null = null;
    sim.bus.on('mmn.wait').subscribe((e) => {
      if (e.task === nic.faultTask.id) release.complete(); // read_begin sleeps: let the window end
    });
    sim.spawn('app', 0, function* () {
      V = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, ANON);
      for (let p = 0; p < 4; p++) yield* proc.store(V + p * PAGE_SIZE, p + 1);
      const mr = yield* nic.registerOdpMr(proc, V, 4 * PAGE_SIZE, ALL); // maps all 4 pages
      if (typeof mr === 'number') throw new Error(`registerOdpMr: ${mr}`);
      yield* mmn.register(holder, proc.mm);
      const madv = sim.spawn('madvise', 0, function* (): TaskGen<void> {
        yield* proc.madvise(V, PAGE_SIZE, 4); // MADV_DONTNEED of page 0: a CLEAR window
      });
      yield* entered.wait(); // the window is open; the MR's MTT entry of page 0 is gone
      wc = yield* qp.execute({ opcode: 'RDMA_READ', remote: { mr, addr: V }, length: 8 });
      yield* sim.scheduler.join(madv);
      yield* mmn.unregister(holder, proc.mm);
      yield* nic.deregisterMr(mr);
      yield* proc.exit();
    });
    runOk(sim);
    const kworker = nic.faultTask.id;
    const wait = ofType(sim, 'mmn.wait').find((e) => e.task === kworker)!;
    expect(wait.data.why).toBe('read_begin');
    const end = ofType(sim, 'mmn.invalidate_end').find((e) => e.data.event === 'CLEAR')!;
    const begin = ofType(sim, 'mmn.read_begin').filter((e) => e.task === kworker);
    const remap = ofType(sim, 'smmu.map').filter((e) => e.data.va === V && e.seq > wait.seq);
    // read_begin slept, returned only after the window's end, and only then was page 0 mapped.
    expect(begin.map((e) => e.data.waited)).toEqual([true]);
    expect(wait.seq).toBeLessThan(end.seq);
    expect(begin[0]!.seq).toBeGreaterThan(end.seq);
    expect(remap).toHaveLength(1);
    expect(remap[0]!.seq).toBeGreaterThan(end.seq);
    // DONTNEED dropped page 0: the device reads the zero-filled page the fault brought in.
    expect(wc!.status).toBe('SUCCESS');
    expect(wc!.data).toEqual([0, 0]);
  });

  /**
   * An invalidation storm: another kernel path takes mmap_lock for write, waits (the fault
   * handler, which has done its read_begin, queues behind it for mmap_lock), opens and closes a
   * CLEAR window on page 3 of the MR — the MR's invalidate sets its sequence — and releases the
   * lock, `cycles` times (as the mm tests open windows directly). Each hmm_range_fault that
   * follows sees the collision and returns -EBUSY.
   */
  function storm(timeoutNs: number, cycles: number) {
    const w = rdmaSim({ odpFaultTimeoutNs: timeoutNs, maxSteps: 1_000_000 });
    const { sim, nic, proc, qp, mm } = w;
    const out = { wc: null as WorkCompletion | null, cycles: 0, start: 0, end: 0 };
    sim.spawn('app', 0, function* () {
      const V = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, ANON);
      const mr = yield* nic.registerOdpMr(proc, V, 4 * PAGE_SIZE, ALL);
      if (typeof mr === 'number') throw new Error(`registerOdpMr: ${mr}`);
      const lock = proc.mm.mmapLock;
      const st = sim.spawn('storm', 0, function* (): TaskGen<void> {
        for (let i = 0; i < cycles; i++) {
          yield* lock.downWrite();
          yield* sim.scheduler.sleepFor(1_000);
          const range = new NotifierRange('CLEAR', proc.mm, V + 3 * PAGE_SIZE, V + 4 * PAGE_SIZE);
          yield* mm.core.notifiers.invalidateRangeStart(range);
          yield* mm.core.notifiers.invalidateRangeEnd(range);
          lock.upWrite();
          out.cycles++;
        }
      });
      yield* sim.scheduler.sleepFor(500); // the storm holds mmap_lock now
      out.start = sim.clock.now;
      out.wc = yield* qp.execute({ opcode: 'RDMA_WRITE', remote: { mr, addr: V }, data: [1] });
      out.end = sim.clock.now;
      yield* sim.scheduler.join(st);
      yield* nic.deregisterMr(mr);
      yield* proc.exit();
    });
    return { ...w, out };
  }

  it('scenario 18: hmm_range_fault returning -EBUSY (an invalidation collided) is retried from read_begin while the deadline has not passed, and the fault then succeeds', () => {
    const s = storm(HMM_RANGE_DEFAULT_TIMEOUT_NS, 5);
    runOk(s.sim);
    const st = s.nic.odpStats;
    expect(st.busyRetries).toBe(5);
    expect(st.timeouts).toBe(0);
    expect(s.out.wc!.status).toBe('SUCCESS');
    const snaps = ofType(s.sim, 'rdma.odp.snapshot').filter((e) => e.data.fault);
    expect(snaps.map((e) => e.data.result)).toEqual([
      ...new Array<number>(5).fill(-Errno.EBUSY),
      0,
    ]);
  });

  it('scenario 18: under a storm that outlasts the deadline (HMM_RANGE_DEFAULT_TIMEOUT, here odpFaultTimeoutNs = 20 µs) the fault gives up with -EBUSY and the work request fails', () => {
    const s = storm(20_000, 1_000);
    runOk(s.sim);
    const st = s.nic.odpStats;
    expect(st.timeouts).toBe(1);
    expect(st.busyRetries).toBeGreaterThan(5);
    expect(s.out.wc!.status).toBe('REM_ACCESS_ERR');
    const snaps = ofType(s.sim, 'rdma.odp.snapshot').filter((e) => e.data.fault);
    expect(snaps.every((e) => e.data.result === -Errno.EBUSY)).toBe(true);
    // It kept retrying for the whole deadline, and not much longer.
    expect(s.out.end - s.out.start).toBeGreaterThan(20_000);
    expect(s.out.end - s.out.start).toBeLessThan(30_000);
  });
});

describe('users-and-hardware.md §7 scenario 20: ODP non-blockable invalidation (OOM reaper)', () => {
  function reap(bugs: RdmaBug[]) {
    const w = rdmaSim({ bugs, stopOnViolation: false });
    const { sim, nic, proc, mm } = w;
    const out: { reaped?: boolean; before: number[]; after: number[]; mr?: OdpMr } = {
      before: [],
      after: [],
    };
    sim.spawn('app', 0, function* () {
      const V = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, ANON);
      for (let p = 0; p < 4; p++) yield* proc.store(V + p * PAGE_SIZE, p + 1);
      const mr = yield* nic.registerOdpMr(proc, V, 4 * PAGE_SIZE, ALL);
      if (typeof mr === 'number') throw new Error(`registerOdpMr: ${mr}`);
      out.mr = mr;
      out.before = [...mr.mtt.dma];
      out.reaped = yield* mm.oomReap(proc);
      out.after = [...mr.mtt.dma];
    });
    return { ...w, out, result: (): RunResult => sim.run() };
  }

  it('scenario 20: the invalidate op returns false without touching anything, the core returns -EAGAIN, the reaper skips the VMA, nothing sleeps', () => {
    const s = reap([]);
    const r = s.result();
    expect(r.violations).toEqual([]);
    expect(s.out.reaped).toBe(false);
    // Every attempt: a non-blockable UNMAP start, refused by the MR, -EAGAIN from the core.
    const starts = ofType(s.sim, 'mmn.invalidate_start').filter((e) => e.data.event === 'UNMAP');
    expect(starts).toHaveLength(MAX_OOM_REAP_RETRIES);
    expect(starts.every((e) => e.data.result === -Errno.EAGAIN)).toBe(true);
    const ops = ofType(s.sim, 'rdma.odp.invalidate');
    expect(ops.every((e) => !e.data.blockable && !e.data.result && e.data.unmapped === 0)).toBe(
      true,
    );
    expect(s.nic.odpStats.refused).toBe(MAX_OOM_REAP_RETRIES);
    // MTT untouched, umem_mutex never taken, no UMR posted during the reap.
    expect(s.out.after).toEqual(s.out.before);
    expect(s.out.mr!.mtt.present).toBe(4);
    expect(ofType(s.sim, 'rdma.umr.post').filter((e) => e.data.op === 'zap')).toHaveLength(0);
    expect(ofType(s.sim, 'mmn.set_seq')).toHaveLength(0);
  });

  it('scenario 20, bug: an op that handles the non-blockable range (zap UMR and wait) sleeps in a non-blockable context', () => {
    const s = reap(['umr-in-nonblockable']);
    const r = s.result();
    const sleep = r.violations.find((v) => v.kind === 'sleep-in-atomic');
    expect(sleep).toBeDefined();
    expect(sleep!.message).toContain('non-blockable invalidate');
  });
});

describe('users-and-hardware.md §7 scenario 22: pinned MR vs munmap and migration', () => {
  it('scenario 22: after munmap and a new mapping at the same address, NIC writes still reach the pinned pages (not the new ones); the pages survive until deregistration and cannot migrate', () => {
    const { sim, nic, proc, qp, mm, rdma } = rdmaSim({ memlockLimitPages: 8 });
    const out = {
      frames: [] as number[],
      freedEarly: false,
      migrate: [] as number[],
      reclaimed: 0,
      wc: null as WorkCompletion | null,
      read: null as WorkCompletion | null,
      pinnedWords: [] as number[],
      cpu: [] as number[],
      pinnedVm: [] as number[],
      freedAfter: false,
    };
    let deregistering = false;
    sim.bus.on('mm.frame.free').subscribe((e) => {
      if (!deregistering && out.frames.includes(e.data.pfn)) out.freedEarly = true;
    });
    sim.spawn('app', 0, function* () {
      const V = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, ANON);
      for (let p = 0; p < 4; p++) yield* proc.store(V + p * PAGE_SIZE, p + 1);
      const mr = (yield* nic.registerPinnedMr(proc, V, 4 * PAGE_SIZE, ALL)) as PinnedMr;
      out.frames = [...mr.frames];
      out.pinnedVm.push(rdma.pinnedVm(proc.mm));
      yield* proc.munmap(V, 4 * PAGE_SIZE);
      yield* proc.mmap(V, 4 * PAGE_SIZE, RW, ANON | Map_.FIXED);
      for (let p = 0; p < 4; p++) yield* proc.store(V + p * PAGE_SIZE, 100 + p);
      for (const pfn of out.frames) out.migrate.push(yield* mm.migrate(pfn));
      out.reclaimed = yield* mm.reclaim(64);
      out.wc = yield* qp.execute({
        opcode: 'RDMA_WRITE',
        remote: { mr, addr: V + PAGE_SIZE },
        data: [555],
      });
      out.read = yield* qp.execute({ opcode: 'RDMA_READ', remote: { mr, addr: V }, length: 4 });
      out.pinnedWords = out.frames.map((pfn) => mm.core.phys.read(pfn, 0));
      for (let p = 0; p < 4; p++) out.cpu.push(yield* proc.load(V + p * PAGE_SIZE));
      deregistering = true;
      yield* nic.deregisterMr(mr);
      out.pinnedVm.push(rdma.pinnedVm(proc.mm));
      out.freedAfter = out.frames.every((pfn) => mm.core.phys.isFree(pfn));
      yield* proc.exit();
    });
    runOk(sim);
    expect(out.wc!.status).toBe('SUCCESS');
    // The device wrote into the second pinned page, which keeps its old contents otherwise.
    expect(out.pinnedWords).toEqual([1, 555, 3, 4]);
    expect(out.read!.data).toEqual([1]);
    // The process sees only its new memory.
    expect(out.cpu).toEqual([100, 101, 102, 103]);
    // Pinned pages: not freed by munmap, not migrated (-EBUSY), not reclaimed; freed at dereg.
    expect(out.freedEarly).toBe(false);
    expect(out.migrate).toEqual([-Errno.EBUSY, -Errno.EBUSY, -Errno.EBUSY, -Errno.EBUSY]);
    expect(out.freedAfter).toBe(true);
    expect(out.pinnedVm).toEqual([4, 0]);
    // DMA through the pinned MTT after munmap is reported as device accesses, not as violations.
    expect(ofType(sim, 'smmu.access').filter((e) => e.data.mmu === 'mlx5_0/pinned')).toHaveLength(
      2,
    );
  });

  it('scenario 22: pinned_vm is accounted against RLIMIT_MEMLOCK: a registration over the limit fails with -ENOMEM and says why, and nothing stays pinned', () => {
    const { sim, nic, proc, rdma, mm } = rdmaSim({ memlockLimitPages: 6 });
    const out: { first?: number; second?: number; vm: number[]; pins: number } = {
      vm: [],
      pins: 0,
    };
    sim.spawn('app', 0, function* () {
      const V = yield* proc.mmap(0, 8 * PAGE_SIZE, RW, ANON);
      const a = yield* nic.registerPinnedMr(proc, V, 4 * PAGE_SIZE, ALL);
      out.first = typeof a === 'number' ? a : 0;
      out.vm.push(rdma.pinnedVm(proc.mm));
      const b = yield* nic.registerPinnedMr(proc, V + 4 * PAGE_SIZE, 4 * PAGE_SIZE, ALL);
      out.second = typeof b === 'number' ? b : 0;
      out.vm.push(rdma.pinnedVm(proc.mm));
      const pinned = mm.core.phys.pincount;
      for (let i = 0; i < pinned.length; i++) out.pins += pinned[i]!;
      if (typeof a !== 'number') yield* nic.deregisterMr(a);
      out.vm.push(rdma.pinnedVm(proc.mm));
      yield* proc.exit();
    });
    runOk(sim);
    expect(out.first).toBe(0);
    expect(out.second).toBe(-Errno.ENOMEM);
    expect(out.vm).toEqual([4, 4, 0]);
    expect(out.pins).toBe(4);
    const fail = ofType(sim, 'rdma.mr.reg_fail')[0]!;
    expect(fail.data.errno).toBe(-Errno.ENOMEM);
    expect(fail.data.reason).toContain('pinned_vm 8 pages, above the limit of 6');
    expect(nic.lastError).toBe(fail.data.reason);
  });
});
