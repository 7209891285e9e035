// madvise for huge pages: MADV_HUGEPAGE / MADV_NOHUGEPAGE (VMA flags, splitting the VMAs at the
// range's edges) and MADV_COLLAPSE (khugepaged's collapse of 512 PTEs into one PMD leaf, run
// synchronously). Its own file: these advices change VMAs and take mmap_lock for write, unlike
// the zapping advices of unmap.ts.
import { Errno, GFP_KERNEL } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { PAGE_SIZE, pageAlignUp, PMD_SIZE } from '../constants.js';
import type { MmCore } from '../core.js';
import type { MmStruct } from '../mm.js';
import { updateVma, vmasExactly } from '../mmap.js';
import { NotifierRange } from '../notifier.js';
import { Frame, PhysMem } from '../physmem.js';
import { Pte, PTE_NONE, pteFlags, ptePfn } from '../pte.js';
import { Vm } from '../vma.js';
import { HPAGE_PMD_NR, HPAGE_PMD_ORDER, mkHugePmd, pmdIsLeaf, pmdLookup } from './pmd.js';
import { emitThp, installLeaf, thpSuitable, thpVmaAllowable, VmHuge } from './thp.js';

/** `MADV_HUGEPAGE`: back the range with transparent huge pages where possible. */
export const MADV_HUGEPAGE = 14;
/** `MADV_NOHUGEPAGE`: never back the range with transparent huge pages. */
export const MADV_NOHUGEPAGE = 15;
/** `MADV_COLLAPSE`: collapse the range's 4 KiB pages into huge pages now. */
export const MADV_COLLAPSE = 25;

/** True for the advices this file handles. */
export function isHugeAdvice(advice: number): boolean {
  return advice === MADV_HUGEPAGE || advice === MADV_NOHUGEPAGE || advice === MADV_COLLAPSE;
}

/**
 * `madvise(addr, len, MADV_HUGEPAGE | MADV_NOHUGEPAGE | MADV_COLLAPSE)`. Returns 0 or:
 * - -EINVAL: `addr` not page aligned (an unaligned range), `len` not a non-negative integer;
 *   for MADV_HUGEPAGE/NOHUGEPAGE a VM_PFNMAP or hugetlb VMA in the range is left alone
 *   (`hugepage_madvise` accepts them); for MADV_COLLAPSE a VMA that cannot hold huge pages
 *   (not private anonymous, VM_NOHUGEPAGE);
 * - -ENOMEM: part of the range is unmapped (the mapped parts are still advised); for
 *   MADV_COLLAPSE also no free 2 MiB folio;
 * - -EAGAIN: MADV_COLLAPSE found a page it may not collapse (referenced elsewhere: pinned,
 *   GUP'd, mapped twice, locked).
 *
 * HUGEPAGE/NOHUGEPAGE take `mmap_lock` for write and split the VMAs at the range's edges
 * (`madvise_update_vma`); a range that is page aligned but not 2 MiB aligned is accepted, and
 * only the aligned 2 MiB blocks inside the VMA get huge pages at fault time
 * (`thp_vma_suitable_order`). COLLAPSE works on every aligned 2 MiB block inside the range.
 *
 * @see hugepage_madvise
 * @see madvise_collapse
 */
export function* hugeMadvise(
  core: MmCore,
  mm: MmStruct,
  addr: number,
  len: number,
  advice: number,
): TaskGen<number> {
  const E = Errno;
  if (!Number.isInteger(addr) || addr < 0 || addr % PAGE_SIZE !== 0) return -E.EINVAL;
  if (!Number.isInteger(len) || len < 0) return -E.EINVAL;
  const end = addr + pageAlignUp(len);
  if (end === addr) return 0;
  if (advice === MADV_COLLAPSE) return yield* madviseCollapse(core, mm, addr, end);
  yield* mm.mmapLock.downWrite();
  let mapped = 0;
  for (const v of vmasExactly(core, mm, addr, end)) {
    mapped += v.end - v.start;
    if ((v.flags & (Vm.PFNMAP | VmHuge.HUGETLB)) !== 0) continue;
    const flags =
      advice === MADV_HUGEPAGE
        ? (v.flags | VmHuge.HUGEPAGE) & ~VmHuge.NOHUGEPAGE
        : (v.flags | VmHuge.NOHUGEPAGE) & ~VmHuge.HUGEPAGE;
    if (flags !== v.flags) updateVma(core, v, v.start, v.end, flags, v.pgoff);
  }
  mm.mmapLock.upWrite();
  return mapped === end - addr ? 0 : -E.ENOMEM;
}

