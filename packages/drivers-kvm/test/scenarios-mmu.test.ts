// Scenarios 6, 7, 8, 9, 10, 11, 13 and 14 of users-and-hardware.md §7: the remote TLB flush
// and the vCPU modes, lockless walkers, yielding and frozen zaps, the KVM_BUG check, aging with
// and without A/D bits, and release on exit. Probes park a task at a KVM scheduling point to
// force the interleaving each scenario describes.
import { describe, expect, it } from '@jest/globals';
import { Errno } from '@mmnsim/core';
import type { Simulation, TaskGen } from '@mmnsim/core';
import { Frame, Madv, PAGE_SIZE, ptePfn } from '@mmnsim/mm';
import {
  isAccessTracked,
  isShadowPresent,
  KvmRequest,
  Spte,
  sptePfn,
  VcpuMode,
} from '@mmnsim/drivers-kvm';
import { firstSeq, Flag, gpa, kvmSim, ofType, runOk, vmWithMemory } from './helpers.js';
import type { KvmSimOptions } from './helpers.js';

const kinds = (vs: readonly { kind: string }[]) => vs.map((v) => v.kind);

/** `seq` of every logged event of `type` matching `pred`. */
function seqs(sim: Simulation, type: string, pred: (d: Record<string, unknown>) => boolean) {
  return sim
    .log!.events.filter((e) => e.type === type && pred(e.data as Record<string, unknown>))
    .map((e) => e.seq);
}

/**
 * Scenario 6/7 set-up: vCPU 0 touches page 3 and halts; vCPU 1 reads page 0 (G → P) and keeps
 * running guest code; the host drops G with MADV_DONTNEED; then vCPU 0 gets an interrupt.
 */
function scenario6(o: KvmSimOptions = {}) {
  const { sim, kvm, proc, core } = kvmSim({ vcpus: 2, ...o });
  const out = { p: -1, requestsOfHalted: 0, haltedDuring: false, second: -1 };
  sim.spawn('qemu', 2, function* () {
    const { vm, hva } = yield* vmWithMemory(kvm, proc, 4);
    out.p = ptePfn(core.pt.pte(proc.mm, hva));
    const loaded = new Flag(sim);
    const release = new Flag(sim);
    const t0 = vm.vcpu(0).run(function* (cpu) {
      yield* cpu.load(gpa(3));
      yield* cpu.halt();
      yield* cpu.load(gpa(3));
    });
    const t1 = vm.vcpu(1).run(function* (cpu) {
      expect(yield* cpu.load(gpa(0))).toBe(100);
      loaded.set();
      while (!release.value) yield* cpu.load(gpa(0));
      out.second = yield* cpu.load(gpa(0));
    });
    yield* loaded.wait();
    while (!vm.vcpus[0]!.halted) yield* sim.scheduler.sleepFor(100);
    expect(yield* proc.madvise(hva, PAGE_SIZE, Madv.DONTNEED)).toBe(0);
    out.requestsOfHalted = vm.vcpus[0]!.requests;
    out.haltedDuring = vm.vcpus[0]!.halted;
    release.set();
    vm.vcpu(0).interrupt();
    yield* sim.scheduler.join(t0);
    yield* sim.scheduler.join(t1);
    yield* vm.destroy();
    yield* proc.exit();
  });
  return { sim, out };
}

