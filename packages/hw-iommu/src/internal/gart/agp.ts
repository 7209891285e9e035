/**
 * AGP memory on the GART (`drivers/char/agp/generic.c`, `backend.c`, `amd64-agp.c`): generic page
 * allocation (zeroed DMA32 pages made uncached in the direct map before they enter the GATT),
 * binding into the aperture, unbinding, and destruction (write-back restored before the pages
 * are freed), plus the graphics device's non-snooped accesses. Its own file: AGP is a separate
 * kernel driver from the GART IOMMU, sharing only the hardware.
 */
import { Errno } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { PAGE_SIZE, setPagesArrayUc, setPagesArrayWb } from '@mmnsim/mm';
import { APERTURE_BASE, GPTE_COHERENT, GPTE_VALID, gptEncode } from './gart.js';
import type { GartHw } from './gart.js';
import type { GartIommu } from './iommu.js';

/** One AGP memory block (`struct agp_memory`). */
export interface AgpMemory {
  /** Its id (`key`). */
  readonly key: number;
  /** The frames (`pages[]`). */
  readonly pages: number[];
  /** First aperture page while bound, else -1 (`pg_start`, `is_bound`). */
  pgStart: number;
  /** `is_flushed`: the CPU caches were flushed since allocation. */
  isFlushed: boolean;
  /** True while the direct map of its pages is uncached. */
  uncached: boolean;
}

/**
 * The AGP bridge on the AMD GART: the aperture's lower half (the IOMMU has the upper half).
 * Each operation is a sequence of steps with scheduling points between them, as in Linux, and
 * each step is public so a driver model can (wrongly) reorder them.
 *
 * @see drivers/char/agp/generic.c: agp_generic_alloc_pages, agp_generic_destroy_pages,
 * agp_generic_insert_memory, agp_generic_remove_memory; backend.c: agp_bind_memory;
 * amd64-agp.c: amd64_insert_memory, amd64_tlbflush (6.17)
 */
export class AgpBridge {
  private nextKey = 1;
  /** Pages allocated now (`current_memory_agp`). */
  currentPages = 0;

  /**
   * @param hw the GART hardware.
   * @param iommu the GART IOMMU driver (its scratch entry marks a free GATT slot).
   * @param maxPages `max_memory_agp`: pages AGP may allocate in all.
   */
  constructor(
    readonly hw: GartHw,
    readonly iommu: GartIommu,
    readonly maxPages: number,
  ) {}

  /** Aperture pages AGP may bind (`num_entries`). */
  get numEntries(): number {
    return this.iommu.iommuStart;
  }

  /**
   * Allocates `count` zeroed pages (`alloc_page(GFP_KERNEL | GFP_DMA32 | __GFP_ZERO)`: the zeroes
   * are dirty lines in the CPU cache while the direct map is write-back). -EINVAL for a bad
   * count, -ENOMEM past `max_memory_agp` or when memory runs out (pages taken so far are freed).
   */
  *allocPages(count: number): TaskGen<AgpMemory | number> {
    if (!Number.isSafeInteger(count) || count < 1) return -Errno.EINVAL;
    if (this.currentPages + count > this.maxPages) return -Errno.ENOMEM;
    const phys = this.hw.core.phys;
    const pages: number[] = [];
    for (let i = 0; i < count; i++) {
      const pfn = phys.alloc('kernel');
      if (pfn < 0) {
        for (const p of pages) phys.put(p);
        return -Errno.ENOMEM;
      }
      this.hw.caches.clearPage(pfn);
      pages.push(pfn);
      yield* this.hw.kernel.scheduler.preempt();
    }
    this.currentPages += count;
    return { key: this.nextKey++, pages, pgStart: -1, isFlushed: false, uncached: false };
  }

  /** `set_pages_array_uc` on the block (flushes their lines). */
  makeUncached(mem: AgpMemory): number {
    const r = setPagesArrayUc(this.hw.caches, mem.pages);
    if (r === 0) mem.uncached = true;
    return r;
  }

  /** `set_pages_array_wb` on the block. */
  restoreWriteBack(mem: AgpMemory): number {
    const r = setPagesArrayWb(this.hw.caches, mem.pages);
    if (r === 0) mem.uncached = false;
    return r;
  }

  /** Frees the block's pages (`agp_generic_destroy_pages`'s `put_page`/`__free_page` loop). */
  *freePages(mem: AgpMemory): TaskGen<void> {
    const phys = this.hw.core.phys;
    for (const p of mem.pages) {
      phys.put(p);
      yield* this.hw.kernel.scheduler.preempt();
    }
    this.currentPages -= mem.pages.length;
    mem.pages.length = 0;
  }

