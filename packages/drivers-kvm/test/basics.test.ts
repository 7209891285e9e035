// The VM model's basic behaviour: guest memory is the host's frames, the fault path and guest
// TLB, memslots and their lookup, the plugin's options, the SecondaryMmu view and destruction.
// Linux virt/kvm/kvm_main.c (~v6.13) and arch/x86/kvm/mmu/{mmu,tdp_mmu}.c decide.
import { describe, expect, it } from '@jest/globals';
import { ConfigError, Errno, Simulation } from '@mmnsim/core';
import {
  Madv,
  mmPlugin,
  NotifierRange,
  PAGE_SIZE,
  ptePfn,
  SecondaryMmuContribution,
} from '@mmnsim/mm';
import {
  isShadowPresent,
  kvmPlugin,
  MemslotFlags,
  Spte,
  sptePfn,
  VcpuMode,
} from '@mmnsim/drivers-kvm';
import type { Vm } from '@mmnsim/drivers-kvm';
import { ANON, gpa, GPA_BASE, kvmSim, ofType, runOk, RW, vmWithMemory } from './helpers.js';

describe('guest memory is the host process memory', () => {
  it('guest stores land in the host frame the process sees, and host stores are seen by the guest', () => {
    const { sim, kvm, proc, core } = kvmSim();
    const got: number[] = [];
    sim.spawn('qemu', 2, function* () {
      const { vm, hva } = yield* vmWithMemory(kvm, proc, 4);
      const t = vm.vcpu(0).run(function* (cpu) {
        got.push(yield* cpu.load(gpa(1))); // written by the host: 101
        expect(yield* cpu.store(gpa(2, 5), 0xabcd)).toBe(0);
        got.push(yield* cpu.load(gpa(2, 5)));
      });
      yield* sim.scheduler.join(t);
      // The host reads what the guest wrote, through its own page table.
      got.push(yield* proc.load(hva + 2 * PAGE_SIZE + 20));
      const spte = vm.spte(0x102);
      expect(isShadowPresent(spte)).toBe(true);
      expect(sptePfn(spte)).toBe(ptePfn(core.pt.pte(proc.mm, hva + 2 * PAGE_SIZE)));
      yield* vm.destroy();
      yield* proc.exit();
    });
    runOk(sim);
    expect(got).toEqual([101, 0xabcd, 0xabcd]);
  });

  it('the first access faults (EPT violation, GUP, SPTE installed with A/D), later ones hit the guest TLB', () => {
    const { sim, kvm, proc } = kvmSim();
    let vmRef: Vm | null = null;
    sim.spawn('qemu', 2, function* () {
      const { vm } = yield* vmWithMemory(kvm, proc, 2);
      vmRef = vm;
      const t = vm.vcpu(0).run(function* (cpu) {
        for (let i = 0; i < 5; i++) yield* cpu.store(gpa(0, i), i);
        for (let i = 0; i < 5; i++) expect(yield* cpu.load(gpa(0, i))).toBe(i);
      });
      yield* sim.scheduler.join(t);
      const f = vm.spte(0x100) % PAGE_SIZE;
      expect(f & (Spte.R | Spte.W | Spte.A | Spte.D | Spte.MMU_PRESENT)).toBe(
        Spte.R | Spte.W | Spte.A | Spte.D | Spte.MMU_PRESENT,
      );
      yield* vm.destroy();
      yield* proc.exit();
    });
    runOk(sim);
    const vm = vmRef!;
    const s = vm.vcpus[0]!.stats;
    expect(vm.stats.faults).toBe(1);
    expect(vm.stats.installed).toBe(1);
    expect(s.eptViolations).toBe(1);
    expect(s.tlbFills).toBe(1);
    expect(s.accesses).toBe(10);
    const faults = ofType(sim, 'kvm.fault');
    expect(faults.map((f) => [f.data.result, f.data.write])).toEqual([['fixed', true]]);
  });

  it('a read of untouched anonymous memory maps the shared zero page read-only; the write that follows breaks COW and retries once (its own GUP opened a window)', () => {
    const { sim, kvm, proc } = kvmSim();
    sim.spawn('qemu', 2, function* () {
      const { vm } = yield* vmWithMemory(kvm, proc, 1, { touch: false });
      const t = vm.vcpu(0).run(function* (cpu) {
        expect(yield* cpu.load(gpa(0))).toBe(0);
        expect(sptePfn(vm.spte(0x100))).toBe(0);
        expect((vm.spte(0x100) % PAGE_SIZE) & Spte.W).toBe(0);
        expect(yield* cpu.store(gpa(0), 7)).toBe(0);
        expect(yield* cpu.load(gpa(0))).toBe(7);
      });
      yield* sim.scheduler.join(t);
      expect(sptePfn(vm.spte(0x100))).not.toBe(0);
      yield* vm.destroy();
      yield* proc.exit();
    });
    runOk(sim);
    const results = ofType(sim, 'kvm.fault').map((f) => `${f.data.result}:${f.data.why}`);
    expect(results).toEqual(['fixed:slow', 'retry:precheck', 'fixed:slow']);
  });

  it('an access outside every memslot is an MMIO exit (-EFAULT to the VMM); a write to a READONLY slot too', () => {
    const { sim, kvm, proc } = kvmSim();
    const got: number[] = [];
    sim.spawn('qemu', 2, function* () {
      const { vm, hva } = yield* vmWithMemory(kvm, proc, 2);
      expect(
        yield* vm.setMemslot({
          slot: 1,
          gpa: 0x200000,
          size: PAGE_SIZE,
          hva: hva + PAGE_SIZE,
          flags: MemslotFlags.READONLY,
        }),
      ).toBe(0);
      const t = vm.vcpu(0).run(function* (cpu) {
        got.push(yield* cpu.load(0x900000));
        got.push(yield* cpu.load(0x200000));
        got.push(yield* cpu.store(0x200000, 1));
      });
      yield* sim.scheduler.join(t);
      yield* vm.destroy();
      yield* proc.exit();
    });
    runOk(sim);
    expect(got).toEqual([-Errno.EFAULT, 101, -Errno.EFAULT]);
  });
});

