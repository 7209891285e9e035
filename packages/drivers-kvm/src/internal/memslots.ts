import { IntervalTree } from '@mmnsim/core';
import { PAGE_SIZE } from '@mmnsim/mm';

/**
 * Memslot flags: the user-visible `KVM_MEM_*` bits and KVM's internal `KVM_MEMSLOT_INVALID`.
 *
 * @see KVM_MEM_READONLY
 * @see KVM_MEMSLOT_INVALID
 */
export const MemslotFlags = {
  /** `KVM_MEM_LOG_DIRTY_PAGES`: accepted and recorded; dirty logging itself is not modelled. */
  LOG_DIRTY_PAGES: 0x1,
  /** `KVM_MEM_READONLY`: guest writes are MMIO exits; SPTEs are never writable. */
  READONLY: 0x2,
  /** `KVM_MEMSLOT_INVALID` (internal): the slot is being deleted or moved; faults retry. */
  INVALID: 0x10000,
} as const;

/** Flags userspace may pass (`KVM_SET_USER_MEMORY_REGION`). */
export const MEMSLOT_USER_FLAGS = MemslotFlags.LOG_DIRTY_PAGES | MemslotFlags.READONLY;

/**
 * What `KVM_SET_USER_MEMORY_REGION` takes (`struct kvm_userspace_memory_region`): slot `slot`
 * maps guest physical `[gpa, gpa + size)` to host virtual `[hva, hva + size)`. A size of 0
 * deletes the slot.
 *
 * @see struct kvm_userspace_memory_region
 */
export interface MemslotSpec {
  /** Slot id (0 .. 511). */
  readonly slot: number;
  /** Guest physical address (page aligned). */
  readonly gpa: number;
  /** Size in bytes (page aligned); 0 deletes the slot. */
  readonly size: number;
  /** Host virtual address in the VM's process (page aligned): `userspace_addr`. */
  readonly hva: number;
  /** `KVM_MEM_*` flags (default 0). */
  readonly flags?: number;
}

/**
 * One memslot (`struct kvm_memory_slot`): guest frames `[baseGfn, baseGfn + npages)` backed by
 * host virtual `[userspaceAddr, userspaceAddr + npages * PAGE_SIZE)`. Immutable: an update makes
 * a new object and publishes a new {@link Memslots} set.
 *
 * @see struct kvm_memory_slot
 */
export class Memslot {
  /** First guest frame after the slot. */
  readonly gfnEnd: number;
  /** First host address after the slot. */
  readonly hvaEnd: number;

  /**
   * @param id slot id.
   * @param baseGfn first guest frame.
   * @param npages number of pages.
   * @param userspaceAddr first host virtual address.
   * @param flags {@link MemslotFlags}.
   */
  constructor(
    readonly id: number,
    readonly baseGfn: number,
    readonly npages: number,
    readonly userspaceAddr: number,
    readonly flags: number,
  ) {
    this.gfnEnd = baseGfn + npages;
    this.hvaEnd = userspaceAddr + npages * PAGE_SIZE;
  }

  /** True while the slot is being deleted or moved (`KVM_MEMSLOT_INVALID`). */
  get invalid(): boolean {
    return (this.flags & MemslotFlags.INVALID) !== 0;
  }

  /** True for a read-only slot (`KVM_MEM_READONLY`). */
  get readonly(): boolean {
    return (this.flags & MemslotFlags.READONLY) !== 0;
  }

  /** `__gfn_to_hva_memslot`: the host address of guest frame `gfn` (inside the slot). */
  gfnToHva(gfn: number): number {
    return this.userspaceAddr + (gfn - this.baseGfn) * PAGE_SIZE;
  }

  /** `hva_to_gfn_memslot`: the guest frame of host address `hva` (inside the slot, or its end). */
  hvaToGfn(hva: number): number {
    return this.baseGfn + Math.floor((hva - this.userspaceAddr) / PAGE_SIZE);
  }

  /** A copy with other flags (the INVALID copy a delete or move publishes first). */
  withFlags(flags: number): Memslot {
    return new Memslot(this.id, this.baseGfn, this.npages, this.userspaceAddr, flags);
  }
}

/**
 * One memslot set of an address space (`struct kvm_memslots`): the slots sorted by guest frame
 * for the fault path's lookup (the kernel's gfn rb-tree), an interval tree of their host ranges
 * for the notifiers (`hva_tree`), the slots by id, and the set's generation.
 *
 * Sets are immutable once published: an update builds a new one and swaps it in
 * (`kvm_swap_active_memslots`); readers use whatever set they saw, under `kvm->srcu`.
 *
 * @see struct kvm_memslots
 */
export class Memslots {
  /** Slots in ascending `baseGfn` order. */
  readonly byGfn: readonly Memslot[];
  private readonly hvaTree = new IntervalTree<Memslot>();
  private readonly byId = new Map<number, Memslot>();

  /**
   * @param slots the slots (any order; their gfn ranges must not overlap).
   * @param generation the set's generation (`kvm_memslots.generation`).
   */
  constructor(
    slots: readonly Memslot[],
    public generation: number,
  ) {
    this.byGfn = [...slots].sort((a, b) => a.baseGfn - b.baseGfn);
    for (const s of this.byGfn) {
      this.hvaTree.insert(s.userspaceAddr, s.hvaEnd - 1, s);
      this.byId.set(s.id, s);
    }
  }

  /** The slot with id `id`. */
  get(id: number): Memslot | undefined {
    return this.byId.get(id);
  }

  /** `search_memslots`: the slot containing guest frame `gfn`. */
  find(gfn: number): Memslot | undefined {
    const a = this.byGfn;
    let lo = 0;
    let hi = a.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = a[mid]!;
      if (gfn < s.baseGfn) hi = mid - 1;
      else if (gfn >= s.gfnEnd) lo = mid + 1;
      else return s;
    }
    return undefined;
  }

  /** `kvm_for_each_memslot_in_hva_range`: every slot whose host range meets `[start, last]`. */
  overlappingHva(start: number, last: number): Memslot[] {
    const out: Memslot[] = [];
    this.hvaTree.forEachOverlap(start, last, (n) => out.push(n.value));
    return out;
  }

  /** The slot whose guest range meets `[baseGfn, gfnEnd)` other than `except`, if any. */
  overlappingGfn(baseGfn: number, gfnEnd: number, except: number): Memslot | undefined {
    return this.byGfn.find((s) => s.id !== except && s.baseGfn < gfnEnd && baseGfn < s.gfnEnd);
  }
}