describe('scenario 6 (users-and-hardware.md §7): the remote flush completes before range_start returns', () => {
  it('6: KVM_REQ_TLB_FLUSH on both vCPUs, an IPI to the one in guest mode, waited for; it exits and flushes before re-entry; start returns after the ack, and only then is P freed', () => {
    const { sim, out } = scenario6();
    runOk(sim);
    const flush = ofType(sim, 'kvm.flush');
    expect(flush.length).toBeGreaterThan(0);
    const f = flush[0]!;
    expect(f.data.ipis).toEqual([1]);
    expect(f.data.modes).toEqual([VcpuMode.OUTSIDE_GUEST_MODE, VcpuMode.IN_GUEST_MODE]);
    const ipi = firstSeq(sim, 'kvm.ipi', (d) => d.cpu === 1);
    const exit = firstSeq(
      sim,
      'kvm.vcpu.exit',
      (d) => d.vcpu === 1 && d.reason === 'external-interrupt',
    );
    const done = firstSeq(sim, 'kvm.flush.done');
    const start = firstSeq(sim, 'mmn.invalidate_start', (d) => d.event === 'CLEAR');
    const freed = firstSeq(sim, 'mm.frame.free', (d) => d.pfn === out.p);
    expect(f.seq).toBeLessThan(ipi);
    expect(ipi).toBeLessThan(exit);
    expect(ipi).toBeLessThan(done);
    expect(done).toBeLessThan(start);
    expect(start).toBeLessThan(freed);
    // vCPU 1 flushed its guest TLB before it entered guest mode again.
    const tlb = firstSeq(sim, 'kvm.tlb.flush', (d) => d.vcpu === 1);
    const reenter = seqs(sim, 'kvm.vcpu.enter', (d) => d.vcpu === 1).find((s) => s > exit)!;
    expect(tlb).toBeGreaterThan(exit);
    expect(tlb).toBeLessThan(reenter);
    // The halted vCPU got the request bit too, and was not woken by it.
    expect(out.requestsOfHalted & KvmRequest.TLB_FLUSH).toBe(KvmRequest.TLB_FLUSH);
    expect(out.haltedDuring).toBe(true);
    expect(out.second).toBe(0); // MADV_DONTNEED: the anonymous page reads back as zeroes
  });

  it('6 (bug): with the flush left until after start returns, vCPU 1 can still use its TLB entry for G when start returns — kvm-tlb-survived-start — and reads the dropped page through it', () => {
    const { sim } = scenario6({ bugs: { flushAfterStartReturns: true }, stop: false });
    const r = sim.run();
    const k = kinds(r.violations);
    expect(k[0]).toBe('kvm-tlb-survived-start');
    expect(k).toContain('secondary-mapping-survived-start');
    expect(k).toContain('kvm-stale-access');
  });
});

describe('scenario 7 (users-and-hardware.md §7): a halted vCPU and NO_WAKEUP', () => {
  it('7: a flush while vCPU 1 is halted sends it no IPI and does not wake it; its request bit stays set and it flushes its TLB on the next entry', () => {
    const { sim, kvm, proc } = kvmSim({ vcpus: 2 });
    const out = { ipis: [] as number[][], halted: false, requests: 0, tlbAfterFlush: 0, v: -1 };
    sim.spawn('qemu', 2, function* () {
      const { vm, hva } = yield* vmWithMemory(kvm, proc, 2);
      const t = vm.vcpu(1).run(function* (cpu) {
        yield* cpu.load(gpa(0));
        yield* cpu.halt();
        out.v = yield* cpu.load(gpa(0));
      });
      while (!vm.vcpus[1]!.halted) yield* sim.scheduler.sleepFor(100);
      expect(yield* proc.madvise(hva, PAGE_SIZE, Madv.DONTNEED)).toBe(0);
      out.halted = vm.vcpus[1]!.halted;
      out.requests = vm.vcpus[1]!.requests;
      out.tlbAfterFlush = vm.vcpus[1]!.tlb.size;
      yield* sim.scheduler.sleepFor(10_000);
      vm.vcpu(1).interrupt();
      yield* sim.scheduler.join(t);
      yield* vm.destroy();
      yield* proc.exit();
    });
    runOk(sim);
    expect(ofType(sim, 'kvm.flush')[0]!.data.ipis).toEqual([]);
    expect(ofType(sim, 'kvm.ipi')).toEqual([]);
    expect(out.halted).toBe(true);
    expect(out.requests & KvmRequest.TLB_FLUSH).toBe(KvmRequest.TLB_FLUSH);
    expect(out.tlbAfterFlush).toBe(1); // still cached, but unusable: it flushes before entry
    const wake = firstSeq(sim, 'kvm.vcpu.halt', (d) => d.blocked === false);
    const tlb = firstSeq(sim, 'kvm.tlb.flush', (d) => d.vcpu === 1);
    const enter = seqs(sim, 'kvm.vcpu.enter', (d) => d.vcpu === 1).find((s) => s > wake)!;
    expect(wake).toBeGreaterThan(firstSeq(sim, 'kvm.flush.done'));
    expect(tlb).toBeGreaterThan(wake);
    expect(tlb).toBeLessThan(enter);
    expect(out.v).toBe(0);
  });
});

