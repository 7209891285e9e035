/**
 * x86 TLB model for mmnsim: per-CPU TLBs with PCID, lazy TLB mode, shootdown IPIs, the
 * per-page/full-flush ceiling of `flush_tlb_mm_range`, deferred batched flushes, and the
 * `arch_invalidate_secondary_tlbs` hook called from the flush path — with an oracle that reports
 * any CPU access through a TLB entry a completed flush should have removed.
 *
 * @packageDocumentation
 */
import './internal/events.js';
import { definePlugin, Kernel } from '@mmnsim/core';
import type { Plugin } from '@mmnsim/core';
import { TlbFlushProvider } from '@mmnsim/mm';
import { ContainerModule } from 'inversify';
import { X86TlbOptions, X86TlbOptionsSchema } from './internal/options.js';
import type { X86TlbOptionsInput } from './internal/options.js';
import { X86Tlb } from './internal/x86-tlb.js';

const x86TlbPluginFactory = definePlugin({
  id: 'x86-tlb',
  requires: ['mm'],
  schema: X86TlbOptionsSchema,
  token: X86TlbOptions,
  module: new ContainerModule(({ bind, rebind }) => {
    bind(X86Tlb)
      .toResolvedValue((k: Kernel, o: X86TlbOptions) => new X86Tlb(k, o), [Kernel, X86TlbOptions])
      .inSingletonScope();
    rebind(TlbFlushProvider).toService(X86Tlb);
  }),
});

/**
 * The `x86-tlb` plugin: this package's only wiring point (ARCHITECTURE §6). Requires the `mm`
 * plugin, whose {@link TlbFlushProvider} it rebinds to the {@link X86Tlb} model, so that every
 * CPU load and store of the memory model goes through per-CPU TLBs and every flush is a real
 * shootdown.
 *
 * ## Example
 * ```ts
 * const sim = Simulation.create({
 *   seed: 1,
 *   cpus: 4,
 *   plugins: [mmPlugin(), x86TlbPlugin({ flushCeiling: 33, pcid: true })],
 * });
 * const tlb = sim.get(X86Tlb);
 * ```
 *
 * @param options the plugin's options (see {@link X86TlbOptionsSchema}); bad values are reported by
 * `Simulation.create` with the field and what is allowed.
 * @returns the plugin descriptor.
 * @see arch/x86/mm/tlb.c
 */
export function x86TlbPlugin(options?: X86TlbOptionsInput): Plugin {
  return x86TlbPluginFactory(options);
}

export { TLB_NR_DYN_ASIDS } from './internal/cpu-tlb.js';
export {
  TLB_REPLACEMENTS,
  X86_TLB_BUGS,
  X86TlbOptions,
  X86TlbOptionsSchema,
} from './internal/options.js';
export type { TlbReplacement, X86TlbBug, X86TlbOptionsInput } from './internal/options.js';
export { TLB_FLUSH_ALL, X86Tlb } from './internal/x86-tlb.js';
export type { AsidSlotView, CpuTlbView, TlbEntryView, X86TlbStats } from './internal/x86-tlb.js';
