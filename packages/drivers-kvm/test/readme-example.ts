import { Simulation } from '@mmnsim/core';
import { Madv, Map_, mmPlugin, MmService, notifierOracles, PAGE_SIZE, Prot } from '@mmnsim/mm';
import { kvmPlugin, KvmService } from '@mmnsim/drivers-kvm';

// A VMM process backs 4 guest pages with anonymous memory. Its VM runs two vCPUs that write and
// read guest memory while the VMM drops one of the pages under them (MADV_DONTNEED).
export function readmeExample(seed: number) {
  const sim = Simulation.create({
    seed,
    cpus: 3,
    strategy: 'pct',
    plugins: [mmPlugin({ totalFrames: 256 }), kvmPlugin({ vcpus: 2 })],
  });
  for (const oracle of notifierOracles(sim)) sim.addOracle(oracle); // + the built-in KVM oracle
  const proc = sim.get(MmService).createProcess('qemu');
  const kvm = sim.get(KvmService);
  const GPA = 0x100000; // guest frame 0x100
  const seen: number[] = [];
  sim.spawn('qemu', 2, function* () {
    const len = 4 * PAGE_SIZE;
    const hva = yield* proc.mmap(0, len, Prot.READ | Prot.WRITE, Map_.PRIVATE | Map_.ANONYMOUS);
    const vm = yield* kvm.createVm(proc); // registers KVM's MMU notifier on the VMM's mm
    yield* vm.setMemslot({ slot: 0, gpa: GPA, size: len, hva }); // guest frames ↔ host pages
    const vcpus = [0, 1].map((i) =>
      vm.vcpu(i).run(function* (cpu) {
        // vCPU i runs on CPU i: stores go through its guest TLB and the SPTEs into host frames
        for (let p = 0; p < 4; p++) yield* cpu.store(GPA + p * PAGE_SIZE + 4 * i, 10 * i + p);
        seen.push(yield* cpu.load(GPA + 4 * (1 - i))); // the other vCPU's word of page 0, or 0
      }),
    );
    yield* proc.madvise(hva, PAGE_SIZE, Madv.DONTNEED); // KVM zaps page 0's SPTE, flushes vCPUs
    for (const t of vcpus) yield* sim.scheduler.join(t);
    seen.push(yield* proc.load(hva + PAGE_SIZE + 4)); // the host reads vCPU 1's store: 11
    yield* vm.destroy(); // unregisters the notifier
    yield* proc.exit();
  });
  const result = sim.run(); // result.ok: no oracle saw a stale translation
  return { result, seen };
}