describe('memslots (KVM_SET_USER_MEMORY_REGION)', () => {
  it('rejects bad regions, overlapping gfns and size changes; deleting zaps the slot and later accesses are MMIO exits', () => {
    const { sim, kvm, proc } = kvmSim();
    const got: number[] = [];
    sim.spawn('qemu', 2, function* () {
      const { vm, hva } = yield* vmWithMemory(kvm, proc, 4);
      const E = Errno;
      expect(yield* vm.setMemslot({ slot: 1, gpa: 1, size: PAGE_SIZE, hva })).toBe(-E.EINVAL);
      expect(yield* vm.setMemslot({ slot: 1, gpa: GPA_BASE, size: PAGE_SIZE, hva })).toBe(
        -E.EEXIST,
      );
      expect(yield* vm.setMemslot({ slot: 0, gpa: GPA_BASE, size: PAGE_SIZE, hva })).toBe(
        -E.EINVAL,
      );
      expect(yield* vm.setMemslot({ slot: 7, gpa: 0, size: 0, hva: 0 })).toBe(-E.EINVAL);
      const t = vm.vcpu(0).run(function* (cpu) {
        got.push(yield* cpu.load(gpa(3)));
      });
      yield* sim.scheduler.join(t);
      expect(isShadowPresent(vm.spte(0x103))).toBe(true);
      const gen = vm.memslots.generation;
      expect(yield* vm.setMemslot({ slot: 0, gpa: GPA_BASE, size: 0, hva })).toBe(0);
      expect(vm.memslots.generation).toBe(gen + 2); // the INVALID copy, then the deletion
      expect(isShadowPresent(vm.spte(0x103))).toBe(false);
      const t2 = vm.vcpu(0).run(function* (cpu) {
        got.push(yield* cpu.load(gpa(3)));
      });
      yield* sim.scheduler.join(t2);
      yield* vm.destroy();
      yield* proc.exit();
    });
    runOk(sim);
    expect(got).toEqual([103, -Errno.EFAULT]);
    expect(ofType(sim, 'kvm.memslot').map((e) => e.data.op)).toEqual([
      'create',
      'invalidate',
      'delete',
    ]);
  });

  it('moving a slot to another gpa keeps the host memory: the guest finds the same data at the new address', () => {
    const { sim, kvm, proc } = kvmSim();
    const got: number[] = [];
    sim.spawn('qemu', 2, function* () {
      const { vm, hva } = yield* vmWithMemory(kvm, proc, 2);
      const run = function* (addr: number) {
        const t = vm.vcpu(0).run(function* (cpu) {
          got.push(yield* cpu.load(addr));
        });
        yield* sim.scheduler.join(t);
      };
      yield* run(gpa(1));
      expect(yield* vm.setMemslot({ slot: 0, gpa: 0x400000, size: 2 * PAGE_SIZE, hva })).toBe(0);
      yield* run(gpa(1));
      yield* run(0x400000 + PAGE_SIZE);
      yield* vm.destroy();
      yield* proc.exit();
    });
    runOk(sim);
    expect(got).toEqual([101, -Errno.EFAULT, 101]);
  });

  it('a memslot update waits while an invalidation pair is open (mn_active_invalidate_count), and publishes after its end', () => {
    const { sim, kvm, proc, mmn } = kvmSim();
    const order: string[] = [];
    sim.spawn('qemu', 2, function* () {
      const { vm, hva } = yield* vmWithMemory(kvm, proc, 2);
      const range = new NotifierRange('CLEAR', proc.mm, hva, hva + PAGE_SIZE);
      expect(yield* mmn.invalidateRangeStart(range)).toBe(0);
      expect(vm.mnActiveInvalidateCount).toBe(1);
      const gen = vm.memslots.generation;
      const upd = sim.spawn('set-memory-region', 1, function* () {
        order.push('update');
        expect(
          yield* vm.setMemslot({ slot: 1, gpa: 0x400000, size: PAGE_SIZE, hva: hva + PAGE_SIZE }),
        ).toBe(0);
        order.push('published');
      });
      yield* sim.scheduler.sleepFor(50_000);
      expect(vm.memslots.generation).toBe(gen);
      order.push('end');
      yield* mmn.invalidateRangeEnd(range);
      yield* sim.scheduler.join(upd);
      expect(vm.memslots.generation).toBe(gen + 1);
      yield* vm.destroy();
      yield* proc.exit();
    });
    runOk(sim);
    expect(order).toEqual(['update', 'end', 'published']);
  });
});

