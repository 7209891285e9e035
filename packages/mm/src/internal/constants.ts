/** log2 of the page size (x86-64: 4 KiB pages). */
export const PAGE_SHIFT = 12;
/** The page size in bytes. */
export const PAGE_SIZE = 4096;
/** Words of 32 bits in one page (frame content is addressed in words). */
export const WORDS_PER_PAGE = PAGE_SIZE / 4;
/** Entries per page-table page at every level (x86-64: 512). */
export const PTRS_PER_TABLE = 512;
/** Number of page-table levels (x86-64 4-level paging: PGD, PUD, PMD, PTE). */
export const PT_LEVELS = 4;
/** Bytes mapped by one PTE-table page (one PMD entry): 2 MiB. */
export const PMD_SIZE = PAGE_SIZE * PTRS_PER_TABLE;
/** Bytes mapped by one PMD-table page (one PUD entry): 1 GiB. */
export const PUD_SIZE = PMD_SIZE * PTRS_PER_TABLE;
/** Bytes mapped by one PUD-table page (one PGD entry): 512 GiB. */
export const PGDIR_SIZE = PUD_SIZE * PTRS_PER_TABLE;
/** End of the user address space (x86-64 4-level: 128 TiB, 2^47). */
export const TASK_SIZE = 2 ** 47;
/** The lowest address `mmap` hands out without a hint (`mmap_min_addr` is 64 KiB; we start at 4 GiB). */
export const MMAP_BASE = 2 ** 32;
/**
 * The end of a full-address-space range ([0, ULONG_MAX) in the kernel): addresses are JS numbers
 * here, so "the whole space" ends at {@link TASK_SIZE}.
 */
export const ULONG_MAX_RANGE_END = TASK_SIZE;

/** Rounds `addr` down to a page boundary. */
export function pageAlignDown(addr: number): number {
  return addr - (addr % PAGE_SIZE);
}

/** Rounds `len` up to a whole number of pages. */
export function pageAlignUp(len: number): number {
  const r = len % PAGE_SIZE;
  return r === 0 ? len : len + PAGE_SIZE - r;
}
