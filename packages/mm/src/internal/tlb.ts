import { serviceId } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import type { MmCore } from './core.js';
import type { MmStruct } from './mm.js';
import { hugeLeafTranslate } from './huge/thp.js';
import { Pte, pteFlags, ptePfn, ptePresent, pteWithFlags } from './pte.js';

/**
 * The boundary between the memory model and the CPU's TLBs (ARCHITECTURE §6): how a CPU
 * translates an address, and how the kernel flushes stale translations.
 *
 * mm's default ({@link IdealTlb}) has no TLB at all: every access walks the page table, so a
 * flush has nothing to do. `hw-x86-tlb` rebinds this service with per-CPU TLBs, where a missing
 * or late flush becomes a visible stale access.
 *
 * Every flush must call `core.notifiers.archInvalidateSecondaryTlbs(mm, start, end)` before it
 * returns (notifier-core.md §6, invariant 18); a deferred batch calls it when the flush is
 * queued.
 */
export interface TlbFlushProvider {
  /** Short name for reports. */
  readonly name: string;
  /** Called once when the memory model starts. */
  attach(core: MmCore): void;
  /**
   * `flush_tlb_mm_range`: after it returns, no CPU uses a translation of `mm` in `[start, end)`
   * that predates the call. `freedTables` says page-table pages are being freed (lazy CPUs must
   * flush too). May wait for other CPUs (spin-waits), so it is a generator; callable in atomic
   * context.
   */
  flushRange(mm: MmStruct, start: number, end: number, freedTables: boolean): TaskGen<void>;
  /**
   * `arch_tlbbatch_add_pending`: queue a deferred flush of `[start, end)` of `mm` (reclaim and
   * migration batching); the secondary-TLB hook fires here. Returns the hook's spin-wait (see
   * `MmuNotifiers.archInvalidateSecondaryTlbs`) for the caller to run, if there is one.
   */
  batchAdd(mm: MmStruct, start: number, end: number): TaskGen<void> | void;
  /** `try_to_unmap_flush` / `arch_tlbbatch_flush`: perform every queued deferred flush. */
  batchFlush(): TaskGen<void>;
  /**
   * The CPU's translation of `va` in `mm` for the running task's CPU: the frame, or -1 if the
   * page table does not allow the access (the caller handles the page fault and retries). Like
   * the hardware walk, it sets the accessed bit (and the dirty bit for a write) in the PTE.
   */
  translate(mm: MmStruct, va: number, write: boolean): number;
}

/** Token of the {@link TlbFlushProvider} service (rebound by hardware plugins). */
export const TlbFlushProvider = serviceId<TlbFlushProvider>('@mmnsim/mm:TlbFlushProvider');

/**
 * The ideal TLB: no cached translations, every access walks the page table, every flush
 * completes at once (it only calls the secondary-TLB hook). With it, stale CPU translations
 * cannot exist, which hides CPU-side flush bugs — load `hw-x86-tlb` to see them.
 */
export class IdealTlb implements TlbFlushProvider {
  /** See {@link TlbFlushProvider.name}. */
  readonly name = 'ideal';
  private core: MmCore | null = null;
  private readonly pending: { mm: MmStruct; start: number; end: number }[] = [];

  /** See {@link TlbFlushProvider.attach}. */
  attach(core: MmCore): void {
    this.core = core;
  }

  private get c(): MmCore {
    if (this.core === null) throw new Error('IdealTlb used before attach()');
    return this.core;
  }

  /** See {@link TlbFlushProvider.flushRange}. */
  *flushRange(mm: MmStruct, start: number, end: number, freedTables: boolean): TaskGen<void> {
    const c = this.c;
    const bus = c.kernel.bus;
    if (bus.wants('mm.tlb.flush')) bus.emit('mm.tlb.flush', { mm: mm.id, start, end, freedTables });
    const spin = c.notifiers.archInvalidateSecondaryTlbs(mm, start, end);
    if (spin !== undefined) yield* spin;
  }

  /** See {@link TlbFlushProvider.batchAdd}. */
  batchAdd(mm: MmStruct, start: number, end: number): TaskGen<void> | void {
    this.pending.push({ mm, start, end });
    return this.c.notifiers.archInvalidateSecondaryTlbs(mm, start, end);
  }

  /** See {@link TlbFlushProvider.batchFlush}. */
  *batchFlush(): TaskGen<void> {
    const bus = this.c.kernel.bus;
    for (const p of this.pending.splice(0)) {
      if (bus.wants('mm.tlb.flush'))
        bus.emit('mm.tlb.flush', { mm: p.mm.id, start: p.start, end: p.end, freedTables: false });
    }
  }

  /** See {@link TlbFlushProvider.translate}. */
  translate(mm: MmStruct, va: number, write: boolean): number {
    const c = this.c;
    const slot = c.pt.lookup(mm, va);
    if (slot === null) return hugeLeafTranslate(c, mm, va, write);
    const pte = slot.table[slot.index]!;
    if (!ptePresent(pte)) return -1;
    const f = pteFlags(pte);
    if (write && (f & Pte.WRITE) === 0) return -1;
    const want = f | Pte.ACCESSED | (write ? Pte.DIRTY | Pte.SOFT_DIRTY : 0);
    if (want !== f) c.pt.set(mm, slot, va, pteWithFlags(pte, want));
    return ptePfn(pte);
  }
}
