import { Simulation } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import {
  Map_,
  mmPlugin,
  MmService,
  MmuNotifierSubsystem,
  NotifierRange,
  PAGE_SIZE,
  Prot,
} from '@mmnsim/mm';
import { kvmPlugin, KvmService } from '@mmnsim/drivers-kvm';
import type { GuestCpu, Vm } from '@mmnsim/drivers-kvm';
import type { Metric } from './metric.js';

/** Guest pages the benches touch. */
const PAGES = 16;
/** Guest physical base of the memslot. */
const GPA = 0x100000;
/** Guest accesses per timed round of the access bench. */
const ACCESSES = 1_000_000;
/** start+end pairs per timed round of the invalidation bench. */
const PAIRS = 5_000;

/** A simulation with one process and a VM whose memslot covers `PAGES` touched pages. */
function setup(rounds: (vm: Vm, hva: number, sim: Simulation) => TaskGen<void>): void {
  const sim = Simulation.create({
    seed: 1,
    cpus: 2,
    log: false,
    maxSteps: 1_000_000_000,
    plugins: [mmPlugin({ totalFrames: 4096 }), kvmPlugin({ vcpus: 1, oracle: false })],
  });
  const proc = sim.get(MmService).createProcess('bench');
  const kvm = sim.get(KvmService);
  sim.spawn('qemu', 1, function* (): TaskGen<void> {
    const len = PAGES * PAGE_SIZE;
    const hva = yield* proc.mmap(0, len, Prot.READ | Prot.WRITE, Map_.PRIVATE | Map_.ANONYMOUS);
    for (let p = 0; p < PAGES; p++) yield* proc.store(hva + p * PAGE_SIZE, p);
    const vm = yield* kvm.createVm(proc);
    if ((yield* vm.setMemslot({ slot: 0, gpa: GPA, size: len, hva })) !== 0)
      throw new Error('memslot');
    yield* rounds(vm, hva, sim);
    yield* vm.destroy();
    yield* proc.exit();
  });
  const r = sim.run();
  if (r.reason !== 'done' || r.violations.length > 0)
    throw new Error(
      `kvm bench ended with ${r.reason} ${r.violations.map((v) => v.kind).join(' ')}`,
    );
}

/** Touches every page from the guest (installs the SPTEs), as vCPU 0, and waits for it. */
function* populate(vm: Vm, sim: Simulation): TaskGen<void> {
  const t = vm.vcpu(0).run(function* (cpu: GuestCpu) {
    for (let p = 0; p < PAGES; p++) yield* cpu.load(GPA + p * PAGE_SIZE);
  });
  yield* sim.scheduler.join(t);
}

/**
 * `kvm.guest_access_per_s`: guest loads and stores (alternating, over 16 pages whose SPTEs are
 * present) per second — the hit path: the guest TLB, the frame, one scheduling point per
 * instruction; no oracle, no log. Timed inside the guest program, best of five rounds of 10^6
 * accesses after a warm-up round.
 */
function guestAccessRate(): Metric {
  const rounds: number[] = [];
  setup(function* (vm, _hva, sim) {
    const t = vm.vcpu(0).run(function* (cpu: GuestCpu) {
      for (let p = 0; p < PAGES; p++) yield* cpu.store(GPA + p * PAGE_SIZE, p);
      for (let round = 0; round < 6; round++) {
        const t0 = performance.now();
        for (let i = 0; i < ACCESSES; i += 2) {
          const gpa = GPA + (i % PAGES) * PAGE_SIZE + ((i >> 4) % 1024) * 4;
          yield* cpu.store(gpa, i);
          yield* cpu.load(gpa);
        }
        rounds.push(performance.now() - t0);
      }
    });
    yield* sim.scheduler.join(t);
  });
  const best = Math.min(...rounds.slice(1));
  return {
    name: 'kvm.guest_access_per_s',
    value: Math.round(ACCESSES / (best / 1000)),
    unit: 'accesses/s',
  };
}

/**
 * `kvm.invalidate_per_s`: `mmu_notifier_invalidate_range_start` + `_end` pairs per second over
 * a 16-page range whose 16 SPTEs are present — KVM's handlers take `mmu_lock`, zap 16 SPTEs,
 * flush (no vCPU in guest mode: no IPI), then bump the seq. The SPTEs are re-populated by the
 * guest between pairs, untimed. Best of five rounds after a warm-up round; lockdep on, log off.
 */
function invalidateRate(): Metric {
  const rounds: number[] = [];
  setup(function* (vm, hva, sim) {
    const mmn = sim.get(MmuNotifierSubsystem);
    const mm = vm.mm;
    for (let round = 0; round < 6; round++) {
      let ms = 0;
      for (let j = 0; j < PAIRS; j++) {
        yield* populate(vm, sim);
        const range = new NotifierRange('CLEAR', mm, hva, hva + PAGES * PAGE_SIZE);
        const t0 = performance.now();
        yield* mmn.invalidateRangeStart(range);
        yield* mmn.invalidateRangeEnd(range);
        ms += performance.now() - t0;
      }
      if (vm.stats.zapped === 0) throw new Error('kvm bench: nothing was zapped');
      rounds.push(ms);
    }
  });
  const best = Math.min(...rounds.slice(1));
  return {
    name: 'kvm.invalidate_per_s',
    value: Math.round(PAIRS / (best / 1000)),
    unit: 'start+end/s',
  };
}

/** The KVM figures. */
export function benchKvm(): Metric[] {
  return [guestAccessRate(), invalidateRate()];
}
