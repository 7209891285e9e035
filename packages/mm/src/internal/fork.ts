import { Errno, GFP_KERNEL } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { PAGE_SIZE } from './constants.js';
import type { MmCore } from './core.js';
import type { MmStruct } from './mm.js';
import { insertVma } from './mmap.js';
import { NotifierRange } from './notifier.js';
import type { PteSlot } from './pagetable.js';
import { Frame, PhysMem } from './physmem.js';
import {
  mkMigrationPte,
  mkPte,
  Pte,
  PTE_NONE,
  pteFlags,
  pteIsMigration,
  pteIsSwap,
  pteMapsPage,
  ptePfn,
  pteWithFlags,
} from './pte.js';
import { copyHugetlbRange } from './huge/hugetlb.js';
import { splitHugeRange, VmHuge } from './huge/thp.js';
import { mmput } from './unmap.js';
import { pteIsDeviceEntry } from './device/entries.js';
import { copyDeviceEntry } from './device/hooks.js';
import { Vm, Vma } from './vma.js';

/**
 * `vma_needs_copy`: fork copies a VMA's page tables only when a fault could not rebuild them —
 * raw pfn mappings, and VMAs with anonymous pages (an anon_vma). Shared file mappings and
 * private mappings that were never written are left for the child to fault in.
 *
 * @see vma_needs_copy
 */
export function vmaNeedsCopy(vma: Vma): boolean {
  if ((vma.flags & Vm.PFNMAP) !== 0) return true;
  return vma.anonVma !== null;
}

/** One parent PTE table intersecting a VMA: entries `[from, to)`, entry 0 mapping `base`. */
interface TableSpan {
  readonly table: Float64Array;
  readonly tablePfn: number;
  readonly base: number;
  readonly from: number;
  readonly to: number;
}

/** State of one VMA's copy: the page preallocated for an eager copy, if any. */
interface CopyState {
  prealloc: number;
}

/** What {@link copyOnePte} decided. */
type CopyStep = 'copied' | 'need-page';

/**
 * Copies one parent PTE into the child, both PTE locks held (`copy_present_pte` /
 * `copy_nonpresent_pte`).
 */
function copyOnePte(
  core: MmCore,
  parent: MmStruct,
  child: MmStruct,
  src: Vma,
  dst: Vma,
  srcSlot: PteSlot,
  dstSlot: PteSlot,
  va: number,
  st: CopyState,
): CopyStep {
  const phys = core.phys;
  const cow = src.cow;
  let pte = srcSlot.table[srcSlot.index]!;
  if (pte === PTE_NONE) return 'copied';
  if (pteIsDeviceEntry(pte)) pte = copyDeviceEntry(core, parent, src, srcSlot, va, pte);
  if (!pteMapsPage(pte)) {
    // copy_nonpresent_pte (a PROT_NONE entry maps its page: it is copied as present ones are).
    if (pteIsSwap(pte)) {
      core.swap.dup(ptePfn(pte)); // swap_duplicate: one more swap PTE refers to the slot
    } else if (pteIsMigration(pte) && cow && (pteFlags(pte) & Pte.WRITE) !== 0) {
      // make_readable_migration_entry: COW pages must be read-only in parent and child.
      pte = mkMigrationPte(ptePfn(pte), false);
      core.pt.set(parent, srcSlot, va, pte);
    }
    core.pt.set(child, dstSlot, va, pte);
    return 'copied';
  }
  const pfn = ptePfn(pte);
  const rawPfn = (src.flags & (Vm.PFNMAP | Vm.IO)) !== 0;
  const normal = !rawPfn && pfn !== PhysMem.ZERO_PFN && (pteFlags(pte) & Pte.SPECIAL) === 0;
  if (normal) {
    const anon = (phys.flags[pfn]! & Frame.ANON) !== 0;
    if (anon && phys.pincount[pfn]! > 0) {
      // folio_try_dup_anon_rmap_pte fails for a maybe-DMA-pinned page: copy it now
      // (copy_present_page), so the pin keeps pointing at the parent's page.
      if (st.prealloc < 0) return 'need-page';
      const fresh = st.prealloc;
      st.prealloc = -1;
      phys.copy(pfn, fresh);
      phys.mapping[fresh] = (dst.anonVma ?? core.anonVmaPrepare(dst)).id;
      phys.index[fresh] = dst.pageIndex(va);
      phys.mapcount[fresh] = 1; // the allocation reference becomes the mapping's
      const w = (dst.flags & Vm.WRITE) !== 0 ? Pte.WRITE : 0;
      core.pt.set(child, dstSlot, va, mkPte(fresh, Pte.USER | Pte.DIRTY | w));
      core.lruAdd(fresh);
      return 'copied';
    }
    phys.get(pfn);
    phys.mapcount[pfn]!++;
  }
  let f = pteFlags(pte);
  if (cow && (f & Pte.WRITE) !== 0) {
    // ptep_set_wrprotect in the parent, inside the PROTECTION_PAGE window.
    core.pt.set(parent, srcSlot, va, pteWithFlags(pte, f & ~Pte.WRITE));
    f &= ~Pte.WRITE;
  }
  if ((src.flags & Vm.SHARED) !== 0) f &= ~Pte.DIRTY; // pte_mkclean
  f &= ~Pte.ACCESSED; // pte_mkold
  core.pt.set(child, dstSlot, va, pteWithFlags(pte, f));
  return 'copied';
}

