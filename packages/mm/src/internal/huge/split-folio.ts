// The split of a PTE-mapped anonymous large folio into order-0 folios (mm/huge_memory.c
// split_folio / __folio_split, Linux 6.17) and the PMD step of device migration's collect that
// uses it (mm/migrate_device.c migrate_vma_collect_pmd). Its own file: thp.ts splits page
// tables (the PMD), this splits the folio (struct page state), a different rule set.
import type { TaskGen } from '@mmnsim/core';
import { PMD_SIZE } from '../constants.js';
import type { MmCore } from '../core.js';
import type { MmStruct } from '../mm.js';
import { Frame } from '../physmem.js';
import { ptePfn } from '../pte.js';
import type { Vma } from '../vma.js';
import { pmdAlignDown, pmdIsLeaf, pmdLookup } from './pmd.js';
import { emitThp, isHugeZero, splitHugePmd, VmHuge } from './thp.js';

/** What a split passes from the head to every new folio (`__split_folio_to_order`). */
const INHERITED = Frame.ANON | Frame.DIRTY | Frame.REFERENCED | Frame.LAZYFREE;

/**
 * The mappings of a large folio, as the model counts them: the sum of its pages' mapcounts (a
 * PMD mapping counts once on the head, a PTE mapping once on its page). Every mapping holds one
 * reference on the head.
 */
function folioMapcount(core: MmCore, head: number, nr: number): number {
  let n = 0;
  for (let i = 0; i < nr; i++) n += core.phys.mapcount[head + i]!;
  return n;
}

/**
 * `can_split_folio(folio, 1, &extra_pins)` for an anonymous folio not in the swap cache: true
 * when its references are exactly its mappings plus the caller's one (`folio_mapcount(folio) ==
 * folio_ref_count(folio) - 1`). A GUP pin, a concurrent isolation or any other holder makes it
 * false: the split would free memory someone still uses.
 *
 * @see can_split_folio
 */
export function canSplitFolio(core: MmCore, head: number): boolean {
  const order = core.phys.folioOrder.get(head);
  if (order === undefined) return false;
  return folioMapcount(core, head, 2 ** order) === core.phys.refcount[head]! - 1;
}

/**
 * `split_folio` (`split_huge_page_to_list_to_order(&folio->page, NULL, 0)`) of a locked,
 * PTE-mapped anonymous large folio on which the caller holds one reference. Refused (false, the
 * kernel's -EAGAIN) unless {@link canSplitFolio} holds. Otherwise every page becomes an order-0
 * folio as `__folio_split` leaves it after `remap_page`: refcount = its mapcount (one per PTE;
 * the caller's reference stays on the head, which stays locked; the tails are unlocked), the
 * head's ANON/DIRTY/REFERENCED/LAZYFREE bits copied to each, rmap `mapping`/`index` per page
 * as before, and each new folio put on the LRU (`lru_add_split_folio`: the kernel's THP is on
 * the LRU; the model keeps large folios off it, see the README). Emits `mm.thp` op
 * `'split-folio'` with the head; the frames stay allocated, so the mm projection is unchanged.
 *
 * Context: the folio lock held; no PTE lock needed (the model does the kernel's unmap to
 * migration entries, the freeze and the remap as one step); does not sleep.
 *
 * @see split_folio
 * @see __folio_split
 * @see can_split_folio
 */
export function splitFolio(core: MmCore, mm: MmStruct, va: number, head: number): boolean {
  const phys = core.phys;
  const order = phys.folioOrder.get(head);
  if (order === undefined || (phys.flags[head]! & Frame.ANON) === 0) return false;
  if (!phys.isLocked(head) || !canSplitFolio(core, head)) return false;
  const nr = 2 ** order;
  const inherit = phys.flags[head]! & INHERITED;
  phys.folioOrder.delete(head);
  phys.flags[head]! &= ~Frame.HEAD;
  for (let i = 1; i < nr; i++) {
    const pfn = head + i;
    phys.headOf[pfn] = 0;
    phys.refcount[pfn] = phys.mapcount[pfn]!;
    phys.refcount[head]! -= phys.mapcount[pfn]!;
    phys.flags[pfn] = (phys.flags[pfn]! & ~Frame.LOCKED) | inherit;
  }
  for (let i = 0; i < nr; i++) {
    // A page no longer mapped is freed by the split (free_folio_and_swap_cache).
    if (phys.refcount[head + i] === 0) {
      phys.refcount[head + i] = 1;
      phys.put(head + i);
    } else core.lruAdd(head + i);
  }
  emitThp(core, mm, va, 'split-folio', head);
  return true;
}

/**
 * The PMD step of `migrate_vma_collect_pmd` (6.17) for every 2 MiB of `[start, end)`: a huge
 * zero leaf is split (`split_huge_pmd`), its PTEs then collected as zero-page entries; a THP
 * leaf's folio is referenced, try-locked and split (`split_folio`: the PMD split, then the
 * folio), so collect migrates it 4 KiB at a time (the THP fallback). When the trylock fails or
 * the folio cannot be split (an extra reference, e.g. a GUP pin: `can_split_folio`), the leaf
 * is left as it is and its addresses are returned, for collect to skip
 * (`migrate_vma_collect_skip`: src 0).
 *
 * Context: `mmap_lock` held for read; may sleep (the PMD split's notifier window).
 *
 * @see migrate_vma_collect_pmd
 * @see migrate_vma_collect_skip
 */
export function* migrateVmaSplitHuge(
  core: MmCore,
  vma: Vma,
  start: number,
  end: number,
): TaskGen<Set<number>> {
  const skipped = new Set<number>();
  if ((vma.flags & VmHuge.HUGETLB) !== 0 || core.huge.leaves === 0) return skipped;
  const mm = vma.mm;
  const phys = core.phys;
  for (let haddr = pmdAlignDown(start); haddr < end; haddr += PMD_SIZE) {
    const ptl = mm.pageTableLock;
    yield* ptl.lock();
    const slot = pmdLookup(core, mm, haddr);
    const pmd = slot === null ? 0 : slot.table[slot.index]!;
    if (slot === null || !pmdIsLeaf(pmd)) {
      ptl.unlock();
      continue;
    }
    const head = ptePfn(pmd);
    if (isHugeZero(core, head)) {
      ptl.unlock();
      yield* splitHugePmd(core, vma, haddr);
      continue;
    }
    phys.get(head); // folio_get under the PMD lock
    ptl.unlock();
    if (!phys.tryLockFolio(head)) {
      phys.put(head);
      skipped.add(haddr);
      continue;
    }
    // __folio_split checks can_split_folio before unmapping: a pinned leaf stays whole.
    let ok = canSplitFolio(core, head);
    if (ok) {
      yield* splitHugePmd(core, vma, haddr); // unmap_folio's TTU_SPLIT_HUGE_PMD
      ok = splitFolio(core, mm, haddr, head); // refused if a reference came meanwhile
    }
    phys.unlockFolio(head);
    phys.put(head);
    if (!ok) skipped.add(haddr);
  }
  return skipped;
}
