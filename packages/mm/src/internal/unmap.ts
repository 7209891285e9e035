import { Errno, KernelBug } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { PAGE_SIZE, pageAlignUp, TASK_SIZE, ULONG_MAX_RANGE_END } from './constants.js';
import type { MmCore } from './core.js';
import { MmuGather } from './gather.js';
import type { MmStruct } from './mm.js';
import { removeVma, vmasExactly } from './mmap.js';
import { NotifierRange } from './notifier.js';
import { Frame, PhysMem } from './physmem.js';
import { hugetlbSplitCheck, hugetlbUnreserve } from './huge/hugetlb.js';
import { hugeMadvise, isHugeAdvice } from './huge/madvise.js';
import { madviseFreeHugeRange, zapHugeRange } from './huge/thp.js';
import { Pte, PTE_NONE } from './pte.js';
import { Vm } from './vma.js';
import { pteIsDeviceEntry } from './device/entries.js';
import { zapDeviceEntry } from './device/hooks.js';
import type { Vma } from './vma.js';

/**
 * `MADV_*` advice values `madvise` accepts here; any other value is -EINVAL.
 * @see MADV_DONTNEED
 * @see MADV_FREE
 */
export const Madv = {
  /** `MADV_NORMAL`: no special treatment (the default read-ahead); no modelled effect. */
  NORMAL: 0,
  /** `MADV_WILLNEED`: read ahead soon; a hint with no modelled effect. */
  WILLNEED: 3,
  /** `MADV_DONTNEED`: drop the pages now; the next access sees zeroes (anon) or the file. */
  DONTNEED: 4,
  /** `MADV_FREE`: anonymous pages may be discarded by reclaim while they stay clean. */
  FREE: 8,
} as const;

/** `MAX_OOM_REAP_RETRIES`: attempts the OOM reaper makes before giving up on an mm. @see oom_reap_task */
export const MAX_OOM_REAP_RETRIES = 10;

/** The OOM reaper's sleep between attempts: `HZ/10`, 100 ms of virtual time. @see oom_reap_task */
export const OOM_REAP_RETRY_NS = 100_000_000;

/**
 * One PTE table of a range to walk: its entries, frame, base address and index range.
 * @see pte_offset_map_lock
 */
export interface PteSpan {
  /** The table's entries. */
  readonly table: Float64Array;
  /** The table's frame (its split lock is `mm.ptl(tablePfn)`). */
  readonly tablePfn: number;
  /** Address of entry 0. */
  readonly base: number;
  /** First index inside the range. */
  readonly from: number;
  /** Exclusive end index inside the range. */
  readonly to: number;
}

/**
 * The existing PTE tables of `[start, end)`, in address order (the walk of `zap_pmd_range`
 * without the leaves). The caller holds `mmap_lock` (either mode) and the range lies in its
 * VMAs: page-table pages are freed only under the write lock, or by a munmap that downgraded
 * it and then only where no VMA remains, so the tables stay valid while the caller sleeps.
 *
 * @see zap_pmd_range
 */
export function pteSpans(core: MmCore, mm: MmStruct, start: number, end: number): PteSpan[] {
  const out: PteSpan[] = [];
  core.pt.forEachTable(mm, start, end, (table, tablePfn, base, from, to) => {
    out.push({ table, tablePfn, base, from, to });
  });
  return out;
}

/** Per-zap scratch state: whether the TLB must be flushed before the PTL is dropped. */
class ZapState {
  /** `force_flush`: flush under the PTL, then free the batch after dropping it. */
  forceFlush = false;
  /** Dirty page-cache pages whose rmap (mapcount) is dropped only after the flush (`delay_rmap`). */
  readonly delayed: number[] = [];
}

/**
 * The leaf loop of `zap_pte_range` over `table[from, to)` with the PTL held. Returns the index
 * where it stopped: `to`, or just after the page whose `removePage` filled the gather (the
 * "force break"). Atomic: no scheduling point.
 */
