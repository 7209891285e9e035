import { Errno, GFP_KERNEL, KernelBug } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { MMAP_BASE, PAGE_SIZE, pageAlignUp, PMD_SIZE, TASK_SIZE } from './constants.js';
import type { MmCore } from './core.js';
import type { MmStruct } from './mm.js';
import { insertVma, updateVma } from './mmap.js';
import { NotifierRange } from './notifier.js';
import type { PteSlot } from './pagetable.js';
import { Pte, PTE_NONE } from './pte.js';
import { splitHugeRange, VmHuge } from './huge/thp.js';
import { pteSpans, unmapRegionLocked } from './unmap.js';
import type { PteSpan } from './unmap.js';
import { Vma } from './vma.js';
import { mremapDontUnmap } from './mremap-dontunmap.js';

/**
 * `MREMAP_*` flags of `doMremap`.
 * @see MREMAP_MAYMOVE
 */
export const Mremap = {
  /** `MREMAP_MAYMOVE`: the mapping may move if it cannot grow in place. */
  MAYMOVE: 1,
  /** `MREMAP_FIXED`: move to exactly `newAddr` (replacing what is there); needs MAYMOVE. */
  FIXED: 2,
  /**
   * `MREMAP_DONTUNMAP`: move the pages but leave the old range mapped (and empty); needs
   * MAYMOVE and equal lengths (see `mremap-dontunmap.ts`).
   */
  DONTUNMAP: 4,
} as const;

/**
 * `mremap(oldAddr, oldLen, newLen, flags, newAddr)`: the (new) address, or:
 * - -EINVAL: unknown flags; MREMAP_DONTUNMAP without MAYMOVE or with different lengths, or on
 *   a VM_PFNMAP mapping; `oldAddr` not page aligned;
 *   `newLen` 0 or beyond TASK_SIZE; with FIXED: `newAddr` unaligned or the new range past
 *   TASK_SIZE, FIXED without MAYMOVE, or the new range overlapping the old; `oldLen` 0 (the
 *   "duplicate a shared mapping" special case is not modelled);
 * - -EFAULT: `[oldAddr, oldAddr + oldLen)` is not inside one VMA;
 * - -ENOMEM: it cannot grow in place and may not move, or there is no room to move it.
 *
 * Takes `mmap_lock` for write. Shrinking unmaps the tail (a munmap: UNMAP window, zap, free).
 * Growing extends the VMA when the old range ends it and the space after is free. Otherwise
 * the mapping moves (`move_vma`, notifier-core.md §7 row 14): a new VMA with the same flags,
 * file, page offset and anon_vma (so every page's rmap index stays valid); one UNMAP window over
 * the OLD range in which the PTEs move (mapcounts and references unchanged) table by table,
 * each table's old range flushed from the TLB before its lock is dropped; end; then the old
 * range is unmapped as by munmap (a second, now empty UNMAP window, its page tables freed, the
 * old VMA removed). If a destination page table cannot be allocated, the moved entries go back
 * and the call fails with -ENOMEM.
 *
 * @see SYSCALL_DEFINE5(mremap)
 * @see move_vma
 * @see move_page_tables
 */
export function* doMremap(
  core: MmCore,
  mm: MmStruct,
  oldAddr: number,
  oldLen: number,
  newLen: number,
  flags: number,
  newAddr: number,
): TaskGen<number> {
  const E = Errno;
  if (!Number.isInteger(flags) || flags < 0 || (flags & ~0x7) !== 0) return -E.EINVAL;
  if (!Number.isInteger(oldAddr) || oldAddr < 0 || oldAddr % PAGE_SIZE !== 0) return -E.EINVAL;
  if (!Number.isInteger(oldLen) || !Number.isInteger(newLen)) return -E.EINVAL;
  const nlen = pageAlignUp(newLen);
  if (nlen === 0 || newLen < 0 || nlen > TASK_SIZE) return -E.EINVAL;
  const mayMove = (flags & Mremap.MAYMOVE) !== 0;
  const fixed = (flags & Mremap.FIXED) !== 0;
  if (fixed) {
    if (!Number.isInteger(newAddr) || newAddr < 0 || newAddr > TASK_SIZE - nlen) return -E.EINVAL;
    if (newAddr % PAGE_SIZE !== 0) return -E.EINVAL;
    if (!mayMove) return -E.EINVAL;
  }
  // A negative old length is a huge size_t: it cannot fit in one VMA.
  if (oldLen < 0) return -E.EFAULT;
  const olen = pageAlignUp(oldLen);
  if (fixed && newAddr < oldAddr + olen && oldAddr < newAddr + nlen) return -E.EINVAL;
  if ((flags & Mremap.DONTUNMAP) !== 0)
    return yield* mremapDontUnmap(core, mm, oldAddr, olen, nlen, mayMove, fixed ? newAddr : -1);
  yield* mm.mmapLock.downWrite();
  const r = yield* mremapLocked(core, mm, oldAddr, olen, nlen, mayMove, fixed ? newAddr : -1);
  mm.mmapLock.upWrite();
  return r;
}