/**
 * Scenario 8 set-up (no A/D bits, so a fault on a missing SPTE tries the lockless fast path):
 * the vCPU touches gfn 0x100, then faults on 0x101 of the same table and parks inside its
 * lockless walk (READING_SHADOW_PAGE_TABLES, interrupts off) until the host's zap-all has sent
 * its flush.
 */
function scenario8(o: KvmSimOptions = {}) {
  const { sim, kvm, proc } = kvmSim({ adBits: false, ...o });
  sim.spawn('qemu', 2, function* () {
    const { vm } = yield* vmWithMemory(kvm, proc, 2);
    let flushed = false;
    sim.bus.on('kvm.flush').subscribe(() => (flushed = true));
    let once = false;
    vm.probe = (point): TaskGen<void> | void => {
      if (point !== 'walk:table' || once || vm.vcpus[0]!.stats.accesses === 0) return;
      once = true;
      return (function* () {
        while (!flushed) yield* sim.scheduler.preempt(); // interrupts are off: spin only
      })();
    };
    const t = vm.vcpu(0).run(function* (cpu) {
      yield* cpu.load(gpa(0));
      yield* cpu.load(gpa(1));
    });
    while (vm.vcpus[0]!.mode !== VcpuMode.READING_SHADOW_PAGE_TABLES)
      yield* sim.scheduler.preempt();
    yield* vm.zapAllSptes();
    yield* sim.scheduler.join(t);
    yield* vm.destroy();
    yield* proc.exit();
  });
  return sim;
}

describe('scenario 8 (users-and-hardware.md §7): a lockless SPTE walker', () => {
  it('8: the flush of a zap-all IPIs the vCPU in READING_SHADOW_PAGE_TABLES and waits until it leaves that mode; the page-table pages are freed only afterwards', () => {
    const sim = scenario8();
    runOk(sim);
    const flush = ofType(sim, 'kvm.flush')[0]!;
    expect(flush.data.modes[0]).toBe(VcpuMode.READING_SHADOW_PAGE_TABLES);
    expect(flush.data.ipis).toEqual([0]);
    const ipi = firstSeq(sim, 'kvm.ipi', (d) => d.cpu === 0);
    const free = firstSeq(sim, 'kvm.sp.free');
    expect(ipi).toBeGreaterThan(flush.seq);
    expect(free).toBeGreaterThan(ipi);
    expect(free).toBeGreaterThan(firstSeq(sim, 'kvm.flush.done'));
  });

  it('8 (bug): if only IN_GUEST_MODE vCPUs get the IPI, the flush returns at once, the tables are freed, and the walker reads a freed table page (kvm-walk-freed-table)', () => {
    const sim = scenario8({ bugs: { ipiOnlyInGuestMode: true } });
    const r = sim.run();
    expect(kinds(r.violations)).toEqual(['kvm-walk-freed-table']);
  });
});

/**
 * Scenario 9 set-up: 6 pages, `tdpYieldEvery` 2; the vCPU reads all of them and stays in guest
 * mode; host thread A drops them all (MADV_DONTNEED, blockable), and its zap yields `mmu_lock`
 * after two SPTEs; while A is off the lock, thread B drops the first two pages too.
 */
