/**
 * The cache model's event types (CPU write-back caches, memory types of the kernel direct map,
 * non-snooped alias accesses), merged into core's SimEventMap. Their own file so the shared
 * `internal/events.ts` of the mm package stays untouched.
 */
declare module '@mmnsim/core' {
  interface SimEventMap {
    /** A cache line was filled from memory. */
    'cache.fill': {
      /** The cache domain (`'cpu'` or a device cache). */
      domain: string;
      /** Frame of the line. */
      pfn: number;
      /** Line index in the frame. */
      line: number;
      /** True for a speculative (prefetch) fill no program asked for. */
      speculative: boolean;
    };
    /** A cache line went from clean to dirty (a store through a write-back mapping). */
    'cache.dirty': {
      /** The cache domain. */
      domain: string;
      /** Frame of the line. */
      pfn: number;
      /** Line index in the frame. */
      line: number;
    };
    /** A dirty line was written back to memory (eviction, clflush, wbinvd or a device flush). */
    'cache.writeback': {
      /** The cache domain. */
      domain: string;
      /** Frame of the line. */
      pfn: number;
      /** Line index in the frame. */
      line: number;
      /** `'evict'`, `'clflush'`, `'wbinvd'` or `'device-flush'`. */
      reason: string;
      /** Words whose alias-written value the writeback replaced: [word, stale value written, value lost, seq of the lost write]. */
      clobbered: number[][];
    };
    /** A write-back overwrote words a non-snooped alias wrote after the line was cached (data lost). */
    'cache.lost': {
      /** The cache domain. */
      domain: string;
      /** Frame of the line. */
      pfn: number;
      /** Line index in the frame. */
      line: number;
      /** Why the line was written back (as `cache.writeback`). */
      reason: string;
      /** `seq` of the `cache.writeback` event, or -1 if nobody kept it. */
      writeback: number;
      /** [word, stale value written, value lost, seq of the lost write]. */
      clobbered: number[][];
    };
    /** `wbinvd`: every CPU cache line written back and invalidated. */
    'cache.wbinvd': {
      /** Dirty lines written back. */
      written: number;
    };
    /** The direct map's memory type of a frame range changed (`set_memory_*`, `set_pages_array_*`). */
    'cache.memtype': {
      /** First frame. */
      pfn: number;
      /** Frames changed. */
      count: number;
      /** The new type: `'WB'`, `'WC'`, `'UC'` or `'NP'`. */
      type: string;
      /** The kernel function that changed it. */
      by: string;
    };
    /** A non-snooped access to a frame through an alias (the GART aperture, a UC/WC mapping). */
    'cache.alias.access': {
      /** The frame reached. */
      pfn: number;
      /** Word index. */
      word: number;
      /** Value read or written. */
      value: number;
      /** True for a write. */
      write: boolean;
      /** Who accessed, through what (`'gfx0 via aperture page 3'`). */
      by: string;
    };
    /** A frame was bound to (or unbound from) a non-snooped alias, such as a GATT entry. */
    'cache.alias.bind': {
      /** The frame. */
      pfn: number;
      /** The alias (`'GATT[3] (aperture 0xe0003000)'`). */
      by: string;
      /** True when bound, false when unbound. */
      live: boolean;
    };
    /** A device's write-back mapping of a frame was created (it may now speculate on it). */
    'cache.wbmap': {
      /** The device cache domain. */
      domain: string;
      /** The frame. */
      pfn: number;
      /** True when created, false when removed. */
      live: boolean;
    };
  }
}
export {};
