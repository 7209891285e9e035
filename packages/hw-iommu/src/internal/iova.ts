/**
 * The IOVA allocator of a DMA domain and the flush queue of lazy mode, in their own file: they
 * are the DMA-API half of the model (drivers/iommu/iova.c, drivers/iommu/dma-iommu.c) and have
 * no part in SVA.
 */

/** One IOVA range (in pages). */
export interface IovaRange {
  /** First I/O page number. */
  readonly pfn: number;
  /** Pages. */
  readonly pages: number;
}

/**
 * An IOVA allocator (`struct iova_domain`), reduced: ranges are handed out top-down below
 * `limit` (as `__alloc_and_insert_iova_range` does from `dma_32bit_pfn`), and freed single
 * pages go to a LIFO cache first (the per-CPU `iova_rcache`), so a freed IOVA is reused by the
 * very next allocation — which is why lazy mode must not free an IOVA before its IOTLB flush.
 *
 * @see alloc_iova_fast
 * @see free_iova_fast
 */
export class IovaAllocator {
  private readonly used = new Map<number, number>();
  private readonly rcache: number[] = [];
  private next: number;

  /**
   * @param base lowest I/O page number handed out.
   * @param limit one past the highest.
   */
  constructor(
    private readonly base: number,
    private readonly limit: number,
  ) {
    this.next = limit;
  }

  /** Allocates `pages` contiguous I/O pages; -1 when the space is exhausted. */
  alloc(pages: number): number {
    if (pages === 1 && this.rcache.length > 0) {
      const pfn = this.rcache.pop()!;
      this.used.set(pfn, 1);
      return pfn;
    }
    // Top-down below the last allocation, then a first-fit search from the top.
    let pfn = this.next - pages;
    if (pfn < this.base || !this.free(pfn, pages)) {
      pfn = -1;
      for (let p = this.limit - pages; p >= this.base; p--) {
        if (this.free(p, pages)) {
          pfn = p;
          break;
        }
      }
      if (pfn < 0) return -1;
    }
    this.used.set(pfn, pages);
    this.next = pfn;
    return pfn;
  }

  /** Returns a range to the allocator; false if `pfn` does not start an allocated range. */
  release(pfn: number): boolean {
    const pages = this.used.get(pfn);
    if (pages === undefined) return false;
    this.used.delete(pfn);
    if (pages === 1) this.rcache.push(pfn);
    return true;
  }

  /** Pages of the allocated range starting at `pfn`, or 0. */
  sizeOf(pfn: number): number {
    return this.used.get(pfn) ?? 0;
  }

  /** Ranges allocated now. */
  get allocated(): number {
    return this.used.size;
  }

  private free(pfn: number, pages: number): boolean {
    for (const [p, n] of this.used) if (p < pfn + pages && pfn < p + n) return false;
    for (const p of this.rcache) if (p >= pfn && p < pfn + pages) return false;
    return true;
  }
}

/**
 * The flush queue of a DMA domain in lazy mode (`struct iova_fq`): unmapped IOVA ranges wait
 * here until one domain-wide IOTLB flush covers them all; only then do they go back to the
 * allocator. It is flushed when full, by its timer (`IOVA_FQ_TIMEOUT`), and on demand.
 *
 * @see queue_iova
 * @see fq_flush_iotlb
 * @see fq_ring_free
 */
export class FlushQueue {
  /** Ranges waiting for the flush. */
  readonly entries: IovaRange[] = [];

  /** @param size entries it holds before it must be flushed (`IOVA_DEFAULT_FQ_SIZE`, 256). */
  constructor(readonly size: number) {}

  /** True if no room is left. */
  get full(): boolean {
    return this.entries.length >= this.size;
  }

  /** True if `[pfn, pfn + pages)` overlaps a range waiting here. */
  holds(pfn: number, pages: number): boolean {
    for (const r of this.entries) if (r.pfn < pfn + pages && pfn < r.pfn + r.pages) return true;
    return false;
  }
}