function scenario9(o: KvmSimOptions = {}) {
  const { sim, kvm, proc } = kvmSim({ cpus: 4, tdpYieldEvery: 2, ...o });
  const out = { liveAtYield: [] as boolean[], flushesAtYield: [] as number[] };
  sim.spawn('A', 2, function* () {
    const { vm, hva } = yield* vmWithMemory(kvm, proc, 6);
    const loaded = new Flag(sim);
    const release = new Flag(sim);
    const yielded = new Flag(sim);
    const bDone = new Flag(sim);
    vm.probe = (point): TaskGen<void> | void => {
      if (point !== 'zap:resched') return;
      out.liveAtYield.push(vm.vcpus[0]!.tlbLive());
      out.flushesAtYield.push(vm.stats.remoteTlbFlushes);
      if (yielded.value) return;
      yielded.set();
      return bDone.wait();
    };
    const t = vm.vcpu(0).run(function* (cpu) {
      for (let p = 0; p < 6; p++) yield* cpu.load(gpa(p));
      loaded.set();
      while (!release.value) yield* cpu.pause();
    });
    const b = sim.spawn('B', 3, function* () {
      yield* yielded.wait();
      expect(yield* proc.madvise(hva, 2 * PAGE_SIZE, Madv.DONTNEED)).toBe(0);
      bDone.set();
    });
    yield* loaded.wait();
    expect(yield* proc.madvise(hva, 6 * PAGE_SIZE, Madv.DONTNEED)).toBe(0);
    release.set();
    yield* sim.scheduler.join(t);
    yield* sim.scheduler.join(b);
    yield* vm.destroy();
    yield* proc.exit();
  });
  return { sim, out };
}

describe('scenario 9 (users-and-hardware.md §7): a TDP zap that yields', () => {
  it('9: the zap flushes the remote TLBs before it drops mmu_lock to reschedule, so a concurrent invalidation that finds the SPTEs already gone frees its pages safely', () => {
    const { sim, out } = scenario9();
    runOk(sim);
    expect(out.liveAtYield.length).toBeGreaterThanOrEqual(2);
    expect(out.liveAtYield.every((l) => !l)).toBe(true);
    expect(out.flushesAtYield[0]).toBeGreaterThanOrEqual(1);
    // Each time A released mmu_lock inside its start, a flush had completed just before.
    const evs = sim.log!.events;
    const a = evs.find(
      (e) => e.type === 'sched.spawn' && (e.data as { name: string }).name === 'A',
    )!;
    const aId = (a.data as { id: number }).id;
    let lastDone = -1;
    let checked = 0;
    let inStart = false;
    for (const e of evs) {
      if (e.task !== aId) continue;
      if (e.type === 'mmn.callback') inStart = false;
      if (e.type === 'kvm.flush.done') lastDone = e.seq;
      if (e.type === 'lock.acquired' && (e.data as { lock: string }).lock === 'kvm->mmu_lock')
        inStart = true;
      if (
        inStart &&
        e.type === 'lock.released' &&
        (e.data as { lock: string }).lock === 'kvm->mmu_lock' &&
        checked < out.liveAtYield.length
      ) {
        expect(lastDone).toBeGreaterThan(-1);
        checked++;
        lastDone = -1;
      }
    }
    expect(checked).toBe(out.liveAtYield.length);
  });

  it('9 (bug): yielding with the flush still pending lets the other thread see non-present SPTEs, skip its flush and return from start while the vCPU still caches the pages (kvm-tlb-survived-start)', () => {
    const { sim } = scenario9({ bugs: { zapYieldWithoutFlush: true } });
    const r = sim.run();
    expect(kinds(r.violations)[0]).toBe('kvm-tlb-survived-start');
  });
});