function zapEntries(
  core: MmCore,
  tlb: MmuGather,
  vma: Vma,
  table: Float64Array,
  base: number,
  from: number,
  to: number,
  st: ZapState,
): number {
  const phys = core.phys;
  const mapcount = phys.mapcount;
  const frameFlags = phys.flags;
  const bus = core.kernel.bus;
  const log = bus.wants('mm.pte.set');
  const mmId = tlb.mm.id;
  const rawPfns = (vma.flags & Vm.PFNMAP) !== 0;
  for (let i = from; i < to; i++) {
    const pte = table[i]!;
    if (pte === PTE_NONE) continue;
    const va = base + i * PAGE_SIZE;
    const f = pte % PAGE_SIZE;
    const n = (pte - f) / PAGE_SIZE;
    table[i] = PTE_NONE;
    if (log) bus.emit('mm.pte.set', { mm: mmId, va, pte: PTE_NONE, old: pte });
    if ((f & (Pte.PRESENT | Pte.PROTNONE)) !== 0) {
      // zap_present_ptes: the CPU may still hold a translation until the flush.
      tlb.removeTlbEntry(va);
      // vm_normal_page: the zero page and raw pfns have no struct page to release.
      if ((f & Pte.SPECIAL) !== 0 || n === PhysMem.ZERO_PFN || rawPfns) continue;
      const ff = frameFlags[n]!;
      let delay = false;
      if ((ff & Frame.ANON) === 0) {
        // A page-cache page: carry the dirty bit to the page (it is written back later, it
        // stays in the page cache); a dirty one keeps its rmap until the TLB is flushed, so
        // writeback cannot clean it while a stale writable translation exists.
        let nf = ff;
        if ((f & Pte.DIRTY) !== 0) {
          nf |= Frame.DIRTY;
          delay = true;
          st.forceFlush = true;
        }
        if ((f & Pte.ACCESSED) !== 0) nf |= Frame.REFERENCED;
        frameFlags[n] = nf;
      }
      if (delay) st.delayed.push(n);
      else if (--mapcount[n]! < 0) badPageMap(core, tlb.mm, va, n);
      // The PTE's reference moves to the gather: put after the flush.
      if (tlb.removePage(n)) {
        st.forceFlush = true;
        return i + 1;
      }
    } else if ((f & Pte.SWAP) !== 0) {
      core.swap.free(n); // free_swap_and_cache
    } else if (pteIsDeviceEntry(pte)) {
      zapDeviceEntry(core, n); // zap_nonpresent_ptes: device-private / device-exclusive
    }
    // A migration entry is just cleared: the folio under migration holds its own references
    // (the migration code's), and restoring the mapping must find the entry gone.
  }
  return to;
}

function badPageMap(core: MmCore, mm: MmStruct, va: number, pfn: number): void {
  core.kernel.report(
    'bad-page-map',
    `BUG: Bad page map in ${mm.toString()}: 0x${va.toString(16)} maps frame ${pfn} whose mapcount went negative`,
  );
}

/**
 * `zap_pte_range` over one PTE table: under the table's split lock clear every entry in
 * `[from, to)`. Present (and PROT_NONE) entries: `tlb_remove_tlb_entry`, mapcount−1 (a dirty
 * page-cache page only after the flush), the page's reference queued in the gather (the zero
 * page and raw pfns have none); swap entries: the slot is freed; migration entries: cleared.
 *
 * When the gather is full, or a dirty page-cache page was unmapped, the TLB is flushed before
 * the lock is dropped and the batch is freed right after — inside the caller's notifier window
 * (notifier-core.md §7 row 1, the "forced flush").
 */
function* zapPteTable(
  core: MmCore,
  tlb: MmuGather,
  vma: Vma,
  span: PteSpan,
  st: ZapState,
): TaskGen<void> {
  const ptl = tlb.mm.ptl(span.tablePfn);
  let i = span.from;
  while (i < span.to) {
    yield* ptl.lock();
    i = zapEntries(core, tlb, vma, span.table, span.base, i, span.to, st);
    const force = st.forceFlush;
    if (force) {
      yield* tlb.flushTlbOnly();
      // tlb_flush_rmaps: the delayed rmap removals, now that no CPU can write through them.
      const mapcount = core.phys.mapcount;
      for (const pfn of st.delayed) {
        if (--mapcount[pfn]! < 0) badPageMap(core, tlb.mm, span.base, pfn);
      }
      st.delayed.length = 0;
    }
    ptl.unlock();
    if (force) {
      st.forceFlush = false;
      yield* tlb.flushMmu();
    }
  }
}

