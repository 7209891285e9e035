import { FS_RECLAIM_MAP } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { PAGE_SIZE } from './constants.js';
import type { MmCore } from './core.js';
import type { MmStruct } from './mm.js';
import { NotifierRange } from './notifier.js';
import type { PteSlot } from './pagetable.js';
import { Frame } from './physmem.js';
import { mkSwapPte, Pte, PTE_NONE, pteFlags, pteWithFlags } from './pte.js';
import { mapsPfn, pageVmaMappedWalk, rmapWalk } from './rmap.js';

/**
 * How reclaim and migration flush the TLB after clearing a PTE: `'deferred'` queues the range
 * with `TlbFlushProvider.batchAdd` and flushes the whole batch once before the folio is freed or
 * copied (`TTU_BATCH_FLUSH`, what kswapd and direct reclaim use); `'immediate'` flushes each PTE
 * at once under its lock (`ptep_clear_flush`).
 */
export type UnmapFlushMode = 'deferred' | 'immediate';

const flushModes = new WeakMap<MmCore, UnmapFlushMode>();

/**
 * Chooses how `tryToUnmap` and migration flush for this memory model (default
 * `'deferred'`). For tests and scenarios that want the per-PTE flush order.
 *
 * @see should_defer_flush
 */
export function setUnmapFlushMode(core: MmCore, mode: UnmapFlushMode): void {
  flushModes.set(core, mode);
}

/** The flush mode of this memory model (see {@link setUnmapFlushMode}). */
export function unmapFlushMode(core: MmCore): UnmapFlushMode {
  return flushModes.get(core) ?? 'deferred';
}

/**
 * Flushes the TLB for one cleared PTE of `mm` at `va`, under its page-table lock: at once
 * (`flush_tlb_range`) or deferred into the batch (`set_tlb_ubc_flush_pending`; on x86 the
 * secondary-TLB hook fires here). A deferred flush must be completed with
 * `core.tlb.batchFlush()` before the page is freed or its content copied.
 *
 * @see set_tlb_ubc_flush_pending
 */
export function* flushClearedPte(core: MmCore, mm: MmStruct, va: number): TaskGen<void> {
  if (unmapFlushMode(core) === 'immediate') {
    yield* core.tlb.flushRange(mm, va, va + PAGE_SIZE, false);
  } else {
    const spin = core.tlb.batchAdd(mm, va, va + PAGE_SIZE);
    if (spin !== undefined) yield* spin;
  }
}

/**
 * `folio_referenced`: how many PTEs referenced the folio in frame `pfn` since the last aging
 * pass. For each PTE that maps it (rmap walk, then the PTE checked under its lock), the CPU
 * accessed bit is tested and cleared, then the result of
 * `mmu_notifier_clear_flush_young(mm, va, va + PAGE_SIZE)` is ORed in (notifier-core.md §2.2,
 * §7 row 21): a secondary MMU that used the page keeps it young. The notifier is always called,
 * whatever the CPU bit said.
 *
 * Context: the caller holds the folio lock (shrink_folio_list does). The rmap lock is only
 * try-locked: when it is contended the result is -1 (the caller keeps the folio). The young
 * notifier runs under the PTE lock, so it cannot sleep. x86 does not flush the CPU TLB after
 * clearing the accessed bit, and neither does this.
 *
 * @returns the number of referencing PTEs, or -1 if the rmap lock was contended.
 * @see folio_referenced
 * @see folio_referenced_one
 * @see ptep_clear_flush_young_notify
 */
export function* folioReferenced(core: MmCore, pfn: number): TaskGen<number> {
  const phys = core.phys;
  if (phys.mapcount[pfn]! === 0) return 0;
  let referenced = 0;
  let remaining = phys.mapcount[pfn]!;
  const maps = mapsPfn(pfn);
  const r = yield* rmapWalk(
    core,
    pfn,
    function* (vma, va) {
      const m = yield* pageVmaMappedWalk(core, vma, va, maps);
      if (m === null) return true;
      const mm = vma.mm;
      const f = pteFlags(m.pte);
      const young = (f & Pte.ACCESSED) !== 0;
      if (young) core.pt.set(mm, m.slot, va, pteWithFlags(m.pte, f & ~Pte.ACCESSED));
      const secondary = core.notifiers.clearFlushYoung(mm, va, va + PAGE_SIZE);
      if (young || secondary !== 0) referenced++;
      m.ptl.unlock();
      return --remaining > 0;
    },
    { tryLock: true },
  );
  return r === 'contended' ? -1 : referenced;
}