describe('scenario 10 (users-and-hardware.md §7): an atomic zap under the read lock (frozen SPTE)', () => {
  it('10: thread A freezes G; B faults on G, sees FROZEN and retries; A flushes, writes non-present, then propagates the dirty bit; B installs a fresh SPTE afterwards', () => {
    const { sim, kvm, proc, core } = kvmSim({ vcpus: 2 });
    const out = { v: -1, p: -1, dirtyBefore: 0, dirtyAfter: 0, zapped: 0 };
    sim.spawn('A', 2, function* () {
      const { vm, hva } = yield* vmWithMemory(kvm, proc, 2);
      const stored = new Flag(sim);
      const go = new Flag(sim);
      const t0 = vm.vcpu(0).run(function* (cpu) {
        yield* cpu.store(gpa(0), 77);
        stored.set();
      });
      yield* stored.wait();
      yield* sim.scheduler.join(t0);
      out.p = ptePfn(core.pt.pte(proc.mm, hva));
      core.phys.flags[out.p]! &= ~Frame.DIRTY;
      out.dirtyBefore = core.phys.flags[out.p]! & Frame.DIRTY;
      let sawFrozen = false;
      sim.bus.on('kvm.fault').subscribe((e) => {
        if (e.data.why === 'frozen') sawFrozen = true;
      });
      vm.probe = (point): TaskGen<void> | void => {
        if (point !== 'zap:frozen') return;
        go.set();
        return (function* () {
          while (!sawFrozen) yield* sim.scheduler.preempt(); // under mmu_lock: spin only
        })();
      };
      const t1 = vm.vcpu(1).run(function* (cpu) {
        while (!go.value) yield* cpu.pause();
        out.v = yield* cpu.load(gpa(0));
      });
      out.zapped = yield* vm.zapSptesShared(0x100, 0x102);
      out.dirtyAfter = core.phys.flags[out.p]! & Frame.DIRTY;
      yield* sim.scheduler.join(t1);
      yield* vm.destroy();
      yield* proc.exit();
    });
    runOk(sim);
    expect(out.zapped).toBe(1);
    expect(out.v).toBe(77);
    expect(out.dirtyBefore).toBe(0);
    expect(out.dirtyAfter).toBe(Frame.DIRTY);
    const freeze = firstSeq(sim, 'kvm.spte.freeze');
    const retry = firstSeq(sim, 'kvm.fault', (d) => d.why === 'frozen');
    const done = seqs(sim, 'kvm.flush.done', () => true).find((s) => s > retry)!;
    const zap = firstSeq(sim, 'kvm.spte.zap', (d) => d.gfn === 0x100);
    const map = seqs(sim, 'kvm.spte.map', (d) => d.gfn === 0x100 && d.vcpu === 1)[0]!;
    expect(freeze).toBeLessThan(retry);
    expect(retry).toBeLessThan(done);
    expect(done).toBeLessThan(zap);
    expect(zap).toBeLessThan(map);
    expect(ofType(sim, 'kvm.spte.zap').find((e) => e.data.gfn === 0x100)!.data.dirty).toBe(true);
  });
});

/**
 * Scenario 11 set-up: the host writes page P1 and forks (its PTE becomes read-only); the guest
 * reads G (SPTE G → P1, read-only), then writes it: the write fault's GUP breaks COW (P2).
 */
function scenario11(o: KvmSimOptions = {}) {
  const { sim, kvm, proc, core } = kvmSim(o);
  const out = { p1: -1, p2: -1, write: 1, spte: 0 };
  sim.spawn('qemu', 2, function* () {
    const { vm, hva } = yield* vmWithMemory(kvm, proc, 1);
    out.p1 = ptePfn(core.pt.pte(proc.mm, hva));
    const child = yield* proc.fork('child');
    const t = vm.vcpu(0).run(function* (cpu) {
      expect(yield* cpu.load(gpa(0))).toBe(100);
      out.write = yield* cpu.store(gpa(0), 5);
    });
    yield* sim.scheduler.join(t);
    out.p2 = ptePfn(core.pt.pte(proc.mm, hva));
    out.spte = vm.spte(0x100);
    if (typeof child !== 'number') yield* child.exit();
    yield* vm.destroy();
    yield* proc.exit();
  });
  return { sim, out };
}