/**
 * Copies the PTEs of one parent PTE table span into the child (`copy_pte_range`): the child's
 * table is allocated first (may sleep), then the child's and the parent's PTE locks are taken
 * and the entries copied. The child's lock is try-locked under the parent's (the kernel nests
 * them with `spin_lock_nested`; only an rmap walker can hold a child PTL, and it never waits for
 * one of ours): on contention both are dropped and the copy retried. A pinned page needs a
 * preallocated page: the locks are dropped, the page allocated, and the copy resumes there.
 */
function* copyPteRange(
  core: MmCore,
  parent: MmStruct,
  child: MmStruct,
  src: Vma,
  dst: Vma,
  span: TableSpan,
  st: CopyState,
): TaskGen<number> {
  const { table, tablePfn, base, to } = span;
  let i = span.from;
  while (i < to) {
    while (i < to && table[i] === PTE_NONE) i++;
    if (i >= to) break;
    const first = yield* core.pt.allocSlot(child, base + i * PAGE_SIZE);
    if (first === null) return -Errno.ENOMEM;
    const srcPtl = parent.ptl(tablePfn);
    yield* srcPtl.lock();
    const dstPtl = child.ptl(first.tablePfn);
    if (!dstPtl.tryLock()) {
      srcPtl.unlock();
      yield* core.kernel.scheduler.preempt();
      continue;
    }
    let needPage = false;
    for (; i < to; i++) {
      const va = base + i * PAGE_SIZE;
      const srcSlot: PteSlot = { table, tablePfn, index: i };
      const dstSlot: PteSlot = { table: first.table, tablePfn: first.tablePfn, index: i };
      if (copyOnePte(core, parent, child, src, dst, srcSlot, dstSlot, va, st) === 'need-page') {
        needPage = true;
        break;
      }
    }
    dstPtl.unlock();
    srcPtl.unlock();
    if (needPage) {
      core.kernel.mightAlloc(GFP_KERNEL, 'folio_prealloc');
      const fresh = yield* core.allocFrame('anon');
      if (fresh < 0) return -Errno.ENOMEM;
      st.prealloc = fresh;
    }
  }
  return 0;
}

/**
 * `copy_hugetlb_page_range` with its CLEAR window on the parent over the VMA (a private
 * mapping's leaves are write-protected on both sides).
 */
function* forkHugetlb(core: MmCore, parent: MmStruct, child: MmStruct, src: Vma): TaskGen<number> {
  const range = new NotifierRange('CLEAR', parent, src.start, src.end);
  yield* core.notifiers.invalidateRangeStart(range);
  const r = yield* copyHugetlbRange(core, parent, child, src);
  yield* core.notifiers.invalidateRangeEnd(range);
  return r;
}

/**
 * `copy_page_range` for one VMA: nothing unless `vmaNeedsCopy`; for a COW mapping a
 * PROTECTION_PAGE window on the **parent** mm over `[vm_start, vm_end)` (notifier-core.md §7
 * row 7) brackets the copy, because the parent's writable PTEs are write-protected in it.
 * Returns 0 or -ENOMEM.
 */
function* copyPageRange(
  core: MmCore,
  parent: MmStruct,
  child: MmStruct,
  src: Vma,
  dst: Vma,
): TaskGen<number> {
  if (!vmaNeedsCopy(src)) return 0;
  if ((src.flags & VmHuge.HUGETLB) !== 0) return yield* forkHugetlb(core, parent, child, src);
  yield* splitHugeRange(core, src, src.start, src.end); // copy_huge_pmd is not modelled
  const spans: TableSpan[] = [];
  core.pt.forEachTable(parent, src.start, src.end, (table, tablePfn, base, from, to) =>
    spans.push({ table, tablePfn, base, from, to }),
  );
  const cow = src.cow;
  let range: NotifierRange | null = null;
  if (cow) {
    range = new NotifierRange('PROTECTION_PAGE', parent, src.start, src.end);
    yield* core.notifiers.invalidateRangeStart(range);
  }
  const st: CopyState = { prealloc: -1 };
  let err = 0;
  for (const span of spans) {
    err = yield* copyPteRange(core, parent, child, src, dst, span, st);
    if (err !== 0) break;
  }
  if (range !== null) yield* core.notifiers.invalidateRangeEnd(range);
  if (st.prealloc >= 0) core.phys.put(st.prealloc);
  return err;
}

