import { serviceId } from '@mmnsim/core';
import type { Kernel } from '@mmnsim/core';
import type { MmStruct } from './mm.js';

/**
 * One translation a secondary MMU holds: `va` of `mm` → frame `pfn`, as it was when the
 * translation was created (`gen` is the frame's allocation generation then).
 */
export interface SecondaryMapping {
  /** The mm the address belongs to. */
  readonly mm: MmStruct;
  /** Page-aligned virtual address. */
  readonly va: number;
  /** The frame the device reaches through it. */
  readonly pfn: number;
  /** `PhysMem.generation[pfn]` when the translation was made. */
  readonly gen: number;
  /** True if the device may write through it. */
  readonly writable: boolean;
}

/**
 * What a secondary MMU is, for the oracles:
 * - `'shadow'`: it keeps its own copies of translations (KVM SPTEs, RDMA MTTs, HMM device page
 *   tables), so it must drop them in `invalidate_range_start` / the interval `invalidate`, and
 *   must not create any inside an open invalidation window;
 * - `'tlb'`: it caches translations by walking the CPU page tables (IOMMU SVA IOTLB/ATC), so it is
 *   invalidated together with the CPU TLB (`arch_invalidate_secondary_tlbs`).
 */
export type SecondaryMmuKind = 'shadow' | 'tlb';

/**
 * The extension point through which anything that holds translations (ARCHITECTURE §6) lets the
 * stale-mapping oracles inspect it. Contribute an object to {@link SecondaryMmuContribution}
 * and report creation, removal and use of translations through {@link SecondaryMmuEvents}.
 */
export interface SecondaryMmu {
  /** Unique name (`'kvm0'`, `'mlx5_0'`, `'dmirror0'`). */
  readonly name: string;
  /** See {@link SecondaryMmuKind}. */
  readonly kind: SecondaryMmuKind;
  /** Every translation it holds now (for `mm`, or for all mms). */
  mappings(mm?: MmStruct): Iterable<SecondaryMapping>;
}

/** Extension point: secondary MMUs contributed by driver and hardware plugins (multi-bound). */
export const SecondaryMmuContribution = serviceId<SecondaryMmu>('@mmnsim/mm:SecondaryMmu');

/**
 * Emits the `smmu.*` events a secondary MMU reports: a translation was created or removed, or
 * the device used one. The oracles check them against invalidation windows and frame frees.
 * Cheap when nobody listens.
 *
 * ## Example
 * ```ts
 * const ev = new SecondaryMmuEvents(sim.kernel, 'dmirror0');
 * ev.map(mm, va, pfn, gen, true);     // after read_retry said the snapshot is valid
 * ev.access(mm, va, pfn, gen, false); // a device read through it
 * ev.unmap(mm, va);                   // in invalidate
 * ```
 */
export class SecondaryMmuEvents {
  /**
   * @param kernel the kernel services.
   * @param mmu the secondary MMU's name.
   */
  constructor(
    private readonly kernel: Kernel,
    readonly mmu: string,
  ) {}

  /** A translation `va → pfn` was created. */
  map(mm: MmStruct, va: number, pfn: number, gen: number, writable: boolean): void {
    const bus = this.kernel.bus;
    if (bus.wants('smmu.map'))
      bus.emit('smmu.map', { mmu: this.mmu, mm: mm.id, va, pfn, gen, writable });
  }

  /** The translation of `va` was removed. */
  unmap(mm: MmStruct, va: number): void {
    const bus = this.kernel.bus;
    if (bus.wants('smmu.unmap')) bus.emit('smmu.unmap', { mmu: this.mmu, mm: mm.id, va });
  }

  /** The device read or wrote frame `pfn` through its translation of `va`. */
  access(mm: MmStruct, va: number, pfn: number, gen: number, write: boolean): void {
    const bus = this.kernel.bus;
    if (bus.wants('smmu.access'))
      bus.emit('smmu.access', { mmu: this.mmu, mm: mm.id, va, pfn, gen, write });
  }
}