describe('the notifier bookkeeping', () => {
  it('a window that overlaps no memslot takes no mmu_lock and leaves in_progress and the seq alone (lock elision), but still counts in mn_active_invalidate_count', () => {
    const { sim, kvm, proc, mmn } = kvmSim();
    const seen: number[] = [];
    sim.spawn('qemu', 2, function* () {
      const { vm } = yield* vmWithMemory(kvm, proc, 2);
      const other = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      const range = new NotifierRange('CLEAR', proc.mm, other, other + PAGE_SIZE);
      let locked = 0;
      const sub = sim.bus.on('lock.acquired').subscribe((e) => {
        if (e.data.lock === 'kvm->mmu_lock') locked++;
      });
      yield* mmn.invalidateRangeStart(range);
      seen.push(vm.mnActiveInvalidateCount, vm.mmuInvalidateInProgress);
      yield* mmn.invalidateRangeEnd(range);
      seen.push(vm.mnActiveInvalidateCount, vm.mmuInvalidateSeq, locked);
      sub.unsubscribe();
      yield* vm.destroy();
      expect(vm.notifier.hashed).toBe(false);
      yield* proc.exit();
    });
    runOk(sim);
    expect(seen).toEqual([1, 0, 0, 0, 0]);
    expect(ofType(sim, 'kvm.invalidate.start').map((e) => e.data.found)).toEqual([false]);
  });

  it('nested windows: the range is reset only on 0→1 and widens while any is open; the seq moves once per end', () => {
    const { sim, kvm, proc, mmn } = kvmSim();
    const seen: number[][] = [];
    sim.spawn('qemu', 2, function* () {
      const { vm, hva } = yield* vmWithMemory(kvm, proc, 8);
      const snap = () =>
        seen.push([
          vm.mmuInvalidateInProgress,
          vm.mmuInvalidateRangeStart,
          vm.mmuInvalidateRangeEnd,
          vm.mmuInvalidateSeq,
        ]);
      const a = new NotifierRange('CLEAR', proc.mm, hva + PAGE_SIZE, hva + 2 * PAGE_SIZE);
      const b = new NotifierRange('CLEAR', proc.mm, hva + 5 * PAGE_SIZE, hva + 7 * PAGE_SIZE);
      yield* mmn.invalidateRangeStart(a);
      snap();
      yield* mmn.invalidateRangeStart(b);
      snap();
      yield* mmn.invalidateRangeEnd(a);
      snap();
      yield* mmn.invalidateRangeEnd(b);
      snap();
      yield* mmn.invalidateRangeStart(b);
      snap();
      yield* mmn.invalidateRangeEnd(b);
      yield* vm.destroy();
      yield* proc.exit();
    });
    runOk(sim);
    expect(seen).toEqual([
      [1, 0x101, 0x102, 0],
      [2, 0x101, 0x107, 0],
      [1, 0x101, 0x107, 1],
      [0, 0x101, 0x107, 2],
      [1, 0x105, 0x107, 2],
    ]);
  });

  it('is deterministic: the same seed and strategy give a byte-identical log', () => {
    const hashes = [0, 1].map(() => {
      const { sim, kvm, proc } = kvmSim({ vcpus: 2, strategy: 'random', seed: 42 });
      sim.spawn('qemu', 2, function* () {
        const { vm, hva } = yield* vmWithMemory(kvm, proc, 4);
        const ts = [0, 1].map((i) =>
          vm.vcpu(i).run(function* (cpu) {
            for (let p = 0; p < 4; p++) yield* cpu.store(gpa(p, i), p);
          }),
        );
        yield* proc.madvise(hva, 2 * PAGE_SIZE, Madv.DONTNEED);
        for (const t of ts) yield* sim.scheduler.join(t);
        yield* vm.destroy();
        yield* proc.exit();
      });
      runOk(sim);
      return sim.finalHash();
    });
    expect(hashes[0]).toBe(hashes[1]);
  });
});

