// Scenarios 1, 2, 4 and 16 of users-and-hardware.md §7: KVM's fault path against invalidations
// (the mmu_invalidate_seq snapshot before GUP, the in-progress range, the seq/in_progress
// barrier pair, the staleness check held under mmu_lock until the install). Probes park a task
// at a KVM scheduling point to force the interleaving each scenario describes.
import { describe, expect, it } from '@jest/globals';
import { Errno } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { Madv, NotifierRange, PAGE_SIZE, ptePfn } from '@mmnsim/mm';
import { isShadowPresent } from '@mmnsim/drivers-kvm';
import type { KvmProbePoint, Vm } from '@mmnsim/drivers-kvm';
import { firstSeq, Flag, gpa, kvmSim, ofType, runOk, vmWithMemory } from './helpers.js';
import type { KvmSimOptions } from './helpers.js';

const kinds = (vs: readonly { kind: string }[]) => vs.map((v) => v.kind);

/**
 * Scenario 1 set-up: one vCPU, memslot gfn 0x100..0x1ff ↔ hva H; page P backs gfn 0x120. The
 * vCPU faults on 0x120 and parks at `park`; meanwhile the host munmaps the page (start + end,
 * seq S → S+1); then the vCPU goes on.
 */
function scenario1(park: KvmProbePoint, o: KvmSimOptions = {}) {
  const { sim, kvm, proc, core } = kvmSim(o);
  const unmapped = new Flag(sim);
  const out = { p: -1, seqBefore: -1, load: 0, vm: null as Vm | null };
  sim.spawn('qemu', 2, function* () {
    const { vm, hva } = yield* vmWithMemory(kvm, proc, 256, { touch: false });
    out.vm = vm;
    const h = hva + 0x20 * PAGE_SIZE;
    expect(yield* proc.store(h, 0x5a5a)).toBe(0);
    out.p = ptePfn(core.pt.pte(proc.mm, h));
    const parked = new Flag(sim);
    let done = false;
    vm.probe = (point) => {
      if (point !== park || done) return;
      done = true;
      parked.set();
      return unmapped.wait();
    };
    const t = vm.vcpu(0).run(function* (cpu) {
      out.load = yield* cpu.load(gpa(0x20));
    });
    yield* parked.wait();
    out.seqBefore = vm.mmuInvalidateSeq;
    expect(yield* proc.munmap(h, PAGE_SIZE)).toBe(0);
    expect(vm.mmuInvalidateSeq).toBe(out.seqBefore + 1);
    unmapped.set();
    yield* sim.scheduler.join(t);
    yield* vm.destroy();
    yield* proc.exit();
  });
  return { sim, out, core };
}

describe('scenario 1 (users-and-hardware.md §7): a KVM fault races a complete invalidation', () => {
  it('1: munmap runs start+end between GUP and mmu_lock: is_page_fault_stale sees seq != S, the fault retries, the page reference is dropped (P freed then), and the re-fault fails GUP', () => {
    const { sim, out } = scenario1('fault:before-lock');
    runOk(sim);
    const faults = ofType(sim, 'kvm.fault').map((f) => `${f.data.result}:${f.data.why}`);
    expect(faults).toEqual(['retry:seq', 'efault:gup']);
    expect(out.load).toBe(-Errno.EFAULT);
    // No SPTE ever pointed at P; P was freed by the fault's own put, before the retry.
    expect(ofType(sim, 'kvm.spte.map')).toEqual([]);
    const freed = firstSeq(sim, 'mm.frame.free', (d) => d.pfn === out.p);
    expect(freed).toBeGreaterThan(firstSeq(sim, 'mmn.invalidate_end'));
    expect(freed).toBeLessThan(firstSeq(sim, 'kvm.fault'));
  });

  it('1: when the invalidation completes right after GUP, the second lockless pre-check already sees the new seq and retries', () => {
    const { sim, out } = scenario1('fault:after-gup');
    runOk(sim);
    expect(ofType(sim, 'kvm.fault').map((f) => `${f.data.result}:${f.data.why}`)).toEqual([
      'retry:precheck',
      'efault:gup',
    ]);
    expect(out.load).toBe(-Errno.EFAULT);
  });

  it('1 (bug): with the seq snapshot taken after GUP the same interleaving installs an SPTE to the unmapped page — kvm-stale-spte — and P is freed while the SPTE maps it', () => {
    const { sim, out } = scenario1('fault:after-gup', {
      bugs: { seqSnapshotAfterGup: true },
      stop: false,
    });
    const r = sim.run();
    const k = kinds(r.violations);
    expect(k[0]).toBe('kvm-stale-spte');
    expect(k).toContain('secondary-mapping-to-freed-frame');
    expect(r.violations[0]!.message).toContain(`frame ${out.p}`);
    // Guest memory is real: the guest read the old data through the stale SPTE, from the freed
    // frame, and both oracles saw the access.
    expect(out.load).toBe(0x5a5a);
    expect(k).toContain('secondary-use-after-free');
    expect(k).toContain('kvm-stale-access');
  });
});