/**
 * `unmap_page_range`: zap every PTE of `vma` in `[start, end)` into `tlb`, with a preemption
 * point after each PTE table (`cond_resched` in `zap_pmd_range`), then `tlb_end_vma` — on x86
 * (no `MMU_GATHER_MERGE_VMAS`) a TLB-only flush of the range at the end of each VMA unless the
 * gather is `fullmm`. Pages are freed later by the gather (forced flushes, `finish`).
 *
 * Context: caller holds `mmap_lock` (read or write) and, for a notifier window, has called
 * start. Never sleeps: only spinlocks (the PTLs) and TLB flushes, so the OOM reaper can run it.
 *
 * @see unmap_page_range
 * @see zap_pte_range
 */
export function* unmapPageRange(
  core: MmCore,
  tlb: MmuGather,
  vma: Vma,
  start: number,
  end: number,
): TaskGen<void> {
  const sched = core.kernel.scheduler;
  const st = new ZapState();
  yield* zapHugeRange(core, tlb, vma, start, end);
  for (const span of pteSpans(core, tlb.mm, start, end)) {
    yield* zapPteTable(core, tlb, vma, span, st);
    yield* sched.preempt();
  }
  if (!tlb.fullmm) yield* tlb.flushTlbOnly();
}

/**
 * `unmap_vmas`: ONE `MMU_NOTIFY_UNMAP` window over `[start, end)` spanning all `vmas` (blocking
 * start before the first PTE change, end after the last), each VMA's part zapped into `tlb`.
 * Page tables and the final flush are the caller's (after end).
 *
 * Context: `mmap_lock` held (write for munmap, read for exit); may sleep (notifier callbacks).
 *
 * @see unmap_vmas
 */
export function* unmapVmas(
  core: MmCore,
  tlb: MmuGather,
  vmas: readonly Vma[],
  start: number,
  end: number,
): TaskGen<void> {
  const range = new NotifierRange('UNMAP', tlb.mm, start, end);
  yield* core.notifiers.invalidateRangeStart(range);
  for (const v of vmas) {
    const s = Math.max(v.start, start);
    const e = Math.min(v.end, end);
    if (s < e) yield* unmapPageRange(core, tlb, v, s, e);
  }
  yield* core.notifiers.invalidateRangeEnd(range);
}

/**
 * `zap_page_range_single`: its own gather and a `MMU_NOTIFY_CLEAR` window over `[start, end)` of
 * one VMA — start, zap, end, then `tlb_finish_mmu` (flush and free). The VMA stays. For callers
 * such as truncation and hole punching (notifier-core.md §7 row 4).
 *
 * Context: `mmap_lock` read, or the file's `i_mmap_rwsem` read without this mm's mmap_lock; may
 * sleep.
 *
 * @see zap_page_range_single
 */
export function* zapPageRangeSingle(
  core: MmCore,
  vma: Vma,
  start: number,
  end: number,
): TaskGen<void> {
  const tlb = new MmuGather(core, vma.mm);
  yield* zapRangeInWindow(core, tlb, vma, start, end);
  yield* tlb.finish();
}

/** The CLEAR window of `zap_page_range_single(_batched)` around one VMA's zap. */
function* zapRangeInWindow(
  core: MmCore,
  tlb: MmuGather,
  vma: Vma,
  start: number,
  end: number,
): TaskGen<void> {
  const range = new NotifierRange('CLEAR', vma.mm, start, end);
  yield* core.notifiers.invalidateRangeStart(range);
  yield* unmapPageRange(core, tlb, vma, start, end);
  yield* core.notifiers.invalidateRangeEnd(range);
}

/**
 * The rmap half of `free_pgtables`: unlink each VMA from its anon_vma and its file's i_mmap,
 * under those locks for write, so no reverse-map walker can reach the page tables about to be
 * freed. The VMA objects themselves go later (`removeVma`).
 */
function* unlinkRmaps(vmas: readonly Vma[]): TaskGen<void> {
  for (const v of vmas) {
    const av = v.anonVma;
    if (av !== null && av.vmas.has(v)) {
      yield* av.lock.downWrite();
      av.vmas.delete(v);
      av.lock.upWrite();
    }
    const f = v.file;
    if (f !== null && f.mappings.has(v)) {
      yield* f.iMmapRwsem.downWrite();
      f.mappings.delete(v);
      f.iMmapRwsem.upWrite();
    }
  }
}

