/**
 * x86 TLB model for mmnsim: per-CPU TLBs with PCID, lazy TLB mode, shootdown IPIs, the per-page/full-flush ceiling of `flush_tlb_mm_range`, and the `arch_invalidate_secondary_tlbs` hook called from the flush path.
 *
 * @packageDocumentation
 */
import { definePlugin, serviceId } from '@mmnsim/core';
import type { Plugin } from '@mmnsim/core';
import { ContainerModule } from 'inversify';
import { z } from 'zod';

/** Schema of the `x86-tlb` plugin's options; unknown keys are rejected. */
export const X86TlbOptionsSchema = z.strictObject({
  /** Pages above which a range flush becomes a full flush (the kernel's `tlb_single_page_flush_ceiling`, default 33). */
  flushCeiling: z.number().int().min(1).max(4096).default(33),
  /** TLB entries per CPU (default 1536, the size of a recent core's second-level TLB). */
  entries: z.number().int().min(1).max(65536).default(1536),
});

/** The `x86-tlb` plugin's options after validation and defaults. */
export type X86TlbOptions = z.output<typeof X86TlbOptionsSchema>;

/** Token of the `x86-tlb` plugin's validated options in the simulation container. */
export const X86TlbOptions = serviceId<X86TlbOptions>('@mmnsim/hw-x86-tlb:X86TlbOptions');

const x86TlbPluginFactory = definePlugin({
  id: 'x86-tlb',
  requires: ['mm'],
  schema: X86TlbOptionsSchema,
  token: X86TlbOptions,
  module: new ContainerModule(() => {
    // The package's services are bound here as the model is built out (see the README).
  }),
});

/**
 * The `x86-tlb` plugin: this package's only wiring point (ARCHITECTURE §6). Requires the `mm` plugin.
 *
 * ## Example
 * ```ts
 * const sim = Simulation.create({ seed: 1, cpus: 2, plugins: [mmPlugin(), x86TlbPlugin()] });
 * ```
 *
 * @param options the plugin's options (see {@link X86TlbOptionsSchema}); bad values are reported by
 * `Simulation.create` with the field and what is allowed.
 * @returns the plugin descriptor.
 * @see arch/x86/mm/tlb.c
 */
export function x86TlbPlugin(options?: z.input<typeof X86TlbOptionsSchema>): Plugin {
  return x86TlbPluginFactory(options);
}