/** What `tryToUnmap` did. */
export interface UnmapResult {
  /** True if no PTE maps the folio any more (`!folio_mapped`). */
  readonly unmapped: boolean;
  /**
   * The swap slot the folio's swap PTEs refer to, or -1 (file page, lazyfree discard, or not
   * unmapped anywhere). The slot is under writeback: the caller writes the content with
   * `swap.endWriteback` after the deferred TLB flush and before unlocking the folio.
   */
  readonly slot: number;
}

/**
 * `try_to_unmap` (notifier-core.md §7 row 9): removes every PTE that maps the folio in frame
 * `pfn`. For each VMA of the rmap walk: a CLEAR window `[va, va + PAGE_SIZE)` (blockable; the
 * kernel's `[address, vma_address_end)` for a small folio), and under the PTE lock:
 * get-and-clear the PTE and flush (at once or deferred, see {@link setUnmapFlushMode}); move a
 * dirty PTE's dirty bit to the folio; then
 * - anonymous: the PTE becomes a swap entry. The slot is allocated once per folio (with one user,
 *   under writeback: the content is stored after the flush, see {@link UnmapResult.slot}) and
 *   `swap_duplicate`d for each further PTE;
 * - lazyfree (MADV_FREE) anonymous: discarded (the PTE stays empty, no swap) if the folio is
 *   clean and nobody else holds a reference; if it was redirtied it becomes normal anonymous
 *   memory again and the PTE is restored (the walk stops); extra references restore it too;
 * - page cache: the PTE stays empty (the page stays in the page cache);
 *
 * and the mapping's reference and mapcount are dropped — never the last reference, which the
 * caller holds. A pinned folio (`pincount > 0`) is left mapped and the walk stops (the kernel's
 * `folio_try_share_anon_rmap_pte` failure). The walk stops once nothing maps the folio.
 *
 * Context: the caller holds the folio lock and one reference. Takes the rmap lock for read, the
 * notifier windows and PTE locks; may sleep. With deferred flushing the caller must call
 * `core.tlb.batchFlush()` (`try_to_unmap_flush`) before freeing the folio or using its content.
 *
 * @see try_to_unmap
 * @see try_to_unmap_one
 */
export function* tryToUnmap(core: MmCore, pfn: number): TaskGen<UnmapResult> {
  const phys = core.phys;
  if (phys.mapcount[pfn]! === 0) return { unmapped: true, slot: -1 };
  const anon = (phys.flags[pfn]! & Frame.ANON) !== 0;
  const state = { slot: -1 };
  const maps = mapsPfn(pfn);
  yield* rmapWalk(core, pfn, function* (vma, va) {
    const mm = vma.mm;
    const range = new NotifierRange('CLEAR', mm, va, va + PAGE_SIZE);
    yield* core.notifiers.invalidateRangeStart(range);
    let go = true;
    const m = yield* pageVmaMappedWalk(core, vma, va, maps);
    if (m !== null) {
      go = yield* unmapOne(core, mm, m.slot, va, m.pte, pfn, anon, state);
      m.ptl.unlock();
    }
    yield* core.notifiers.invalidateRangeEnd(range);
    return go && phys.mapcount[pfn]! > 0; // rwc.done = folio_not_mapped
  });
  return { unmapped: phys.mapcount[pfn]! === 0, slot: state.slot };
}

/** One PTE of `tryToUnmap`, under its lock. Returns false to stop the walk. */
function* unmapOne(
  core: MmCore,
  mm: MmStruct,
  slot: PteSlot,
  va: number,
  pteval: number,
  pfn: number,
  anon: boolean,
  state: { slot: number },
): TaskGen<boolean> {
  const phys = core.phys;
  if (phys.pincount[pfn]! > 0) return false; // may be DMA-pinned: leave it mapped
  core.pt.set(mm, slot, va, PTE_NONE); // ptep_get_and_clear
  yield* flushClearedPte(core, mm, va);
  if ((pteFlags(pteval) & Pte.DIRTY) !== 0) phys.flags[pfn]! |= Frame.DIRTY;
  if (anon) {
    const flags = phys.flags[pfn]!;
    if ((flags & Frame.LAZYFREE) !== 0) {
      if ((flags & Frame.DIRTY) !== 0) {
        // Redirtied since MADV_FREE: it is normal anonymous memory again (folio_set_swapbacked).
        core.pt.set(mm, slot, va, pteval);
        phys.flags[pfn]! &= ~Frame.LAZYFREE;
        return false;
      }
      if (phys.refcount[pfn]! !== 1 + phys.mapcount[pfn]!) {
        core.pt.set(mm, slot, va, pteval); // someone holds a reference: keep it
        return false;
      }
      // Clean and unused: discard, no swap.
    } else {
      if (state.slot < 0) state.slot = core.swap.beginWriteback(pfn);
      core.swap.dup(state.slot);
      core.pt.set(mm, slot, va, mkSwapPte(state.slot));
    }
  }
  phys.mapcount[pfn]!--;
  phys.put(pfn); // the mapping's reference; the caller still holds one
  return true;
}