/**
 * `free_pgtables`: unlink the VMAs from the reverse map, then hand every page-table page whose
 * span lies in `[floor, ceiling)` to the gather (freed after its next flush).
 */
function* freePgtables(
  core: MmCore,
  tlb: MmuGather,
  vmas: readonly Vma[],
  floor: number,
  ceiling: number,
): TaskGen<void> {
  yield* unlinkRmaps(vmas);
  core.pt.freeTables(tlb.mm, floor, ceiling, tlb);
}

/**
 * `find_vma`: the first VMA ending above `addr` (it may start above `addr`), or undefined.
 * Caller holds `mmap_lock`.
 * @see find_vma
 */
export function findVma(mm: MmStruct, addr: number): Vma | undefined {
  const l = mm.vmas.all;
  let lo = 0;
  let hi = l.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (l[mid]!.end <= addr) lo = mid + 1;
    else hi = mid;
  }
  return l[lo];
}

/**
 * The munmap core (`do_vmi_align_munmap` → `vms_complete_munmap_vmas` → `vms_clear_ptes`): split
 * the VMAs at the edges and detach them from the mm (faults there now find no VMA), optionally
 * downgrade `mmap_lock` to read (the munmap syscall), then one gather, one UNMAP window over
 * `[start, end)`, zap, end, free the page tables between the neighbouring VMAs, `tlb_finish_mmu`,
 * and finally remove the VMAs. Returns whether the lock was downgraded (false when nothing was
 * mapped, in which case nothing happened).
 */
function* munmapLocked(
  core: MmCore,
  mm: MmStruct,
  start: number,
  end: number,
  downgrade: boolean,
): TaskGen<boolean> {
  const vmas = vmasExactly(core, mm, start, end);
  if (vmas.length === 0) return false;
  for (const v of vmas) mm.vmas.remove(v);
  let prev: Vma | undefined;
  let next: Vma | undefined;
  for (const v of mm.vmas.all) {
    if (v.end <= start) prev = v;
    else if (v.start >= end) {
      next = v;
      break;
    }
  }
  if (downgrade) mm.mmapLock.downgradeWrite();
  const tlb = new MmuGather(core, mm);
  yield* unmapVmas(core, tlb, vmas, start, end);
  yield* freePgtables(core, tlb, vmas, prev?.end ?? 0, next?.start ?? TASK_SIZE);
  yield* tlb.finish();
  for (const v of vmas) hugetlbUnreserve(core, v, v.start, v.end);
  for (const v of vmas) removeVma(core, v);
  return downgrade;
}

/**
 * Unmaps `[start, end)` (page aligned) with `mmap_lock` held for write, and keeps it held for
 * write: used by `mmap(MAP_FIXED)` over existing mappings, `brk` shrinking and `mremap`. Holes
 * are skipped; nothing mapped means nothing happens. Order (notifier-core.md §7 row 1): UNMAP
 * start → zap (forced flushes free pages inside the window) → end → free page tables
 * (floor/ceiling: the neighbouring VMAs) → `tlb_finish_mmu` (final flush, then free) → VMAs
 * removed and unlinked from their file/anon_vma.
 *
 * @see do_vmi_munmap
 * @see unmap_region
 */
export function* unmapRegionLocked(
  core: MmCore,
  mm: MmStruct,
  start: number,
  end: number,
): TaskGen<void> {
  yield* munmapLocked(core, mm, start, end, false);
}

/**
 * `munmap(addr, len)`. Returns 0, or -EINVAL when `addr` is not page aligned, `len` is 0 (or not
 * a non-negative integer), or `[addr, addr + len)` reaches past TASK_SIZE. Unmapping a hole is
 * not an error. Takes `mmap_lock` for write, detaches the VMAs, then downgrades to read for the
 * zap as the syscall does (faults elsewhere in the mm proceed meanwhile).
 *
 * @see __vm_munmap
 */
export function* doMunmap(core: MmCore, mm: MmStruct, addr: number, len: number): TaskGen<number> {
  const E = Errno;
  if (!Number.isInteger(addr) || addr < 0 || addr % PAGE_SIZE !== 0) return -E.EINVAL;
  if (!Number.isInteger(len) || len < 0 || addr > TASK_SIZE || len > TASK_SIZE - addr)
    return -E.EINVAL;
  const end = addr + pageAlignUp(len);
  if (end === addr || end > TASK_SIZE) return -E.EINVAL;
  yield* mm.mmapLock.downWrite();
  const split = hugetlbSplitCheck(mm, addr, end);
  if (split !== 0) {
    mm.mmapLock.upWrite();
    return split;
  }
  const downgraded = yield* munmapLocked(core, mm, addr, end, true);
  if (downgraded) mm.mmapLock.upRead();
  else mm.mmapLock.upWrite();
  return 0;
}