describe('plugin and service', () => {
  it('validates its options, names the field, and requires mm', () => {
    expect(() =>
      Simulation.create({ seed: 1, plugins: [mmPlugin(), kvmPlugin({ vcpus: 0 })] }),
    ).toThrow(/plugin "kvm": invalid options: "vcpus"/);
    expect(() =>
      Simulation.create({
        seed: 1,
        plugins: [mmPlugin(), kvmPlugin({ bugs: { nope: true } as never })],
      }),
    ).toThrow(/plugin "kvm": invalid options/);
    expect(() => Simulation.create({ seed: 1, plugins: [kvmPlugin()] })).toThrow(
      /requires plugin "mm"/,
    );
  });

  it('KvmService is the contributed SecondaryMmu (kind shadow): SPTEs and usable guest TLB entries are its mappings', () => {
    const { sim, kvm, proc } = kvmSim();
    expect(sim.getAll(SecondaryMmuContribution)).toContain(kvm);
    expect(kvm.kind).toBe('shadow');
    let during = 0;
    sim.spawn('qemu', 2, function* () {
      const { vm } = yield* vmWithMemory(kvm, proc, 2);
      const t = vm.vcpu(0).run(function* (cpu) {
        yield* cpu.load(gpa(0));
        yield* cpu.load(gpa(1));
        during = [...kvm.mappings(proc.mm)].length; // 2 SPTEs + 2 TLB entries
      });
      yield* sim.scheduler.join(t);
      yield* vm.destroy();
      expect([...kvm.mappings()].length).toBe(0);
      expect(kvm.vms.length).toBe(0);
      yield* proc.exit();
    });
    runOk(sim);
    expect(during).toBe(4);
  });

  it('createVm checks the vCPU placement; destroy stops running vCPUs (KVM_RUN returns -EIO)', () => {
    const { sim, kvm, proc } = kvmSim({ cpus: 2 });
    let ret = 0;
    sim.spawn('qemu', 1, function* () {
      let thrown: unknown = null;
      try {
        yield* kvm.createVm(proc, { vcpus: 1, cpus: [5] });
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(ConfigError);
      const { vm } = yield* vmWithMemory(kvm, proc, 1);
      vm.vcpu(0).run(function* (cpu) {
        for (;;) {
          const r = yield* cpu.load(gpa(0));
          if (r < 0) {
            ret = r;
            return;
          }
        }
      });
      yield* sim.scheduler.sleepFor(20_000);
      expect(vm.vcpus[0]!.mode).not.toBe(VcpuMode.OUTSIDE_GUEST_MODE);
      yield* vm.destroy();
      yield* proc.exit();
    });
    runOk(sim);
    expect(ret).toBe(-Errno.EIO);
    expect(kvm.vms.length).toBe(0);
  });
});