/** `SCAN_*` results of a collapse attempt, reduced to the errno `madvise_collapse_errno` gives. */
type Scan = 0 | typeof Errno.EINVAL | typeof Errno.ENOMEM | typeof Errno.EAGAIN;

/**
 * `madvise_collapse`: for each 2 MiB-aligned block inside `[start, end)`, collapse it
 * (`collapse_huge_page`); a block already mapped by a leaf counts as done (`SCAN_PMD_MAPPED`).
 * Returns 0 if every block is a leaf at the end, else the errno of the last failure.
 */
function* madviseCollapse(core: MmCore, mm: MmStruct, start: number, end: number): TaskGen<number> {
  const hstart = start + ((PMD_SIZE - (start % PMD_SIZE)) % PMD_SIZE);
  const hend = end - (end % PMD_SIZE);
  yield* mm.mmapLock.downRead();
  let v = mm.vmas.find(start);
  if (v === undefined) {
    mm.mmapLock.upRead();
    return -Errno.ENOMEM;
  }
  if (!thpVmaAllowable(core, v, true)) {
    mm.mmapLock.upRead();
    return -Errno.EINVAL;
  }
  let last: number = 0;
  let ok = 0;
  let blocks = 0;
  for (let haddr = hstart; haddr < hend; haddr += PMD_SIZE) {
    blocks++;
    v = mm.vmas.find(haddr);
    if (v === undefined || !thpSuitable(core, v, haddr, true)) {
      last = -Errno.EINVAL;
      continue;
    }
    const slot = pmdLookup(core, mm, haddr);
    if (slot !== null && pmdIsLeaf(slot.table[slot.index]!)) {
      ok++;
      continue;
    }
    // collapse_huge_page drops mmap_lock to allocate, then takes it for write.
    mm.mmapLock.upRead();
    const r = yield* collapseHugePage(core, mm, haddr);
    yield* mm.mmapLock.downRead();
    if (r === 0) ok++;
    else last = -r;
  }
  mm.mmapLock.upRead();
  return ok === blocks ? 0 : last;
}

/**
 * `collapse_huge_page` for an anonymous block at `haddr`: allocate a 2 MiB folio, take
 * `mmap_lock` for write, revalidate the VMA, then under the anon_vma lock: a CLEAR window over
 * the block, `pmdp_collapse_flush` (the PMD entry of the PTE table cleared and the 2 MiB
 * flushed), `tlb_remove_table_sync_one` (no gup_fast walker still reads the old table), end of
 * the window; check every PTE (`__collapse_huge_page_isolate`: none, the zero page, or an
 * anonymous page with no reference beyond its mappings and mapped once) — on failure the table
 * goes back; copy each page into the folio, clear the PTEs and drop the old pages; deposit the
 * old table, install the leaf. Returns 0 or the positive errno.
 */
function* collapseHugePage(core: MmCore, mm: MmStruct, haddr: number): TaskGen<Scan> {
  const phys = core.phys;
  core.kernel.mightAlloc(GFP_KERNEL, 'alloc_charge_folio');
  const head = phys.allocLarge(HPAGE_PMD_ORDER, 'anon');
  if (head < 0) return Errno.ENOMEM;
  yield* mm.mmapLock.downWrite();
  const r = yield* collapseLocked(core, mm, haddr, head);
  mm.mmapLock.upWrite();
  if (r !== 0) phys.put(head);
  return r;
}