/**
 * `exit_mmap`, in the kernel's order (notifier-core.md §3.4, §7 row 2): `mmu_notifier_release`
 * first — before any page is unmapped — then, under `mmap_lock` for read, a fullmm gather and
 * one UNMAP window over `[0, TASK_SIZE)` (the kernel's `[0, ULONG_MAX)`) covering every VMA;
 * `MMF_OOM_SKIP`; then under `mmap_lock` for write: free every page table below the PGD,
 * `tlb_finish_mmu`, remove the VMAs, and mark the mm exited. Emits `mm.exit`.
 *
 * Context: `mm_users` is 0 (called from `mmput`); may sleep. The OOM reaper may run alongside
 * the zap (both hold the read lock); the write lock excludes it from the page-table teardown.
 *
 * @see exit_mmap
 */
export function* exitMmap(core: MmCore, mm: MmStruct): TaskGen<void> {
  yield* core.notifiers.release(mm);
  yield* mm.mmapLock.downRead();
  const vmas = [...mm.vmas.all];
  const tlb = new MmuGather(core, mm, true);
  if (vmas.length > 0) yield* unmapVmas(core, tlb, vmas, 0, ULONG_MAX_RANGE_END);
  mm.mmapLock.upRead();
  mm.oomSkip = true;
  yield* mm.mmapLock.downWrite();
  yield* freePgtables(core, tlb, vmas, 0, TASK_SIZE);
  yield* tlb.finish();
  for (const v of vmas) hugetlbUnreserve(core, v, v.start, v.end);
  for (const v of vmas) removeVma(core, v);
  mm.exited = true;
  mm.mmapLock.upWrite();
  const bus = core.kernel.bus;
  if (bus.wants('mm.exit')) bus.emit('mm.exit', { mm: mm.id });
}

/**
 * `mmget`: take a user reference (`mm_users`) on an mm known to have users (the caller holds
 * one). Taking one on an mm whose users already reached 0 is a kernel BUG here (use
 * {@link mmgetNotZero} when the mm may be exiting).
 *
 * @see mmget
 */
export function mmget(mm: MmStruct): void {
  if (mm.users <= 0 || mm.freed)
    throw new KernelBug(`mmget on ${mm.toString()} whose mm_users is already 0`);
  mm.users++;
}

/**
 * `mmget_not_zero`: take a user reference unless the address space is already being torn down
 * (`mm_users` reached 0); returns whether it was taken.
 *
 * @see mmget_not_zero
 */
export function mmgetNotZero(mm: MmStruct): boolean {
  if (mm.users <= 0) return false;
  mm.users++;
  return true;
}

/**
 * `mmput`: drop a user reference; the last one tears the address space down (`exit_mmap`) and
 * then drops the users' `mm_count` reference (`mmdrop`). A put below zero is a kernel BUG.
 *
 * Context: may sleep.
 *
 * @see mmput
 */
export function* mmput(core: MmCore, mm: MmStruct): TaskGen<void> {
  core.kernel.mightSleep('mmput');
  if (mm.users <= 0) throw new KernelBug(`mmput on ${mm.toString()} with mm_users already 0`);
  if (--mm.users > 0) return;
  yield* exitMmap(core, mm);
  mmdrop(core, mm);
}

/**
 * `mmgrab`: take a reference on the `mm_struct` itself (`mm_count`), which keeps the structure
 * (not the address space) alive — as notifier subscriptions and the OOM reaper do.
 *
 * @see mmgrab
 */
export function mmgrab(mm: MmStruct): void {
  if (mm.count <= 0 || mm.freed)
    throw new KernelBug(`mmgrab on ${mm.toString()} that is already freed`);
  mm.count++;
}

/**
 * True if a notifier-subscriptions container still holds classic (list) subscribers. The
 * container belongs to the notifier subsystem; until it exists, a container counts as having
 * subscribers only if it exposes a non-empty `list` (array, Set or Map).
 */