/**
 * Scenario 2 set-up: an invalidation of gfns 0x120..0x12f is held open (start, no end yet);
 * vCPU 0 faults on 0x125, then vCPU 1 on 0x150.
 */
function scenario2(o: KvmSimOptions = {}) {
  const { sim, kvm, proc, mmn } = kvmSim({ vcpus: 2, cpus: 3, ...o });
  const out = { a: 0, b: 0, seqAtStart: -1, seqWhileOpen: -1, retriesWhileOpen: 0 };
  sim.spawn('qemu', 2, function* () {
    const { vm, hva } = yield* vmWithMemory(kvm, proc, 256, { touch: false });
    const range = new NotifierRange(
      'CLEAR',
      proc.mm,
      hva + 0x20 * PAGE_SIZE,
      hva + 0x30 * PAGE_SIZE,
    );
    out.seqAtStart = vm.mmuInvalidateSeq;
    expect(yield* mmn.invalidateRangeStart(range)).toBe(0);
    expect(vm.mmuInvalidateInProgress).toBe(1);
    expect([vm.mmuInvalidateRangeStart, vm.mmuInvalidateRangeEnd]).toEqual([0x120, 0x130]);
    const a = vm.vcpu(0).run(function* (cpu) {
      out.a = yield* cpu.store(gpa(0x25), 1);
    });
    yield* sim.scheduler.sleepFor(20_000);
    const b = vm.vcpu(1).run(function* (cpu) {
      out.b = yield* cpu.store(gpa(0x50), 2);
    });
    yield* sim.scheduler.join(b);
    yield* sim.scheduler.sleepFor(20_000);
    out.seqWhileOpen = vm.mmuInvalidateSeq;
    out.retriesWhileOpen = vm.stats.retries;
    if (!o.bugs) expect(isShadowPresent(vm.spte(0x125))).toBe(false);
    yield* mmn.invalidateRangeEnd(range);
    yield* sim.scheduler.join(a);
    yield* vm.destroy();
    yield* proc.exit();
  });
  return { sim, out };
}