/**
 * Takes a frame off the LRU for reclaim or migration (`folio_isolate_lru`): clears its LRU flag
 * (so other reclaimers skip it and migration gets -EBUSY) and takes a reference, so it cannot be
 * freed under the caller. False for a stale entry: a free, zero, kernel or page-table frame, one
 * that is neither anonymous nor page cache, or one not on the LRU (already isolated).
 *
 * Context: atomic (no lock; the LRU lock is implicit in the step).
 *
 * @see folio_isolate_lru
 */
export function isolateLru(core: MmCore, pfn: number): boolean {
  const phys = core.phys;
  if (pfn <= 0 || pfn >= phys.total) return false;
  const f = phys.flags[pfn]!;
  if ((f & Frame.LRU) === 0) return false;
  if ((f & (Frame.FREE | Frame.KERNEL | Frame.PAGETABLE | Frame.ZERO)) !== 0) return false;
  if ((f & (Frame.ANON | Frame.FILE)) === 0 || phys.refcount[pfn]! <= 0) return false;
  phys.flags[pfn]! &= ~Frame.LRU;
  phys.get(pfn);
  return true;
}

/**
 * Puts an isolated frame back at the LRU's tail (rotation) and drops the isolation reference,
 * which may free it.
 *
 * Context: atomic; the caller must not hold the folio lock if this can be the last reference.
 *
 * @see folio_putback_lru
 */
export function putbackLru(core: MmCore, pfn: number): void {
  core.lruAdd(pfn);
  core.phys.put(pfn);
}

/** What reclaiming one folio did. */
type ShrinkResult = 'freed' | 'kept' | 'gone';

/**
 * Reclaims one isolated folio (the body of `shrink_folio_list` for one folio): trylock it; keep
 * pinned or otherwise referenced ones; with `aging`, keep (rotate) a folio whose PTEs were
 * referenced since the last pass, marking it PG_referenced; otherwise unmap it
 * (`tryToUnmap`), complete the deferred TLB flush (`try_to_unmap_flush`), write the swap
 * slot or the dirty file page, drop it from the page cache, unlock it, and put the last
 * reference, which frees it.
 */
function* shrinkFolio(core: MmCore, pfn: number, aging: boolean): TaskGen<ShrinkResult> {
  const phys = core.phys;
  if (!phys.tryLockFolio(pfn)) {
    putbackLru(core, pfn);
    return 'kept';
  }
  const keep = (): ShrinkResult => {
    phys.unlockFolio(pfn);
    putbackLru(core, pfn);
    return 'kept';
  };
  if (phys.pincount[pfn]! > 0) return keep();
  const file = (phys.flags[pfn]! & Frame.FILE) !== 0;
  if (aging) {
    const refs = yield* folioReferenced(core, pfn);
    const wasReferenced = (phys.flags[pfn]! & Frame.REFERENCED) !== 0;
    phys.flags[pfn]! &= ~Frame.REFERENCED;
    if (refs === -1) {
      if (wasReferenced) phys.flags[pfn]! |= Frame.REFERENCED;
      return keep();
    }
    if (refs > 0) {
      // Second chance: spare it for another trip around the list (FOLIOREF_KEEP/ACTIVATE).
      phys.flags[pfn]! |= Frame.REFERENCED;
      return keep();
    }
  }
  // References we can account for: ours, one per mapping, the page cache's.
  const owner = file ? core.files.get(phys.mapping[pfn]!) : undefined;
  const index = phys.index[pfn]!;
  const inCache = owner !== undefined && owner.pageCache.get(index) === pfn;
  if (phys.refcount[pfn]! > 1 + phys.mapcount[pfn]! + (inCache ? 1 : 0)) return keep();

  const { unmapped, slot } = yield* tryToUnmap(core, pfn);
  yield* core.tlb.batchFlush(); // try_to_unmap_flush: before the content is read or freed
  if (slot >= 0) {
    core.swap.endWriteback(slot, pfn, phys.snapshot(pfn)); // pageout
    const bus = core.kernel.bus;
    if (bus.wants('mm.swap.out')) bus.emit('mm.swap.out', { pfn, slot });
  }
  if (!unmapped) return keep();
  if (owner !== undefined && (phys.flags[pfn]! & Frame.DIRTY) !== 0) {
    owner.backing.set(index, phys.snapshot(pfn)); // pageout: synchronous writeback
    phys.flags[pfn]! &= ~Frame.DIRTY;
  }
  if (owner !== undefined && inCache && owner.pageCache.get(index) === pfn) {
    if (phys.refcount[pfn]! !== 2) return keep(); // a new user came: __remove_mapping fails
    owner.pageCache.delete(index); // __filemap_remove_folio
    phys.put(pfn); // the page cache's reference
  }
  phys.unlockFolio(pfn);
  if (phys.refcount[pfn]! > 1) {
    // Someone (GUP without a pin) still holds it: it is freed by their last put. Its swap slot
    // or file content is already written.
    phys.put(pfn);
    return 'gone';
  }
  phys.put(pfn); // the last reference: freed, after the flush above
  return 'freed';
}