  /**
   * `agp_allocate_memory` with the generic page allocator: pages allocated and zeroed, then the
   * whole array made uncached (`agp_generic_alloc_pages`, x86). Returns the block or a negated
   * errno.
   */
  *allocMemory(count: number): TaskGen<AgpMemory | number> {
    const mem = yield* this.allocPages(count);
    if (typeof mem === 'number') return mem;
    yield* this.hw.kernel.scheduler.preempt();
    const r = this.makeUncached(mem);
    if (r < 0) {
      yield* this.freePages(mem);
      return r;
    }
    return mem;
  }

  /**
   * Writes the block's GATT entries at `pgStart` and flushes the GART TLB
   * (`amd64_insert_memory`). -EINVAL if the range passes the aperture's AGP part
   * (`pg_start + page_count > num_entries`), -EBUSY if an entry is in use.
   */
  insert(mem: AgpMemory, pgStart: number): number {
    const n = mem.pages.length;
    if (!Number.isSafeInteger(pgStart) || pgStart < 0 || pgStart + n > this.numEntries)
      return -Errno.EINVAL;
    for (let i = 0; i < n; i++)
      if (this.hw.gattEntry(pgStart + i) !== this.iommu.unmappedEntry) return -Errno.EBUSY;
    for (let i = 0; i < n; i++) {
      const pfn = mem.pages[i]!;
      this.hw.setEntry(pgStart + i, gptEncode(pfn, GPTE_VALID | GPTE_COHERENT), pfn);
      this.hw.caches.aliasBind(pfn, `GATT[${pgStart + i}] (aperture page ${pgStart + i})`, true);
    }
    mem.pgStart = pgStart;
    this.hw.flush(); // amd64_tlbflush
    return 0;
  }

  /** Points the block's entries back at the scratch page and flushes (`agp_generic_remove_memory`). */
  remove(mem: AgpMemory): number {
    if (mem.pgStart < 0) return -Errno.EINVAL;
    for (let i = 0; i < mem.pages.length; i++) {
      this.hw.setEntry(mem.pgStart + i, this.iommu.unmappedEntry, this.iommu.scratch);
      this.hw.caches.aliasBind(mem.pages[i]!, `GATT[${mem.pgStart + i}]`, false);
    }
    mem.pgStart = -1;
    this.hw.flush();
    return 0;
  }

  /**
   * `agp_bind_memory`: flushes the CPU caches once per block (`global_cache_flush` = `wbinvd`),
   * then inserts. -EINVAL if already bound or the range does not fit.
   */
  *bindMemory(mem: AgpMemory, pgStart: number): TaskGen<number> {
    if (mem.pgStart >= 0) return -Errno.EINVAL;
    if (!mem.isFlushed) {
      this.hw.caches.wbinvd();
      mem.isFlushed = true;
    }
    yield* this.hw.kernel.scheduler.preempt();
    return this.insert(mem, pgStart);
  }

  /** `agp_unbind_memory`. */
  *unbindMemory(mem: AgpMemory): TaskGen<number> {
    yield* this.hw.kernel.scheduler.preempt();
    return this.remove(mem);
  }

  /**
   * `agp_free_memory`: unbinds if bound, restores write-back, then frees the pages
   * (`agp_generic_destroy_pages`: `set_pages_array_wb` before any page is freed).
   */
  *freeMemory(mem: AgpMemory): TaskGen<void> {
    if (mem.pgStart >= 0) yield* this.unbindMemory(mem);
    yield* this.hw.kernel.scheduler.preempt();
    if (mem.uncached) this.restoreWriteBack(mem);
    yield* this.hw.kernel.scheduler.preempt();
    yield* this.freePages(mem);
  }

  /** Bus address of aperture page `index`. */
  busAddress(index: number): number {
    return APERTURE_BASE + index * PAGE_SIZE;
  }
}

/**
 * An AGP graphics device: reads and writes through the aperture with non-snooped AGP
 * transactions, on its own execution context.
 */
export class AgpGraphicsDevice {
  /**
   * @param hw the GART hardware.
   * @param name the device (and its execution context) name.
   */
  constructor(
    readonly hw: GartHw,
    readonly name: string,
  ) {}

  /** Writes `value` to word `word` of aperture page `index`. Returns 0 or -EIO (GART error). */
  write(index: number, word: number, value: number): number {
    return this.hw.access(this.name, APERTURE_BASE + index * PAGE_SIZE, word, value, false);
  }

  /** Reads word `word` of aperture page `index` (or -EIO). */
  read(index: number, word: number): number {
    return this.hw.access(this.name, APERTURE_BASE + index * PAGE_SIZE, word, undefined, false);
  }
}