function hasListSubscribers(c: object | null): boolean {
  if (c === null) return false;
  const list = (c as { list?: unknown }).list;
  if (Array.isArray(list)) return list.length > 0;
  if (list instanceof Set || list instanceof Map) return list.size > 0;
  return false;
}

/**
 * `mmdrop`: drop an `mm_count` reference; the last one frees the `mm_struct`: its PGD
 * (`mm_free_pgd`; every lower table must be gone), then the notifier container
 * (`mmu_notifier_subscriptions_destroy`, which BUGs if classic subscribers are still listed —
 * a subscriber must unregister, or be released by exit, before the mm dies). The mm is then
 * `freed` and leaves `core.mms`. Dropping below zero is a kernel BUG.
 *
 * @see mmdrop
 * @see __mmdrop
 */
export function mmdrop(core: MmCore, mm: MmStruct): void {
  if (mm.count <= 0 || mm.freed)
    throw new KernelBug(`mmdrop on ${mm.toString()} with mm_count already 0`);
  if (--mm.count > 0) return;
  core.pt.freePgd(mm);
  if (hasListSubscribers(mm.notifierSubscriptions)) {
    throw new KernelBug(
      `mmu_notifier_subscriptions_destroy: ${mm.toString()} freed with notifier subscriptions still on its list`,
    );
  }
  mm.notifierSubscriptions = null;
  mm.freed = true;
  core.mms.delete(mm.id);
}

// --- madvise -------------------------------------------------------------------------------

/**
 * `madvise(addr, len, advice)` for {@link Madv.DONTNEED} and {@link Madv.FREE} (and the hints
 * {@link Madv.NORMAL} and {@link Madv.WILLNEED}, which only check the range). Returns 0, or:
 * - -EINVAL: another advice; `addr` not page aligned; `len` negative (not an integer) or the
 *   range overflowing; a DONTNEED/FREE-incapable VMA in the range (VM_PFNMAP; FREE: any VMA
 *   that is not private anonymous — the walk stops there);
 * - -ENOMEM: part of the range is unmapped (the mapped parts are still advised).
 *
 * `len` 0 is a no-op. Takes `mmap_lock` for read; one mmu_gather for the call
 * (`madvise_init_tlb`), one CLEAR window per VMA part, `tlb_finish_mmu` at the end. Two
 * concurrent calls on one mm nest their gathers, and the later `finish` flushes the whole mm.
 *
 * - DONTNEED (notifier-core.md §7 row 4): start → zap → end; anon pages read back as zeroes,
 *   file pages are read from the page cache / file again.
 * - FREE (row 5): start → under each PTL clear the dirty and young bits of present anonymous
 *   pages, mark them `Frame.LAZYFREE` (a dirty page only if mapped once, and then cleaned;
 *   swap entries are freed and cleared) → flush → end. A later write dirties the PTE again,
 *   which tells reclaim to keep the page.
 *
 * @see do_madvise
 * @see madvise_dontneed_single_vma
 * @see madvise_free_single_vma
 */
export function* doMadvise(
  core: MmCore,
  mm: MmStruct,
  addr: number,
  len: number,
  advice: number,
): TaskGen<number> {
  const E = Errno;
  if (isHugeAdvice(advice)) return yield* hugeMadvise(core, mm, addr, len, advice);
  const hint = advice === Madv.NORMAL || advice === Madv.WILLNEED;
  if (advice !== Madv.DONTNEED && advice !== Madv.FREE && !hint) return -E.EINVAL;
  if (!Number.isInteger(addr) || addr < 0 || addr % PAGE_SIZE !== 0) return -E.EINVAL;
  if (!Number.isInteger(len) || len < 0) return -E.EINVAL;
  const end = addr + pageAlignUp(len);
  if (end > 2 ** 64) return -E.EINVAL;
  if (end === addr) return 0;
  if (hint) return yield* madviseHint(mm, addr, end, advice === Madv.NORMAL);
  yield* mm.mmapLock.downRead();
  const tlb = new MmuGather(core, mm);
  let unmapped = 0;
  let error = 0;
  let start = addr;
  let vma = findVma(mm, start);
  for (;;) {
    if (vma === undefined) {
      error = -E.ENOMEM;
      break;
    }
    if (start < vma.start) {
      unmapped = -E.ENOMEM;
      start = vma.start;
      if (start >= end) break;
    }
    const tmp = Math.min(vma.end, end);
    error =
      advice === Madv.DONTNEED
        ? yield* madviseDontneed(core, tlb, vma, start, tmp)
        : yield* madviseFree(core, tlb, vma, start, tmp);
    if (error !== 0) break;
    start = tmp;
    if (start >= end) break;
    vma = findVma(mm, start);
  }
  yield* tlb.finish();
  mm.mmapLock.upRead();
  return error !== 0 ? error : unmapped;
}