describe('scenario 2 (users-and-hardware.md §7): a KVM fault during an in-flight invalidation', () => {
  it('2: between start and end (seq unchanged) the fault on 0x125 retries because it is in the range, while 0x150 proceeds; 0x125 completes after end', () => {
    const { sim, out } = scenario2();
    runOk(sim);
    expect(out.seqWhileOpen).toBe(out.seqAtStart);
    expect(out.retriesWhileOpen).toBeGreaterThan(1);
    expect([out.a, out.b]).toEqual([0, 0]);
    const maps = ofType(sim, 'kvm.spte.map').map((e) => e.data.gfn);
    expect(maps).toEqual([0x150, 0x125]);
    const end = firstSeq(sim, 'mmn.invalidate_end');
    expect(firstSeq(sim, 'kvm.spte.map', (d) => d.gfn === 0x125)).toBeGreaterThan(end);
    expect(firstSeq(sim, 'kvm.spte.map', (d) => d.gfn === 0x150)).toBeLessThan(end);
    const retries = ofType(sim, 'kvm.fault').filter((f) => f.data.result === 'retry');
    expect(retries.every((f) => f.data.gpa === gpa(0x25))).toBe(true);
  });

  it('2: a window that opens after the pre-checks is caught by is_page_fault_stale under mmu_lock (retry: range)', () => {
    const { sim, kvm, proc, mmn } = kvmSim();
    sim.spawn('qemu', 2, function* () {
      const { vm, hva } = yield* vmWithMemory(kvm, proc, 4);
      const parked = new Flag(sim);
      const opened = new Flag(sim);
      let once = false;
      vm.probe = (point) => {
        if (point !== 'fault:before-lock' || once) return;
        once = true;
        parked.set();
        return opened.wait();
      };
      const t = vm.vcpu(0).run(function* (cpu) {
        yield* cpu.load(gpa(1));
      });
      yield* parked.wait();
      const range = new NotifierRange('CLEAR', proc.mm, hva, hva + 4 * PAGE_SIZE);
      yield* mmn.invalidateRangeStart(range);
      opened.set();
      yield* sim.scheduler.sleepFor(10_000);
      yield* mmn.invalidateRangeEnd(range);
      yield* sim.scheduler.join(t);
      yield* vm.destroy();
      yield* proc.exit();
    });
    runOk(sim);
    const f = ofType(sim, 'kvm.fault').map((e) => `${e.data.result}:${e.data.why}`);
    expect(f[0]).toBe('retry:range');
    expect(f[f.length - 1]).toBe('fixed:slow');
  });

  it('2 (bug): a staleness check that looks at the seq only installs the SPTE of 0x125 inside the window — kvm-spte-in-invalidation, secondary-map-in-window', () => {
    const { sim } = scenario2({ bugs: { staleCheckIgnoresRange: true }, stop: false });
    const r = sim.run();
    expect(kinds(r.violations).slice(0, 2).sort()).toEqual([
      'kvm-spte-in-invalidation',
      'secondary-map-in-window',
    ]);
  });
});

/**
 * Scenario 4 set-up: the vCPU's fault snapshots seq S (no invalidation yet) and parks; the host
 * opens and ends a window over the gfn, parking between end's two writes until the vCPU ran its
 * second lockless pre-check (in_progress, barrier, seq) with the snapshot S.
 */
function scenario4(endOrderReversed: boolean) {
  const { sim, kvm, proc, mmn } = kvmSim({
    bugs: endOrderReversed ? { endOrderReversed } : {},
  });
  const seen: { inProgress: number; seq: number; snapshot: number; retry: boolean }[] = [];
  const out = { s: -1 };
  sim.spawn('qemu', 2, function* () {
    const { vm, hva } = yield* vmWithMemory(kvm, proc, 4);
    const snapped = new Flag(sim);
    const between = new Flag(sim);
    sim.bus.on('kvm.precheck').subscribe((e) => {
      if (between.value) seen.push(e.data);
    });
    let once = false;
    vm.probe = (point): TaskGen<void> | void => {
      if (point === 'fault:after-snapshot' && !once) {
        once = true;
        snapped.set();
        return between.wait();
      }
      if (point === 'end:between-writes') {
        between.set();
        // Atomic context (mmu_lock held for write): spin until the reader ran its pre-check.
        return (function* () {
          while (seen.length === 0) yield* sim.scheduler.preempt();
        })();
      }
    };
    const t = vm.vcpu(0).run(function* (cpu) {
      expect(yield* cpu.load(gpa(1))).toBe(101);
    });
    yield* snapped.wait();
    out.s = vm.mmuInvalidateSeq;
    const range = new NotifierRange('CLEAR', proc.mm, hva + PAGE_SIZE, hva + 2 * PAGE_SIZE);
    yield* mmn.invalidateRangeStart(range);
    yield* sim.scheduler.sleepFor(5_000);
    yield* mmn.invalidateRangeEnd(range);
    vm.probe = null;
    yield* sim.scheduler.join(t);
    yield* vm.destroy();
    yield* proc.exit();
  });
  return { sim, seen, out };
}