function* collapseLocked(core: MmCore, mm: MmStruct, haddr: number, head: number): TaskGen<Scan> {
  const phys = core.phys;
  const vma = mm.vmas.find(haddr);
  if (vma === undefined || !thpSuitable(core, vma, haddr, true)) return Errno.EINVAL;
  const slot = pmdLookup(core, mm, haddr);
  if (slot === null) return Errno.EINVAL; // SCAN_PMD_NULL
  const entry = slot.table[slot.index]!;
  if (entry === PTE_NONE) return Errno.EINVAL;
  if (pmdIsLeaf(entry)) return 0; // SCAN_PMD_MAPPED
  const tablePfn = ptePfn(entry);
  const av = core.anonVmaPrepare(vma);
  yield* av.lock.downWrite();
  const range = new NotifierRange('CLEAR', mm, haddr, haddr + PMD_SIZE);
  yield* core.notifiers.invalidateRangeStart(range);
  // pmdp_collapse_flush: unlink the PTE table, flush the block.
  yield* mm.pageTableLock.lock();
  slot.table[slot.index] = PTE_NONE;
  const bus = core.kernel.bus;
  if (bus.wants('mm.pt.unlink'))
    bus.emit('mm.pt.unlink', { mm: mm.id, pfn: tablePfn, level: 0, va: haddr });
  yield* core.tlb.flushRange(mm, haddr, haddr + PMD_SIZE, true);
  mm.pageTableLock.unlock();
  yield* core.tableRcu.syncOne();
  yield* core.notifiers.invalidateRangeEnd(range);
  const ptl = mm.ptl(tablePfn);
  yield* ptl.lock();
  const ptes = phys.tables[tablePfn]!;
  let r: Scan = 0;
  for (let i = 0; i < HPAGE_PMD_NR && r === 0; i++) {
    const pte = ptes[i]!;
    if (pte === PTE_NONE) continue;
    const f = pteFlags(pte);
    if ((f & Pte.PRESENT) === 0) {
      r = Errno.EAGAIN; // a swap, migration or PROT_NONE entry: not collapsed here
      continue;
    }
    const n = ptePfn(pte);
    if (n === PhysMem.ZERO_PFN) continue;
    const fl = phys.flags[n]!;
    const folio = phys.folioOf(n);
    const expected = folio === n ? phys.mapcount[n]! : largeMapcount(phys, folio);
    if ((fl & Frame.ANON) === 0 || (fl & Frame.LOCKED) !== 0) r = Errno.EAGAIN;
    else if (phys.mapcount[n] !== 1 || phys.refcount[folio] !== expected) r = Errno.EAGAIN;
  }
  if (r !== 0) {
    // The isolate failed: put the table back (pmd_populate) and leave the pages as they were.
    ptl.unlock();
    yield* mm.pageTableLock.lock();
    slot.table[slot.index] = entry;
    if (bus.wants('mm.pt.alloc'))
      bus.emit('mm.pt.alloc', { mm: mm.id, pfn: tablePfn, level: 0, va: haddr });
    mm.pageTableLock.unlock();
    av.lock.upWrite();
    return r;
  }
  const log = bus.wants('mm.pte.set');
  const index = vma.pageIndex(haddr);
  let writable = false;
  for (let i = 0; i < HPAGE_PMD_NR; i++) {
    phys.mapping[head + i] = av.id;
    phys.index[head + i] = index + i;
    const pte = ptes[i]!;
    if (pte === PTE_NONE) continue;
    const n = ptePfn(pte);
    ptes[i] = PTE_NONE;
    if (log)
      bus.emit('mm.pte.set', { mm: mm.id, va: haddr + i * PAGE_SIZE, pte: PTE_NONE, old: pte });
    if (n === PhysMem.ZERO_PFN) continue;
    if ((pteFlags(pte) & Pte.WRITE) !== 0) writable = true;
    phys.copy(n, head + i);
    phys.mapcount[n]!--;
    phys.put(n);
  }
  ptl.unlock();
  mm.dropPtl(tablePfn);
  yield* mm.pageTableLock.lock();
  phys.mapcount[head] = 1;
  const f =
    writable && (vma.flags & Vm.WRITE) !== 0
      ? Pte.USER | Pte.WRITE | Pte.DIRTY | Pte.ACCESSED
      : Pte.USER | Pte.ACCESSED;
  installLeaf(core, mm, slot, haddr, mkHugePmd(head, f), tablePfn);
  mm.pageTableLock.unlock();
  av.lock.upWrite();
  emitThp(core, mm, haddr, 'collapse', head);
  return 0;
}

/** `folio_mapcount` of a PTE-mapped large folio: the sum of its pages' mapcounts. */
function largeMapcount(phys: PhysMem, head: number): number {
  const n = 2 ** (phys.folioOrder.get(head) ?? 0);
  let m = 0;
  for (let i = 0; i < n; i++) m += phys.mapcount[head + i]!;
  return m;
}