/**
 * `dup_mmap` (fork): builds the child's address space from `parent`'s and returns the child mm
 * (`mm_users` = 1), or -ENOMEM.
 *
 * Takes the parent's `mmap_lock` for write, then the new child's (a trylock that cannot fail:
 * nobody else knows the child yet; the kernel uses `mmap_write_lock_nested`). For every parent
 * VMA except `VM_DONTCOPY` ones, a child VMA with the same bounds, flags, file and offset is
 * linked — into the file's `i_mmap` (under `i_mmap_rwsem` for write) and, for a VMA with
 * anonymous pages, into the parent's anon_vma (under its rwsem for write) — **before** its PTEs
 * are copied, so that an rmap walk running meanwhile finds the child's copies.
 *
 * Simplification of the anon_vma_chain: the child VMA joins the parent's anon_vma rather than
 * getting its own anon_vma chained to it. rmap walks therefore visit the parent's and every
 * descendant's VMAs for any page of the family (the kernel skips the ancestors for a page
 * created in a child); the PTE check under the lock makes that only slower, never wrong.
 *
 * PTEs are copied as `copy_page_range` does (`vmaNeedsCopy`; a PROTECTION_PAGE window on
 * the parent for COW mappings): a present anonymous page is write-protected in the parent and
 * mapped read-only and old in the child (mapcount and refcount + 1); a page that may be
 * DMA-pinned is copied into a new page for the child instead, the parent keeping its writable
 * pinned page; the zero page is shared; a swap entry is duplicated (`swap_duplicate`); a
 * migration entry is copied, made read-only in both for a COW mapping; page-cache pages of a
 * private mapping are shared read-only. After the copy loop the parent's TLB is flushed for every
 * COW VMA that was copied, still under its `mmap_lock` (dup_mmap's `flush_tlb_mm`).
 *
 * On -ENOMEM the partly built child is released with `mmput`.
 *
 * Context: process context, may sleep; the parent must be a live mm.
 *
 * @see dup_mmap
 * @see copy_page_range
 * @see copy_present_pte
 * @see copy_nonpresent_pte
 */
export function* dupMmap(
  core: MmCore,
  parent: MmStruct,
  childName: string,
): TaskGen<MmStruct | number> {
  if (parent.exited) return -Errno.ENOMEM;
  // mm_alloc: make sure the child's top-level table can be allocated (with direct reclaim), so
  // newMm below cannot fail; the frame freed here is the one newMm gets back at once.
  core.kernel.mightAlloc(GFP_KERNEL, 'mm_alloc');
  const probe = yield* core.allocFrame('pagetable');
  if (probe < 0) return -Errno.ENOMEM;
  core.phys.put(probe);
  const child = core.newMm(childName);

  yield* parent.mmapLock.downWrite();
  child.mmapLock.tryDownWrite();
  child.brkStart = parent.brkStart;
  child.brk = parent.brk;
  const flushes: Vma[] = [];
  let err = 0;
  for (const src of [...parent.vmas.all]) {
    if ((src.flags & Vm.DONTCOPY) !== 0) continue;
    core.kernel.mightAlloc(GFP_KERNEL, 'vm_area_dup');
    const dst = new Vma(child, src.start, src.end, src.flags, src.file, src.pgoff);
    const file = src.file;
    const av = src.anonVma;
    if (file !== null) yield* file.iMmapRwsem.downWrite();
    if (av !== null) {
      yield* av.lock.downWrite(); // anon_vma_fork
      dst.anonVma = av;
    }
    insertVma(core, dst);
    if (av !== null) av.lock.upWrite();
    if (file !== null) file.iMmapRwsem.upWrite();
    err = yield* copyPageRange(core, parent, child, src, dst);
    if (err !== 0) break;
    if (src.cow && vmaNeedsCopy(src)) flushes.push(src);
  }
  child.mmapLock.upWrite();
  for (const v of flushes) yield* core.tlb.flushRange(parent, v.start, v.end, false);
  parent.mmapLock.upWrite();
  if (err !== 0) {
    yield* mmput(core, child);
    return err;
  }
  return child;
}
