/**
 * KVM as a secondary MMU for mmnsim: memslots, vCPUs running guest code, the TDP MMU's SPTEs, the fault path with its `mmu_invalidate_seq` staleness check, and KVM's MMU notifier handlers (`kvm_mmu_notifier_invalidate_range_start/end`, aging, release).
 *
 * @packageDocumentation
 */
import './internal/events.js';
import { definePlugin, Kernel, OracleContribution } from '@mmnsim/core';
import type { Plugin } from '@mmnsim/core';
import { MmService, MmuNotifierSubsystem, SecondaryMmuContribution } from '@mmnsim/mm';
import { ContainerModule } from 'inversify';
import type { z } from 'zod';
import { KvmOracle } from './internal/oracle.js';
import { KvmOptions, KvmOptionsSchema } from './internal/options.js';
import { KvmService } from './internal/service.js';

const kvmPluginFactory = definePlugin({
  id: 'kvm',
  requires: ['mm'],
  schema: KvmOptionsSchema,
  token: KvmOptions,
  module: new ContainerModule(({ bind }) => {
    bind(KvmService)
      .toResolvedValue(
        (k: Kernel, o: KvmOptions, mm: MmService, mmn: MmuNotifierSubsystem) =>
          new KvmService(k, o, mm, mmn),
        [Kernel, KvmOptions, MmService, MmuNotifierSubsystem],
      )
      .inSingletonScope();
    bind(SecondaryMmuContribution).toService(KvmService);
    bind(OracleContribution)
      .toResolvedValue(
        (s: KvmService, o: KvmOptions) => new KvmOracle(s, o.oracle),
        [KvmService, KvmOptions],
      )
      .inSingletonScope();
  }),
});

/**
 * The `kvm` plugin: this package's only wiring point (ARCHITECTURE §6). Requires the `mm`
 * plugin. Binds the {@link KvmService} (which creates VMs), contributes it to
 * `SecondaryMmuContribution` (so `notifierOracles(sim)` checks every VM's SPTEs and guest TLB
 * entries), and contributes the {@link KvmOracle} (unless `oracle: false`).
 *
 * ## Example
 * ```ts
 * const sim = Simulation.create({
 *   seed: 1,
 *   cpus: 3,
 *   plugins: [mmPlugin(), kvmPlugin({ vcpus: 2, adBits: true })],
 * });
 * const kvm = sim.get(KvmService);
 * ```
 *
 * @param options the plugin's options (see {@link KvmOptionsSchema}); bad values are reported by
 * `Simulation.create` with the field and what is allowed.
 * @returns the plugin descriptor.
 * @see virt/kvm/kvm_main.c, arch/x86/kvm/mmu/tdp_mmu.c
 */
export function kvmPlugin(options?: z.input<typeof KvmOptionsSchema>): Plugin {
  return kvmPluginFactory(options);
}

export { KvmBugsSchema, KvmOptions, KvmOptionsSchema } from './internal/options.js';
export type { KvmBugs } from './internal/options.js';
export { KvmService, KVM_MMU_NAME } from './internal/service.js';
export { KvmOracle } from './internal/oracle.js';
export { INVALID_GFN, KVM_USER_MEM_SLOTS, Vm } from './internal/vm.js';
export type { KvmProbe, KvmProbePoint, VmConfig, VmOptions, VmStats } from './internal/vm.js';
export { KvmRequest, Vcpu, VcpuMode } from './internal/vcpu.js';
export type { GuestCpu, GuestProgram, GuestTlbEntry, VcpuStats } from './internal/vcpu.js';
export { Memslot, MemslotFlags, Memslots, MEMSLOT_USER_FLAGS } from './internal/memslots.js';
export type { MemslotSpec } from './internal/memslots.js';
export { SPTES_PER_TABLE, TdpMmu } from './internal/tdp-mmu.js';
export type { SpTable, TdpHost, ZapResult } from './internal/tdp-mmu.js';
export {
  describeSpte,
  isAccessed,
  isAccessTracked,
  isDirty,
  isShadowPresent,
  makeSpte,
  Spte,
  SPTE_FROZEN,
  SPTE_NONPRESENT,
  sptePfn,
} from './internal/spte.js';
