/**
 * Memory model and MMU notifier subsystem for mmnsim: the primary MMU every secondary MMU follows: physical frames with content, processes and their mm, VMAs, multi-level page tables, the mm operations (mmap, munmap, mprotect, madvise, mremap, fork, exit, faults, reclaim, migration, the OOM reaper, GUP and `hmm_range_fault`), `mmu_gather`, and the MMU notifier subsystem of Linux 6.17 (`mm/mmu_notifier.c`: classic subscriptions and interval notifiers).
 *
 * @packageDocumentation
 */
import { definePlugin, serviceId } from '@mmnsim/core';
import type { Plugin } from '@mmnsim/core';
import { ContainerModule } from 'inversify';
import { z } from 'zod';

/** Schema of the `mm` plugin's options; unknown keys are rejected. */
export const MmOptionsSchema = z.strictObject({
  /** Physical memory size in 4 KiB frames (16 .. 16 Mi frames; default 64 Ki frames = 256 MiB). */
  totalFrames: z
    .number()
    .int()
    .min(16)
    .max(1 << 24)
    .default(65536),
});

/** The `mm` plugin's options after validation and defaults. */
export type MmOptions = z.output<typeof MmOptionsSchema>;

/** Token of the `mm` plugin's validated options in the simulation container. */
export const MmOptions = serviceId<MmOptions>('@mmnsim/mm:MmOptions');

const mmPluginFactory = definePlugin({
  id: 'mm',
  requires: [],
  schema: MmOptionsSchema,
  token: MmOptions,
  module: new ContainerModule(() => {
    // The package's services are bound here as the model is built out (see the README).
  }),
});

/**
 * The `mm` plugin: this package's only wiring point (ARCHITECTURE §6).
 *
 * ## Example
 * ```ts
 * const sim = Simulation.create({ seed: 1, cpus: 2, plugins: [mmPlugin()] });
 * ```
 *
 * @param options the plugin's options (see {@link MmOptionsSchema}); bad values are reported by
 * `Simulation.create` with the field and what is allowed.
 * @returns the plugin descriptor.
 * @see mm/memory.c, mm/mmu_notifier.c, mm/mmu_gather.c
 */
export function mmPlugin(options?: z.input<typeof MmOptionsSchema>): Plugin {
  return mmPluginFactory(options);
}