/** The body of `mremap` with `mmap_lock` held for write; `newAddr` -1 without FIXED. */
function* mremapLocked(
  core: MmCore,
  mm: MmStruct,
  oldAddr: number,
  olen: number,
  nlen: number,
  mayMove: boolean,
  newAddr: number,
): TaskGen<number> {
  const E = Errno;
  let vma = mm.vmas.find(oldAddr);
  if (vma === undefined || olen > vma.end - oldAddr) return -E.EFAULT;
  if ((vma.flags & VmHuge.HUGETLB) !== 0) return -E.EINVAL; // move_hugetlb_page_tables: not modelled
  if (olen === 0) return -E.EINVAL;
  if (newAddr >= 0) {
    // mremap_to: clear the destination, shrink the source first if needed, then move.
    yield* unmapRegionLocked(core, mm, newAddr, newAddr + nlen);
    let len = olen;
    if (olen > nlen) {
      yield* unmapRegionLocked(core, mm, oldAddr + nlen, oldAddr + olen);
      len = nlen;
    }
    vma = mm.vmas.find(oldAddr);
    if (vma === undefined) return -E.EFAULT;
    return yield* moveVma(core, mm, vma, oldAddr, len, nlen, newAddr);
  }
  if (olen >= nlen) {
    if (olen > nlen) yield* unmapRegionLocked(core, mm, oldAddr + nlen, oldAddr + olen);
    return oldAddr;
  }
  if (oldAddr + olen === vma.end) {
    const newEnd = vma.end + (nlen - olen);
    if (newEnd <= TASK_SIZE && mm.vmas.isFree(vma.end, newEnd)) {
      updateVma(core, vma, vma.start, newEnd, vma.flags, vma.pgoff);
      return oldAddr;
    }
  }
  if (!mayMove) return -E.ENOMEM;
  const dest = mm.vmas.findFree(nlen, MMAP_BASE, TASK_SIZE);
  if (dest < 0) return -E.ENOMEM;
  return yield* moveVma(core, mm, vma, oldAddr, olen, nlen, dest);
}

/** `move_vma`: new VMA, move the page tables, unmap the old range. */
function* moveVma(
  core: MmCore,
  mm: MmStruct,
  vma: Vma,
  oldAddr: number,
  olen: number,
  nlen: number,
  newAddr: number,
): TaskGen<number> {
  const nv = yield* copyVmaMoveTables(core, mm, vma, oldAddr, olen, nlen, newAddr);
  if (typeof nv === 'number') return nv;
  yield* unmapRegionLocked(core, mm, oldAddr, oldAddr + olen);
  return newAddr;
}

/**
 * The first half of `move_vma`: `copy_vma` (a new VMA at `newAddr` with the old range's flags,
 * file, offset and anon_vma) and `move_page_tables` of `olen` bytes into it. Returns the new
 * VMA, or -ENOMEM when a page table could not be allocated (what moved is put back and the new
 * mapping dropped). The old range stays mapped; the caller unmaps it (or, for
 * MREMAP_DONTUNMAP, keeps it empty). Caller holds `mmap_lock` for write.
 */
export function* copyVmaMoveTables(
  core: MmCore,
  mm: MmStruct,
  vma: Vma,
  oldAddr: number,
  olen: number,
  nlen: number,
  newAddr: number,
): TaskGen<Vma | number> {
  const pgoff = vma.pgoff + (oldAddr - vma.start) / PAGE_SIZE;
  const nv = new Vma(mm, newAddr, newAddr + nlen, vma.flags, vma.file, pgoff);
  nv.anonVma = vma.anonVma;
  core.kernel.mightAlloc(GFP_KERNEL, 'vm_area_dup');
  insertVma(core, nv);
  const moved = yield* movePageTables(core, vma, oldAddr, nv, newAddr, olen);
  if (moved < olen) {
    // Out of memory for a page table: put back what moved, drop the new mapping.
    yield* movePageTables(core, nv, newAddr, vma, oldAddr, moved);
    yield* unmapRegionLocked(core, mm, newAddr, newAddr + nlen);
    return -Errno.ENOMEM;
  }
  return nv;
}

