/**
 * KVM as a secondary MMU for mmnsim: memslots, vCPUs running guest code, the TDP MMU's SPTEs, the fault path with its `mmu_invalidate_seq` staleness check, and KVM's MMU notifier handlers (`kvm_mmu_notifier_invalidate_range_start/end`, aging, release).
 *
 * @packageDocumentation
 */
import { definePlugin, serviceId } from '@mmnsim/core';
import type { Plugin } from '@mmnsim/core';
import { ContainerModule } from 'inversify';
import { z } from 'zod';

/** Schema of the `kvm` plugin's options; unknown keys are rejected. */
export const KvmOptionsSchema = z.strictObject({
  /** Number of vCPUs (1 .. 64, default 1). */
  vcpus: z.number().int().min(1).max(64).default(1),
  /** Whether SPTEs have hardware accessed/dirty bits (EPT A/D); without them KVM uses access tracking. */
  adBits: z.boolean().default(true),
});

/** The `kvm` plugin's options after validation and defaults. */
export type KvmOptions = z.output<typeof KvmOptionsSchema>;

/** Token of the `kvm` plugin's validated options in the simulation container. */
export const KvmOptions = serviceId<KvmOptions>('@mmnsim/drivers-kvm:KvmOptions');

const kvmPluginFactory = definePlugin({
  id: 'kvm',
  requires: ['mm'],
  schema: KvmOptionsSchema,
  token: KvmOptions,
  module: new ContainerModule(() => {
    // The package's services are bound here as the model is built out (see the README).
  }),
});

/**
 * The `kvm` plugin: this package's only wiring point (ARCHITECTURE §6). Requires the `mm` plugin.
 *
 * ## Example
 * ```ts
 * const sim = Simulation.create({ seed: 1, cpus: 2, plugins: [mmPlugin(), kvmPlugin()] });
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
