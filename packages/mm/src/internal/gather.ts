import { KernelBug } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { TASK_SIZE } from './constants.js';
import type { MmCore } from './core.js';
import type { MmStruct } from './mm.js';

/** Pages one batch page holds (`MAX_GATHER_BATCH`: a page of pointers minus the header). */
export const GATHER_BATCH = 510;

/**
 * `struct mmu_gather`: batches the pages (and page-table pages) an unmap releases, so that they
 * are freed only after the TLB flush that removes every translation to them.
 *
 * The ordering rule it enforces: (1) unhook the page from the page table, (2) flush the TLBs,
 * (3) free the page. Pages are queued with {@link MmuGather.removePage}; when the batch cannot
 * grow (`gatherMaxPages` in flight, or no free frame for a new batch page) it returns true and
 * the caller must flush ({@link MmuGather.flushMmu}) before going on — inside the notifier
 * window. {@link MmuGather.finish} does the final flush; if another gather ran on the same mm
 * meanwhile (`mm_tlb_flush_nested`) it flushes the whole mm.
 *
 * @see tlb_gather_mmu
 * @see tlb_finish_mmu
 */
export class MmuGather {
  /** Start of the range whose translations must be flushed. */
  start = Infinity;
  /** Exclusive end of that range. */
  end = 0;
  /** True once a PTE was cleared since the last flush. */
  cleared = false;
  /** True once a page-table page was queued since the last flush. */
  freedTables = false;
  private readonly pages: number[] = [];
  private readonly batchFrames: number[] = [];
  private readonly tables: number[] = [];
  private finished = false;

  /**
   * `tlb_gather_mmu` (or `_fullmm` for exit): marks a flush pending on `mm`.
   * @param core the memory model.
   * @param mm the mm being unmapped.
   * @param fullmm true when the whole address space goes away (exit).
   */
  constructor(
    private readonly core: MmCore,
    readonly mm: MmStruct,
    readonly fullmm = false,
  ) {
    mm.tlbFlushPending++;
  }

  /** Pages queued and not yet freed. */
  get pendingPages(): number {
    return this.pages.length;
  }

  /** `tlb_remove_tlb_entry`: a PTE at `va` was cleared; widen the range to flush. */
  removeTlbEntry(va: number): void {
    if (va < this.start) this.start = va;
    if (va + 4096 > this.end) this.end = va + 4096;
    this.cleared = true;
  }

  /**
   * `__tlb_remove_page`: queue `pfn` (whose mapping reference the gather now holds) to be put
   * after the flush. Returns true when the batch is full: the caller must flush before queueing
   * more.
   */
  removePage(pfn: number): boolean {
    this.pages.push(pfn);
    const n = this.pages.length;
    if (n >= this.core.options.gatherMaxPages) return true;
    if (n % GATHER_BATCH === 0) {
      // The next page needs a new batch page, allocated GFP_NOWAIT: failure forces a flush.
      const batch = this.core.phys.alloc('kernel');
      if (batch < 0) return true;
      this.batchFrames.push(batch);
    }
    return false;
  }

  /** `free_pte_range` and friends: a page-table page was unlinked; free it after the flush. */
  freeTable(pfn: number, level: number, va: number, span: number): void {
    this.tables.push(pfn);
    this.freedTables = true;
    if (va < this.start) this.start = va;
    if (va + span > this.end) this.end = va + span;
    const bus = this.core.kernel.bus;
    if (bus.wants('mm.pt.unlink')) bus.emit('mm.pt.unlink', { mm: this.mm.id, pfn, level, va });
  }

  /** `tlb_flush_mmu_tlbonly`: flush the accumulated range if anything was cleared. */
  *flushTlbOnly(): TaskGen<void> {
    if (!this.cleared && !this.freedTables) return;
    const start = this.fullmm ? 0 : this.start;
    const end = this.fullmm ? TASK_SIZE : this.end;
    yield* this.core.tlb.flushRange(this.mm, start, end, this.freedTables);
    this.start = Infinity;
    this.end = 0;
    this.cleared = false;
    this.freedTables = false;
  }

  /**
   * `tlb_flush_mmu`: flush, then free the queued page-table pages and put the queued pages.
   * Nothing queued is freed before the flush that covers it.
   */
  *flushMmu(): TaskGen<void> {
    yield* this.flushTlbOnly();
    this.freeBatched();
  }

  private freeBatched(): void {
    if (this.pages.length === 0 && this.tables.length === 0) return;
    const phys = this.core.phys;
    const pages = this.pages.splice(0);
    const tables = this.tables.splice(0);
    this.core.tableRcu.removeTables(tables); // tlb_remove_table: after walkers in flight

    for (const p of pages) phys.put(p);
    for (const b of this.batchFrames.splice(0)) phys.put(b);
    const bus = this.core.kernel.bus;
    if (bus.wants('mm.gather.free'))
      bus.emit('mm.gather.free', { mm: this.mm.id, pfns: pages, tables });
  }

  /**
   * `tlb_finish_mmu`: if another gather ran concurrently on this mm (parallel MADV_DONTNEED under
   * the read lock), flush the whole mm with `freedTables`; then flush and free everything.
   */
  *finish(): TaskGen<void> {
    if (this.finished) throw new KernelBug('tlb_finish_mmu called twice on one mmu_gather');
    if (this.mm.tlbFlushPending > 1) {
      this.start = 0;
      this.end = TASK_SIZE;
      this.cleared = true;
      this.freedTables = true;
    }
    yield* this.flushMmu();
    this.mm.tlbFlushPending--;
    this.finished = true;
  }
}