/**
 * `move_page_tables`: one UNMAP window over the source range `[oldAddr, oldAddr + len)`; for
 * each populated source PTE table, in extents that end at both tables' boundaries, allocate the
 * destination table and move the entries. Returns the bytes processed: `len`, or less when a
 * destination table could not be allocated.
 *
 * @see move_page_tables
 */
export function* movePageTables(
  core: MmCore,
  src: Vma,
  oldAddr: number,
  dst: Vma,
  newAddr: number,
  len: number,
): TaskGen<number> {
  const mm = src.mm;
  const sched = core.kernel.scheduler;
  const range = new NotifierRange('UNMAP', mm, oldAddr, oldAddr + len);
  yield* core.notifiers.invalidateRangeStart(range);
  yield* splitHugeRange(core, src, oldAddr, oldAddr + len); // move_huge_pmd is not modelled
  let moved = len;
  outer: for (const span of pteSpans(core, mm, oldAddr, oldAddr + len)) {
    let s = span.base + span.from * PAGE_SIZE;
    const spanEnd = span.base + span.to * PAGE_SIZE;
    while (s < spanEnd) {
      const d = s - oldAddr + newAddr;
      const e = Math.min(spanEnd, s + PMD_SIZE - (d % PMD_SIZE));
      const slot = yield* core.pt.allocSlot(mm, d);
      if (slot === null) {
        moved = s - oldAddr;
        break outer;
      }
      yield* movePtes(core, src, dst, span, s, e, slot, d);
      s = e;
    }
    yield* sched.preempt();
  }
  yield* core.notifiers.invalidateRangeEnd(range);
  return moved;
}

/**
 * `move_ptes`: with the reverse-map locks held for write (so an rmap walk sees the entry either
 * at the old or at the new address, never in neither) and the source table's PTL, move each
 * entry of `[s, e)` to `d…` (present entries get the soft-dirty bit), then flush the source
 * range from the TLB before dropping the PTL if anything present moved.
 *
 * The destination table's PTL is not taken: the model's spinlocks have no nesting annotation,
 * and under exclusive `mmap_lock` plus the rmap locks nothing else reaches those entries.
 */
function* movePtes(
  core: MmCore,
  src: Vma,
  dst: Vma,
  span: PteSpan,
  s: number,
  e: number,
  slot: PteSlot,
  d: number,
): TaskGen<void> {
  const mm = src.mm;
  const file = src.file;
  const av = src.anonVma ?? dst.anonVma;
  if (file !== null) yield* file.iMmapRwsem.downWrite();
  if (av !== null) yield* av.lock.downWrite();
  const ptl = mm.ptl(span.tablePfn);
  yield* ptl.lock();
  const bus = core.kernel.bus;
  const log = bus.wants('mm.pte.set');
  const from = span.table;
  const to = slot.table;
  let si = (s - span.base) / PAGE_SIZE;
  let di = slot.index;
  let flush = false;
  for (let va = s, nva = d; va < e; va += PAGE_SIZE, nva += PAGE_SIZE, si++, di++) {
    const pte = from[si]!;
    if (pte === PTE_NONE) continue;
    const f = pte % PAGE_SIZE;
    let moved = pte;
    if ((f & (Pte.PRESENT | Pte.PROTNONE)) !== 0) {
      flush = true;
      if ((f & Pte.SOFT_DIRTY) === 0) moved += Pte.SOFT_DIRTY;
    }
    const old = to[di]!;
    if (old !== PTE_NONE) {
      throw new KernelBug(
        `move_ptes: ${mm.toString()} destination 0x${nva.toString(16)} is not empty`,
      );
    }
    from[si] = PTE_NONE;
    to[di] = moved;
    if (log) {
      bus.emit('mm.pte.set', { mm: mm.id, va, pte: PTE_NONE, old: pte });
      bus.emit('mm.pte.set', { mm: mm.id, va: nva, pte: moved, old: PTE_NONE });
    }
  }
  if (flush) yield* core.tlb.flushRange(mm, s, e, false);
  ptl.unlock();
  if (av !== null) av.lock.upWrite();
  if (file !== null) file.iMmapRwsem.upWrite();
}