/**
 * MADV_NORMAL (mmap_lock for write: it would clear VM_RAND_READ/VM_SEQ_READ, which the model does
 * not have) and MADV_WILLNEED (for read: read-ahead, not modelled): 0 when `[start, end)` is
 * mapped, -ENOMEM when part of it is not (Linux 6.17 mm/madvise.c: madvise_walk_vmas).
 */
function* madviseHint(mm: MmStruct, start: number, end: number, write: boolean): TaskGen<number> {
  if (write) yield* mm.mmapLock.downWrite();
  else yield* mm.mmapLock.downRead();
  let at = start;
  let result = 0;
  while (at < end) {
    const vma = findVma(mm, at);
    if (vma === undefined || vma.start >= end) {
      result = -Errno.ENOMEM;
      break;
    }
    if (vma.start > at) result = -Errno.ENOMEM;
    at = vma.end;
  }
  if (write) mm.mmapLock.upWrite();
  else mm.mmapLock.upRead();
  return result;
}

/** `madvise_dontneed_single_vma` → `zap_page_range_single_batched`. */
function* madviseDontneed(
  core: MmCore,
  tlb: MmuGather,
  vma: Vma,
  start: number,
  end: number,
): TaskGen<number> {
  if ((vma.flags & Vm.PFNMAP) !== 0) return -Errno.EINVAL;
  yield* zapRangeInWindow(core, tlb, vma, start, end);
  return 0;
}

/** `madvise_free_single_vma`: CLEAR window, the `madvise_free_pte_range` walk, `tlb_end_vma`. */
function* madviseFree(
  core: MmCore,
  tlb: MmuGather,
  vma: Vma,
  start: number,
  end: number,
): TaskGen<number> {
  if ((vma.flags & Vm.PFNMAP) !== 0 || !vma.anonymous) return -Errno.EINVAL;
  const mm = tlb.mm;
  const range = new NotifierRange('CLEAR', mm, start, end);
  yield* core.notifiers.invalidateRangeStart(range);
  const sched = core.kernel.scheduler;
  yield* madviseFreeHugeRange(core, tlb, vma, start, end);
  for (const span of pteSpans(core, mm, start, end)) {
    const ptl = mm.ptl(span.tablePfn);
    yield* ptl.lock();
    freeEntries(core, tlb, span);
    ptl.unlock();
    yield* sched.preempt();
  }
  if (!tlb.fullmm) yield* tlb.flushTlbOnly();
  yield* core.notifiers.invalidateRangeEnd(range);
  return 0;
}

/** `madvise_free_pte_range`'s leaf loop, PTL held. */
function freeEntries(core: MmCore, tlb: MmuGather, span: PteSpan): void {
  const phys = core.phys;
  const bus = core.kernel.bus;
  const log = bus.wants('mm.pte.set');
  const mmId = tlb.mm.id;
  const { table, base } = span;
  for (let i = span.from; i < span.to; i++) {
    const pte = table[i]!;
    if (pte === PTE_NONE) continue;
    const va = base + i * PAGE_SIZE;
    const f = pte % PAGE_SIZE;
    const n = (pte - f) / PAGE_SIZE;
    if ((f & (Pte.PRESENT | Pte.PROTNONE)) === 0) {
      // A swapped-out page: drop it rather than swap it in later.
      if ((f & Pte.SWAP) !== 0) {
        table[i] = PTE_NONE;
        if (log) bus.emit('mm.pte.set', { mm: mmId, va, pte: PTE_NONE, old: pte });
        core.swap.free(n);
      }
      continue;
    }
    if ((f & Pte.SPECIAL) !== 0 || n === PhysMem.ZERO_PFN) continue;
    const ff = phys.flags[n]!;
    if ((ff & Frame.ANON) === 0) continue;
    if ((ff & Frame.DIRTY) !== 0) {
      // Only an exclusively mapped dirty page may be made clean.
      if (!phys.tryLockFolio(n)) continue;
      if (phys.mapcount[n] !== 1) {
        phys.unlockFolio(n);
        continue;
      }
      phys.flags[n]! &= ~Frame.DIRTY;
      phys.unlockFolio(n);
    }
    if ((f & (Pte.ACCESSED | Pte.DIRTY)) !== 0) {
      const cleaned = pte - (f & (Pte.ACCESSED | Pte.DIRTY));
      table[i] = cleaned;
      if (log) bus.emit('mm.pte.set', { mm: mmId, va, pte: cleaned, old: pte });
      tlb.removeTlbEntry(va);
    }
    phys.flags[n]! |= Frame.LAZYFREE;
  }
}

