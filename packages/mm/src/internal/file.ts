import type { RwSemaphore } from '@mmnsim/core';
import type { Vma } from './vma.js';

/**
 * A simple file with a page cache: the backing object of file mappings. Its content lives in
 * `backing` (the "disk") until a page is read into the page cache; page-cache pages are frames,
 * written back to `backing` on writeback or when reclaimed dirty.
 *
 * @see struct address_space
 */
export class SimFile {
  /** Page-cache pages: page offset → pfn. */
  readonly pageCache = new Map<number, number>();
  /** The file's stored content per page offset, as [word, value] pairs (what a read brings in). */
  readonly backing = new Map<number, number[]>();
  /** VMAs mapping this file (`i_mmap`). */
  readonly mappings = new Set<Vma>();

  /**
   * @param id unique id (stored in `PhysMem.mapping` of its page-cache pages).
   * @param name readable name.
   * @param sizePages file size in pages.
   * @param iMmapRwsem the `i_mmap_rwsem` rmap walks of this file take.
   */
  constructor(
    readonly id: number,
    readonly name: string,
    public sizePages: number,
    readonly iMmapRwsem: RwSemaphore,
  ) {}
}