describe('scenario 11 (users-and-hardware.md §7): a present leaf replaced by another pfn', () => {
  it('11: with the COW invalidation reaching KVM, the write fault finds the SPTE zapped and maps the new page P2', () => {
    const { sim, out } = scenario11();
    runOk(sim);
    expect(out.write).toBe(0);
    expect(out.p2).not.toBe(out.p1);
    expect(sptePfn(out.spte)).toBe(out.p2);
  });

  it('11 (bug): when start skips the zap (a missing notifier), the write fault overwrites SPTE(G→P1) with SPTE(G→P2) and KVM BUGs (kvm-bug-spte-pfn-change); the VM is dead', () => {
    const { sim, out } = scenario11({ bugs: { startSkipsZap: true }, stop: false });
    const r = sim.run();
    const k = kinds(r.violations);
    expect(k).toContain('kvm-spte-survived-start');
    expect(k).toContain('kvm-bug-spte-pfn-change');
    const bug = r.violations.find((v) => v.kind === 'kvm-bug-spte-pfn-change')!;
    expect(bug.message).toContain(`0x${out.p1.toString(16)}`);
    expect(out.write).toBe(-Errno.EIO);
  });
});

describe('scenario 13 (users-and-hardware.md §7): aging with and without A/D bits', () => {
  it('13 (A/D): clear_flush_young gives 1, then 0; a guest access that hits its cached translation leaves A clear (a tolerated 0); after a TLB flush the access walks, sets A, and aging gives 1; test_young never changes state and aging never flushes', () => {
    const { sim, kvm, proc, mmn } = kvmSim();
    const got: number[] = [];
    let flushesByAging = -1;
    sim.spawn('qemu', 2, function* () {
      const { vm, hva } = yield* vmWithMemory(kvm, proc, 1);
      const mm = proc.mm;
      const read = function* () {
        yield* sim.scheduler.join(
          vm.vcpu(0).run(function* (cpu) {
            yield* cpu.load(gpa(0));
          }),
        );
      };
      yield* read();
      const before = vm.stats.remoteTlbFlushRequests;
      got.push(mmn.clearFlushYoung(mm, hva, hva + PAGE_SIZE)); // 1
      got.push(mmn.clearFlushYoung(mm, hva, hva + PAGE_SIZE)); // 0
      yield* read(); // TLB hit: no walk, A stays clear
      got.push(mmn.testYoung(mm, hva)); // 0
      got.push(mmn.clearYoung(mm, hva, hva + PAGE_SIZE)); // 0
      flushesByAging = vm.stats.remoteTlbFlushRequests - before;
      yield* vm.flushRemoteTlbs();
      yield* read(); // TLB flushed on entry: the walk sets A
      got.push(mmn.testYoung(mm, hva)); // 1
      got.push(mmn.testYoung(mm, hva)); // 1: test_young does not clear
      expect((vm.spte(0x100) % PAGE_SIZE) & Spte.A).toBe(Spte.A);
      got.push(mmn.clearYoung(mm, hva, hva + PAGE_SIZE)); // 1
      yield* vm.destroy();
      yield* proc.exit();
    });
    runOk(sim);
    expect(got).toEqual([1, 0, 0, 0, 1, 1, 1]);
    expect(flushesByAging).toBe(0);
    const fills = ofType(sim, 'kvm.tlb.fill').map((e) => e.data.setAccessed);
    expect(fills).toEqual([false, true]); // the first walk found A set by make_spte
  });

  it('13 (no A/D): clear_flush_young marks the writable page dirty and makes the SPTE access-tracked; test_young then says 0; the next access (after a TLB flush) faults, the fast path restores the SPTE, and aging says 1 again', () => {
    const { sim, kvm, proc, mmn, core } = kvmSim({ adBits: false });
    const got: number[] = [];
    const out = { dirty: 0, tracked: false, restored: false };
    sim.spawn('qemu', 2, function* () {
      const { vm, hva } = yield* vmWithMemory(kvm, proc, 1);
      const mm = proc.mm;
      const run = function* (write: boolean) {
        yield* sim.scheduler.join(
          vm.vcpu(0).run(function* (cpu) {
            if (write) yield* cpu.store(gpa(0), 9);
            else yield* cpu.load(gpa(0));
          }),
        );
      };
      yield* run(true);
      const p = ptePfn(core.pt.pte(mm, hva));
      core.phys.flags[p]! &= ~Frame.DIRTY;
      got.push(mmn.clearFlushYoung(mm, hva, hva + PAGE_SIZE)); // 1
      out.dirty = core.phys.flags[p]! & Frame.DIRTY;
      out.tracked = isAccessTracked(vm.spte(0x100), false);
      got.push(mmn.testYoung(mm, hva)); // 0
      yield* vm.flushRemoteTlbs();
      yield* run(false);
      out.restored = isShadowPresent(vm.spte(0x100)) && !isAccessTracked(vm.spte(0x100), false);
      got.push(mmn.clearFlushYoung(mm, hva, hva + PAGE_SIZE)); // 1
      yield* vm.destroy();
      yield* proc.exit();
    });
    runOk(sim);
    expect(got).toEqual([1, 0, 1]);
    expect(out.dirty).toBe(Frame.DIRTY);
    expect(out.tracked).toBe(true);
    expect(out.restored).toBe(true);
    const fast = ofType(sim, 'kvm.fault').filter((e) => e.data.why === 'fast');
    expect(fast.map((e) => e.data.result)).toEqual(['fixed']);
  });
});