// --- OOM reaper -----------------------------------------------------------------------------

/**
 * The OOM reaper on `mm` (`oom_reap_task`): up to {@link MAX_OOM_REAP_RETRIES} attempts,
 * sleeping {@link OOM_REAP_RETRY_NS} (HZ/10) after each failed one; then `MMF_OOM_SKIP` is set
 * either way. Returns true when an attempt reaped every eligible VMA (or found the mm already
 * torn down by exit).
 *
 * One attempt (`oom_reap_task_mm` → `__oom_reap_task_mm`, notifier-core.md §4.6, §7 row 3):
 * `mmap_lock` by trylock for read (failure fails the attempt); for each VMA that is anonymous or
 * private (VM_PFNMAP skipped; shared file/shmem mappings skipped), a gather and a NON-blocking
 * UNMAP window `[vm_start, vm_end)`: if start fails (-EAGAIN) the VMA is skipped — no PTE
 * changes, no end — and the attempt fails; otherwise `unmap_page_range`, end, `tlb_finish_mmu`.
 * The zap runs in a `non_block_start` section here, so anything in it that sleeps is reported.
 *
 * Context: the mm_struct must still exist (an OOM victim's; reaping a freed mm is a kernel
 * BUG). The reaper holds its own `mm_count` reference while it works — the one the OOM killer
 * takes for it in the kernel (`signal->oom_mm`) — so the victim may exit meanwhile; the mm is
 * freed by whichever drops the last reference.
 *
 * @see oom_reap_task
 * @see __oom_reap_task_mm
 */
export function* oomReap(core: MmCore, mm: MmStruct): TaskGen<boolean> {
  mmgrab(mm);
  let attempts = 0;
  let ok = false;
  while (attempts++ < MAX_OOM_REAP_RETRIES) {
    ok = yield* oomReapTaskMm(core, mm);
    if (ok) break;
    yield* core.kernel.scheduler.sleepFor(OOM_REAP_RETRY_NS);
  }
  mm.oomSkip = true;
  mmdrop(core, mm);
  return ok;
}

/** `oom_reap_task_mm`: one attempt under a read trylock of `mmap_lock`. */
function* oomReapTaskMm(core: MmCore, mm: MmStruct): TaskGen<boolean> {
  if (!mm.mmapLock.tryDownRead()) return false;
  let ok = true;
  if (!mm.oomSkip) ok = yield* reapVmas(core, mm);
  mm.mmapLock.upRead();
  return ok;
}

/** `__oom_reap_task_mm`: the per-VMA non-blocking windows. */
function* reapVmas(core: MmCore, mm: MmStruct): TaskGen<boolean> {
  const k = core.kernel;
  let ok = true;
  for (const v of [...mm.vmas.all]) {
    if ((v.flags & Vm.PFNMAP) !== 0) continue;
    if (!(v.anonymous || (v.flags & Vm.SHARED) === 0)) continue;
    const range = new NotifierRange('UNMAP', mm, v.start, v.end);
    const tlb = new MmuGather(core, mm);
    const r = yield* core.notifiers.invalidateRangeStartNonblock(range);
    if (r !== 0) {
      yield* tlb.finish();
      ok = false;
      continue;
    }
    k.nonBlockStart('oom_reaper: unmap_page_range');
    yield* unmapPageRange(core, tlb, v, v.start, v.end);
    k.nonBlockEnd();
    yield* core.notifiers.invalidateRangeEnd(range);
    yield* tlb.finish();
  }
  return ok;
}