/**
 * Reclaims the folio in frame `pfn` without looking at its references (`reclaim_pages`, as
 * MADV_PAGEOUT does): isolate it from the LRU, then as {@link shrinkLru} does for one folio.
 * Returns true if the frame was freed.
 *
 * Context: may sleep; takes the folio lock (trylock), the rmap lock and PTE locks.
 *
 * @see reclaim_pages
 */
export function* reclaimFolio(core: MmCore, pfn: number): TaskGen<boolean> {
  if (!isolateLru(core, pfn)) return false;
  const r = yield* reclaimScope(core, () => shrinkFolio(core, pfn, false), null);
  if (r === null) putbackLru(core, pfn);
  return r === 'freed';
}

/** Tasks (ids) running reclaim, per memory model: `PF_MEMALLOC`. */
const inReclaim = new WeakMap<MmCore, Set<number>>();

/**
 * Runs `body` as reclaim does: inside the `fs_reclaim` lockdep map, with PF_MEMALLOC set (the
 * task's allocations skip the reclaim annotations, and it does not enter reclaim again).
 * Returns `none` without running `body` if the task is already reclaiming.
 */
function* reclaimScope<T>(core: MmCore, body: () => TaskGen<T>, none: T): TaskGen<T> {
  const k = core.kernel;
  const me = k.scheduler.current.id;
  let tasks = inReclaim.get(core);
  if (tasks === undefined) {
    tasks = new Set();
    inReclaim.set(core, tasks);
  }
  if (tasks.has(me)) return none; // PF_MEMALLOC: no recursion into reclaim
  tasks.add(me);
  const map = k.lockdep.map(FS_RECLAIM_MAP);
  map.acquire();
  const restore = k.allocScope('noreclaim');
  try {
    return yield* body();
  } finally {
    restore();
    map.release();
    tasks.delete(me);
  }
}

/**
 * Shrinks the LRU by up to `nr` frames (`shrink_inactive_list` → `shrink_folio_list`, one LRU
 * list with second chance): walks `core.lru` oldest first, skipping stale entries (a freed frame,
 * one no longer on the LRU, page-table and kernel frames). Each candidate is isolated and:
 * - kept and rotated to the tail if its folio lock is contended, if it is pinned or has
 *   references reclaim cannot account for, or if a PTE referenced it since the last pass
 *   ({@link folioReferenced}; it is then marked PG_referenced);
 * - otherwise unmapped (`tryToUnmap`), flushed, written to swap or back to its file, and
 *   freed.
 *
 * Candidates are isolated in batches of {@link SWAP_CLUSTER_MAX} and each batch is processed
 * whole. At most twice the LRU's length entries are looked at, so a list where every page was
 * just used is aged once and then reclaimed. A task already in reclaim does not enter it again
 * (PF_MEMALLOC): the call returns 0.
 *
 * Installed as `core.reclaimer` (direct reclaim: the allocating task runs it, holding at most its
 * mmap_lock for read, which comes before every lock reclaim takes — the kernel's order) and used
 * by `MmService.reclaim` (kswapd-style). Runs inside the `fs_reclaim` lockdep map with
 * PF_MEMALLOC (`memalloc_noreclaim_save`).
 *
 * @returns the number of frames freed.
 * @see shrink_folio_list
 * @see try_to_free_pages
 */
export function* shrinkLru(core: MmCore, nr: number): TaskGen<number> {
  return yield* reclaimScope(core, () => shrinkLruLocked(core, nr), 0);
}

/** Folios isolated from the LRU at once (`SWAP_CLUSTER_MAX`). */
export const SWAP_CLUSTER_MAX = 32;

function* shrinkLruLocked(core: MmCore, nr: number): TaskGen<number> {
  const lru = core.lru;
  let budget = 2 * lru.length;
  let freed = 0;
  while (freed < nr && budget > 0 && lru.length > 0) {
    // isolate_lru_folios: take a batch off the head, skipping stale entries.
    const take = Math.min(SWAP_CLUSTER_MAX, budget, lru.length);
    budget -= take;
    const batch = lru.splice(0, take).filter((pfn) => isolateLru(core, pfn));
    // shrink_folio_list over the whole batch.
    for (const pfn of batch) {
      if ((yield* shrinkFolio(core, pfn, true)) === 'freed') freed++;
    }
  }
  return freed;
}