describe('scenario 14 (users-and-hardware.md §7): release on process exit with a live VM', () => {
  it('14: exit_mmap calls release, which zaps every SPTE before any page is freed; a vCPU that runs afterwards faults and fails (no mm users)', () => {
    const { sim, kvm, proc, core } = kvmSim();
    const out = { pfns: [] as number[], after: [] as number[] };
    sim.spawn('qemu', 2, function* () {
      const { vm, hva } = yield* vmWithMemory(kvm, proc, 4);
      for (let p = 0; p < 4; p++) out.pfns.push(ptePfn(core.pt.pte(proc.mm, hva + p * PAGE_SIZE)));
      const t = vm.vcpu(0).run(function* (cpu) {
        for (let p = 0; p < 4; p++) yield* cpu.load(gpa(p));
        yield* cpu.halt();
        out.after.push(yield* cpu.load(gpa(0)));
        out.after.push(yield* cpu.store(gpa(2), 1));
      });
      while (!vm.vcpus[0]!.halted) yield* sim.scheduler.sleepFor(100);
      yield* proc.exit(); // the VMM exits; the VM (its fd) lives on
      expect(proc.mm.exited).toBe(true);
      expect(vm.tdp.countPresent()).toBe(0);
      vm.vcpu(0).interrupt();
      yield* sim.scheduler.join(t);
      yield* vm.destroy();
      expect(proc.mm.freed).toBe(true);
    });
    runOk(sim);
    const zaps = ofType(sim, 'kvm.spte.zap');
    expect(zaps.length).toBe(4);
    const release = firstSeq(sim, 'mmn.release');
    const firstFree = Math.min(
      ...out.pfns.map((p) => firstSeq(sim, 'mm.frame.free', (d) => d.pfn === p)),
    );
    expect(Math.max(...zaps.map((z) => z.seq))).toBeLessThan(firstFree);
    expect(firstSeq(sim, 'kvm.sp.free')).toBeLessThan(firstFree);
    expect(release).toBeLessThan(firstFree);
    expect(out.after).toEqual([-Errno.EFAULT, -Errno.EFAULT]);
    expect(
      ofType(sim, 'kvm.fault')
        .map((e) => e.data.why)
        .slice(-2),
    ).toEqual(['no mm users', 'no mm users']);
  });
});
