/**
 * The AMD GART used as a DMA IOMMU (`arch/x86/kernel/amd_gart_64.c`): its init order, the
 * scratch page, the emergency pages, the bitmap allocator with its moving `next_bit`, and the
 * two GART TLB flush policies. Its own file: the kernel driver, separate from the hardware and
 * from AGP.
 */
import { ConfigError, Errno } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import {
  DMA_MAPPING_ERROR,
  PAGE_SIZE,
  directMapAddress,
  setMemoryNp,
  setMemoryUc,
} from '@mmnsim/mm';
import { APERTURE_BASE, GPTE_COHERENT, GPTE_VALID, gptEncode } from './gart.js';
import type { GartHw } from './gart.js';
import type { GartOptions } from './options.js';

/** Calls `fn` once per run of consecutive frames (one `set_memory_*` call per run); the first error wins. */
function eachRun(pfns: readonly number[], fn: (first: number, count: number) => number): number {
  let r = 0;
  for (let i = 0; i < pfns.length;) {
    let j = i + 1;
    while (j < pfns.length && pfns[j] === pfns[j - 1]! + 1) j++;
    r ||= fn(pfns[i]!, j - i);
    i = j;
  }
  return r;
}

/**
 * The GART IOMMU driver. The aperture's lower half is left to AGP (`agp_memory_reserved`), the
 * upper half is the IOMMU's, whose first `emergencyPages` pages (an option) are reserved.
 *
 * Locking: the model runs each call as atomic steps (Linux holds `iommu_bitmap_lock`, a
 * spinlock, around the allocator); {@link GartIommu.init} yields between its steps so the
 * hardware's speculative fills interleave with it.
 *
 * @see arch/x86/kernel/amd_gart_64.c: gart_iommu_init, init_amd_gatt, alloc_iommu, free_iommu,
 * flush_gart, gart_map_page, gart_unmap_page (6.17)
 */
export class GartIommu {
  /** First aperture page of the IOMMU part. */
  readonly iommuStart: number;
  /** Pages of the IOMMU part (`iommu_pages`). */
  readonly iommuPages: number;
  /** The zeroed scratch page unused entries point at, once init made it. */
  scratch = -1;
  /** The scratch entry (`gart_unmapped_entry`). */
  unmappedEntry = 0;
  private readonly bitmap: Uint8Array;
  /** `next_bit`: where the next allocation search starts. */
  nextBit = 0;
  /** `need_flush`: the allocator wrapped since the last flush. */
  needFlush = false;
  /** True once {@link GartIommu.init} finished. */
  ready = false;

  /**
   * @param hw the GART hardware.
   * @param options the validated GART options.
   */
  constructor(
    readonly hw: GartHw,
    readonly options: GartOptions,
  ) {
    this.iommuStart = hw.pages >> 1;
    this.iommuPages = hw.pages - this.iommuStart;
    if (options.emergencyPages >= this.iommuPages)
      throw new ConfigError(
        `gart: "emergencyPages" (${options.emergencyPages}) must be below the IOMMU part of the aperture (${this.iommuPages} pages = aperturePages / 2)`,
      );
    this.bitmap = new Uint8Array(this.iommuPages);
  }

  /** Allocates the GATT (zeroed kernel pages) — step 1 of init, before it is made uncached. */
  allocGatt(): number {
    const frames = Math.ceil(this.hw.pages / 1024);
    const phys = this.hw.core.phys;
    for (let i = 0; i < frames; i++) {
      const pfn = phys.alloc('kernel');
      if (pfn < 0) return -Errno.ENOMEM;
      this.hw.caches.clearPage(pfn); // __GFP_ZERO through the write-back direct map
      this.hw.gattPfns.push(pfn);
    }
    return 0;
  }

  /** Reserves the RAM behind the aperture's physical addresses (what `aperture_64.c` carves out). */
  reserveAperture(): number {
    const phys = this.hw.core.phys;
    for (let i = 0; i < this.hw.pages; i++) {
      const pfn = phys.alloc('kernel');
      if (pfn < 0) return -Errno.ENOMEM;
      this.hw.apertureFrames.push(pfn);
    }
    return 0;
  }

  /** `set_memory_uc` on the GATT (`init_amd_gatt`; Linux panics on failure). */
  gattUncached(): number {
    return eachRun(this.hw.gattPfns, (pfn, n) =>
      setMemoryUc(this.hw.caches, directMapAddress(pfn), n),
    );
  }

  /** `set_memory_np` on the direct map of the IOMMU part of the aperture. */
  apertureNotPresent(): number {
    const frames = this.hw.apertureFrames.slice(this.iommuStart);
    return eachRun(frames, (pfn, n) => setMemoryNp(this.hw.caches, directMapAddress(pfn), n));
  }

