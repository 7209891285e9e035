/**
 * Memory types (x86 PAT cache modes) and the kernel direct map's type per frame. Its own file
 * because the type table is shared by the cache model, `set_memory_*` and the oracles, and so
 * that the PTE encoding of other mm files stays untouched.
 */

/**
 * A memory type: the cache mode a mapping gives its accesses (`enum page_cache_mode`).
 * - `WB` write-back: loads and stores allocate cache lines; the hardware may prefetch.
 * - `WC` write-combining: uncached, stores combine in buffers; no cache lines.
 * - `UC` uncached (the model does not tell `UC` from `UC-`: `set_memory_uc` gives `UC-`, which
 *   differs from `UC` only when an MTRR says WC).
 * - `NP` not present: the direct map entry is cleared (`set_memory_np`), no access, no prefetch.
 *
 * @see arch/x86/include/asm/pgtable_types.h: enum page_cache_mode
 */
export type MemType = 'WB' | 'WC' | 'UC' | 'NP';

/** Memory types by code, as {@link DirectMap} stores them. */
export const MEMTYPES: readonly MemType[] = ['WB', 'WC', 'UC', 'NP'];

/** PTE bit `_PAGE_PWT` (bit 3): with PCD and PAT, an index into the PAT MSR. */
export const PAGE_PWT = 1 << 3;
/** PTE bit `_PAGE_PCD` (bit 4). */
export const PAGE_PCD = 1 << 4;
/** PTE bit `_PAGE_PAT` (bit 7 of a 4 KiB PTE). */
export const PAGE_PAT = 1 << 7;

/**
 * The PTE cache bits Linux uses for a memory type with its default PAT MSR layout (entry 0 WB,
 * 1 WC, 2 UC-, 3 UC): `cachemode2protval()`. `NP` has no cache bits (the PTE is not present).
 *
 * @see arch/x86/mm/pat/memtype.c: pat_bp_init, __cachemode2pte_tbl (6.17)
 */
export function memTypePteBits(t: MemType): number {
  switch (t) {
    case 'WB':
      return 0;
    case 'WC':
      return PAGE_PWT;
    case 'UC':
      return PAGE_PCD; // UC-: what set_memory_uc installs
    case 'NP':
      return 0;
  }
}

/**
 * The kernel direct map's memory type, one per frame (the linear mapping at `PAGE_OFFSET`; all
 * frames start write-back). Changed only through `set_memory_*` / `set_pages_array_*`.
 *
 * @see arch/x86/mm/pat/set_memory.c
 */
export class DirectMap {
  private readonly types: Uint8Array;

  /** @param frames number of frames the direct map covers. */
  constructor(readonly frames: number) {
    this.types = new Uint8Array(frames);
  }

  /** The type of frame `pfn`'s direct-map entry. */
  type(pfn: number): MemType {
    return MEMTYPES[this.types[pfn]!]!;
  }

  /** True if the direct map maps `pfn` write-back (the default). */
  isWb(pfn: number): boolean {
    return this.types[pfn] === 0;
  }

  /** Sets the type (model-internal; callers use `set_memory_*`). */
  set(pfn: number, t: MemType): void {
    this.types[pfn] = MEMTYPES.indexOf(t);
  }
}