describe('scenario 4 (users-and-hardware.md §7): the seq / in_progress ordering', () => {
  it('4: end writes seq++ before in_progress-- (a scheduling point stands for the barrier): a lockless reader that reads in_progress then seq never sees in_progress == 0 with the old seq', () => {
    const { sim, seen, out } = scenario4(false);
    runOk(sim);
    const mine = seen.filter((x) => x.snapshot === out.s);
    expect(mine.length).toBeGreaterThan(0);
    for (const s of mine) {
      expect(s.inProgress > 0 || s.seq !== out.s).toBe(true);
      expect(s.retry).toBe(true);
    }
  });

  it('4 (bug): with the writes reversed the reader sees in_progress == 0 and the old seq and its pre-check passes; the check under mmu_lock still catches it (no SPTE from the stale snapshot)', () => {
    const { sim, seen, out } = scenario4(true);
    runOk(sim);
    const passed = seen.find((x) => x.snapshot === out.s && x.inProgress === 0 && x.seq === out.s);
    expect(passed).toBeDefined();
    expect(passed!.retry).toBe(false);
    const f = ofType(sim, 'kvm.fault').map((e) => `${e.data.result}:${e.data.why}`);
    expect(f).toContain('retry:seq');
  });
});

describe('scenario 16 (users-and-hardware.md §7): the staleness check stays under mmu_lock until the install', () => {
  it('16: every SPTE is installed in the same mmu_lock hold as its is_page_fault_stale check (no release of the lock by the faulting task in between)', () => {
    const { sim, kvm, proc } = kvmSim({ vcpus: 2 });
    sim.spawn('qemu', 2, function* () {
      const { vm, hva } = yield* vmWithMemory(kvm, proc, 4);
      const ts = [0, 1].map((i) =>
        vm.vcpu(i).run(function* (cpu) {
          for (let p = 0; p < 4; p++) yield* cpu.store(gpa(p, i), p);
        }),
      );
      expect(yield* proc.madvise(hva, 2 * PAGE_SIZE, Madv.DONTNEED)).toBe(0);
      for (const t of ts) yield* sim.scheduler.join(t);
      yield* vm.destroy();
      yield* proc.exit();
    });
    runOk(sim);
    const evs = sim.log!.events;
    for (const m of evs.filter((e) => e.type === 'kvm.spte.map')) {
      const before = evs.filter(
        (e) =>
          e.seq < m.seq &&
          e.task === m.task &&
          (e.type === 'lock.acquired' || e.type === 'lock.released') &&
          (e.data as { lock: string }).lock === 'kvm->mmu_lock',
      );
      expect(before[before.length - 1]!.type).toBe('lock.acquired');
    }
  });

  it('16 (bug): dropping and retaking mmu_lock between the check and the install lets an invalidation slip in: the SPTE is installed inside its window (kvm-spte-in-invalidation)', () => {
    const { sim, kvm, proc, mmn } = kvmSim({ bugs: { dropLockBeforeInstall: true }, stop: false });
    sim.spawn('qemu', 2, function* () {
      const { vm, hva } = yield* vmWithMemory(kvm, proc, 2);
      const parked = new Flag(sim);
      const opened = new Flag(sim);
      vm.probe = (point) => {
        if (point !== 'fault:lock-dropped') return;
        parked.set();
        return opened.wait();
      };
      const t = vm.vcpu(0).run(function* (cpu) {
        yield* cpu.load(gpa(0));
      });
      yield* parked.wait();
      const range = new NotifierRange('CLEAR', proc.mm, hva, hva + PAGE_SIZE);
      yield* mmn.invalidateRangeStart(range);
      opened.set();
      yield* sim.scheduler.sleepFor(10_000);
      yield* mmn.invalidateRangeEnd(range);
      yield* sim.scheduler.join(t);
      yield* vm.destroy();
      yield* proc.exit();
    });
    const r = sim.run();
    expect(kinds(r.violations)).toContain('kvm-spte-in-invalidation');
    expect(kinds(r.violations)).toContain('secondary-map-in-window');
  });
});