  /** The scratch page and the unused entries (all but the emergency pages) pointing at it. */
  fillScratch(): number {
    const phys = this.hw.core.phys;
    const s = phys.alloc('kernel');
    if (s < 0) return -Errno.ENOMEM;
    this.scratch = s;
    this.unmappedEntry = gptEncode(s, GPTE_VALID | GPTE_COHERENT);
    for (let i = this.options.emergencyPages; i < this.iommuPages; i++)
      this.hw.setEntry(this.iommuStart + i, this.unmappedEntry, s);
    for (let i = 0; i < this.iommuStart; i++) this.hw.setEntry(i, this.unmappedEntry, s);
    return 0;
  }

  /**
   * `gart_iommu_init` in Linux's order: GATT allocated and made uncached, the aperture's direct
   * map not-present, a full `wbinvd`, then translation enabled and the GART TLB flushed, then
   * the scratch entries and another flush. Returns 0 or a negated errno.
   */
  *init(): TaskGen<number> {
    const sched = this.hw.kernel.scheduler;
    let r = this.reserveAperture() || this.allocGatt();
    if (r < 0) return r;
    yield* sched.preempt();
    r = this.gattUncached();
    if (r < 0) return r;
    yield* sched.preempt();
    r = this.apertureNotPresent();
    if (r < 0) return r;
    yield* sched.preempt();
    this.hw.caches.wbinvd();
    yield* sched.preempt();
    this.hw.enable();
    this.hw.flush();
    yield* sched.preempt();
    r = this.fillScratch();
    if (r < 0) return r;
    this.hw.flush();
    this.ready = true;
    return 0;
  }

  /**
   * What `alloc_iommu` does when the search wrapped around: sets `need_flush`. (A subclass that
   * forgets it is the lazy-flush bug.)
   */
  protected onWrap(from: number): void {
    this.needFlush = true;
    const bus = this.hw.kernel.bus;
    if (bus.wants('gart.alloc.wrap')) bus.emit('gart.alloc.wrap', { from });
  }

  /** `alloc_iommu`: `size` free pages from `next_bit` (wrapping once), or -1. */
  allocIommu(size: number): number {
    const n = this.iommuPages;
    const find = (from: number): number => {
      for (let i = Math.max(from, this.options.emergencyPages); i + size <= n; i++) {
        let ok = true;
        for (let j = 0; j < size; j++) if (this.bitmap[i + j] !== 0) ok = false;
        if (ok) return i;
      }
      return -1;
    };
    let off = find(this.nextBit);
    if (off < 0) {
      this.onWrap(this.nextBit);
      off = find(0);
    }
    if (off >= 0) {
      for (let j = 0; j < size; j++) this.bitmap[off + j] = 1;
      this.nextBit = off + size;
      if (this.nextBit >= n) {
        this.onWrap(this.nextBit);
        this.nextBit = 0;
      }
    }
    if (this.options.flushPolicy === 'full') this.needFlush = true;
    return off;
  }

  /** `free_iommu`. */
  freeIommu(off: number, size: number): void {
    for (let j = 0; j < size; j++) this.bitmap[off + j] = 0;
    if (off >= this.nextBit) this.nextBit = off + size;
  }

  /** `flush_gart`: flushes the GART TLB if `need_flush`. */
  flushGart(): void {
    if (!this.needFlush) return;
    this.hw.flush();
    this.needFlush = false;
  }

  /**
   * `gart_map_page`: maps frame `pfn` for PCI DMA (a coherent entry) and returns its bus
   * address, or `DMA_MAPPING_ERROR` when the IOMMU part is full ("PCI-DMA: Out of IOMMU space")
   * or `pfn` is not a frame.
   */
  mapPage(pfn: number): number {
    if (!this.ready || !Number.isSafeInteger(pfn) || pfn < 1 || pfn >= this.hw.core.phys.total)
      return DMA_MAPPING_ERROR;
    const off = this.allocIommu(1);
    if (off < 0) return DMA_MAPPING_ERROR;
    const index = this.iommuStart + off;
    this.hw.setEntry(index, gptEncode(pfn, GPTE_VALID | GPTE_COHERENT), pfn);
    this.flushGart();
    return APERTURE_BASE + index * PAGE_SIZE;
  }

  /**
   * `gart_unmap_page`: points the entry back at the scratch page and frees it in the bitmap (no
   * flush: the lazy policy relies on the wrap). A bus address outside the IOMMU part is ignored,
   * as Linux does.
   */
  unmapPage(bus: number): void {
    const index = this.hw.indexOf(bus);
    if (index < this.iommuStart || !this.ready) return;
    const off = index - this.iommuStart;
    if (off < this.options.emergencyPages || this.bitmap[off] === 0) return;
    this.hw.setEntry(index, this.unmappedEntry, this.scratch);
    this.freeIommu(off, 1);
  }
}
