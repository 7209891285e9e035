import { ConfigError } from '@mmnsim/core';
import type { Kernel, TaskGen } from '@mmnsim/core';
import { mmgrab, SecondaryMmuEvents } from '@mmnsim/mm';
import type {
  MmCore,
  MmService,
  MmStruct,
  MmuNotifierSubsystem,
  Process,
  SecondaryMapping,
  SecondaryMmu,
  SecondaryMmuKind,
} from '@mmnsim/mm';
import type { KvmOptions } from './options.js';
import { Vm } from './vm.js';
import type { VmOptions } from './vm.js';

/** The name KVM's translations carry in `smmu.*` events and oracle reports. */
export const KVM_MMU_NAME = 'kvm';

/**
 * The KVM module of a simulation (`/dev/kvm`): creates VMs bound to host processes, and is the
 * secondary MMU the stale-mapping oracles inspect — the union of every VM's SPTEs and usable
 * guest TLB entries, reported under the name `kvm` (kind `'shadow'`). The `kvm` plugin binds it
 * and contributes it to `SecondaryMmuContribution`, so `notifierOracles(sim)` checks every VM.
 *
 * ## Example
 * ```ts
 * const kvm = sim.get(KvmService);
 * sim.spawn('qemu', 0, function* () {
 *   const vm = yield* kvm.createVm(proc, { vcpus: 2 });
 *   yield* vm.setMemslot({ slot: 0, gpa: 0x100000, size: 16 * PAGE_SIZE, hva });
 *   const t = vm.vcpu(0).run(function* (cpu) { yield* cpu.store(0x100000, 42); });
 *   yield* sim.scheduler.join(t);
 *   yield* vm.destroy();
 * });
 * ```
 *
 * @see kvm_dev_ioctl_create_vm
 */
export class KvmService implements SecondaryMmu {
  /** See {@link SecondaryMmu.name}. */
  readonly name = KVM_MMU_NAME;
  /** See {@link SecondaryMmu.kind}. */
  readonly kind: SecondaryMmuKind = 'shadow';
  /** The memory model. */
  readonly core: MmCore;
  private readonly live: Vm[] = [];
  private readonly events: SecondaryMmuEvents;
  private nextId = 0;

  /**
   * Built by the `kvm` plugin.
   * @param kernel the kernel services.
   * @param options the plugin's validated options.
   * @param mm the memory model service.
   * @param mmn the MMU notifier subsystem.
   */
  constructor(
    private readonly kernel: Kernel,
    readonly options: KvmOptions,
    mm: MmService,
    private readonly mmn: MmuNotifierSubsystem,
  ) {
    this.core = mm.core;
    this.events = new SecondaryMmuEvents(kernel, KVM_MMU_NAME);
  }

  /** The VMs not yet destroyed, in creation order. */
  get vms(): readonly Vm[] {
    return this.live;
  }

  /** The live VM with id `id`. */
  vm(id: number): Vm | undefined {
    return this.live.find((v) => v.id === id);
  }

  /**
   * `KVM_CREATE_VM` from a thread of `process`: takes an `mm_count` reference on its mm
   * (`mmgrab`) and registers the VM's MMU notifier on it (`mmu_notifier_register`, which takes
   * `mmap_lock` for write — the caller must not hold it). The VM starts with no memslots.
   *
   * Context: process context, may sleep.
   *
   * @param process the host process (the VMM) whose memory backs the guest.
   * @param options vCPU count and placement, name.
   * @returns the VM.
   * @throws ConfigError when the process has exited, or for a bad vCPU count or CPU.
   * @see kvm_create_vm
   */
  *createVm(process: Process, options: VmOptions = {}): TaskGen<Vm> {
    const mm = process.mm;
    if (mm.users <= 0) throw new ConfigError(`createVm: process ${process.name} has exited`);
    const n = options.vcpus ?? this.options.vcpus;
    if (!Number.isInteger(n) || n < 1 || n > 64)
      throw new ConfigError(`createVm: "vcpus" must be an integer in 1..64 (got ${n})`);
    const sched = this.kernel.scheduler;
    const ncpu = sched.contexts.filter((c) => c.kind === 'cpu').length;
    const cpus: number[] = [];
    for (let i = 0; i < n; i++) {
      const c = options.cpus?.[i] ?? i % ncpu;
      if (!Number.isInteger(c) || c < 0 || c >= ncpu)
        throw new ConfigError(`createVm: vCPU ${i} on CPU ${c}, but the simulation has ${ncpu}`);
      cpus.push(c);
    }
    const id = this.nextId++;
    const vm = new Vm(
      id,
      options.name ?? `vm${id}`,
      KVM_MMU_NAME,
      process,
      this.kernel,
      this.core,
      this.mmn,
      this.events,
      {
        adBits: this.options.adBits,
        tdpYieldEvery: this.options.tdpYieldEvery,
        retryDelayNs: this.options.retryDelayNs,
        bugs: this.options.bugs ?? {},
      },
      cpus,
      (gone) => {
        const i = this.live.indexOf(gone);
        if (i >= 0) this.live.splice(i, 1);
      },
    );
    mmgrab(mm);
    const r = yield* this.mmn.register(vm.notifier, mm);
    if (r !== 0) throw new ConfigError(`createVm: mmu_notifier_register failed with ${r}`);
    this.live.push(vm);
    const bus = this.kernel.bus;
    if (bus.wants('kvm.vm.create'))
      bus.emit('kvm.vm.create', { vm: id, name: vm.label, mm: mm.id, vcpus: n });
    return vm;
  }

  /** See {@link SecondaryMmu.mappings}: every live VM's translations (of `mm`, if given). */
  *mappings(mm?: MmStruct): Iterable<SecondaryMapping> {
    for (const vm of this.live) yield* vm.mappings(mm);
  }
}
