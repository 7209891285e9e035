import type { RwSemaphore, SpinLock, TaskGen } from '@mmnsim/core';
import type { MmCore } from './core.js';
import type { PteSlot } from './pagetable.js';
import { Frame } from './physmem.js';
import { pteMapsPage, ptePfn } from './pte.js';
import type { Vma } from './vma.js';

/**
 * Called by {@link rmapWalk} for each VMA that may map the folio, with the address the folio's
 * index has in it. Return false to stop the walk (`rmap_one` returning false, or `done()`).
 */
export type RmapVisitor = (vma: Vma, va: number) => TaskGen<boolean>;

/** How an {@link rmapWalk} ended. */
export type RmapWalkResult =
  /** Every candidate VMA was visited. */
  | 'done'
  /** The visitor stopped the walk. */
  | 'stopped'
  /** `tryLock` was asked for and the rmap lock was contended: nothing was visited. */
  | 'contended'
  /** The frame has no reverse map (not anonymous or page cache, or its owner is gone). */
  | 'none';

/** Options of {@link rmapWalk}. */
export interface RmapWalkOptions {
  /** Try-lock the rmap lock and give up at once if it is contended (`rwc->try_lock`). */
  readonly tryLock?: boolean;
}

/** The rmap root of a frame: the lock to take and the VMAs to visit. */
interface RmapRoot {
  readonly lock: RwSemaphore;
  readonly vmas: ReadonlySet<Vma>;
}

function rmapRoot(core: MmCore, pfn: number): RmapRoot | null {
  const phys = core.phys;
  const flags = phys.flags[pfn]!;
  const owner = phys.mapping[pfn]!;
  if ((flags & Frame.ANON) !== 0) {
    const av = core.anonVmas.get(owner);
    return av === undefined ? null : { lock: av.lock, vmas: av.vmas };
  }
  if ((flags & Frame.FILE) !== 0) {
    const file = core.files.get(owner);
    return file === undefined ? null : { lock: file.iMmapRwsem, vmas: file.mappings };
  }
  return null;
}

/**
 * The reverse-map walk (`rmap_walk`): calls `visit` for every VMA that may map the folio in frame
 * `pfn`, at the address of the folio's index in that VMA. Anonymous folios are found through
 * their anon_vma (`PhysMem.mapping` is its id; its VMAs, the flattened anon_vma_chain), page-cache
 * folios through their file's `i_mmap` set. VMAs whose range does not cover the index are
 * skipped (`vma_address` outside the VMA). The visitor must check the PTE itself
 * ({@link pageVmaMappedWalk}): a candidate VMA may map another page there, or nothing.
 *
 * VMAs are visited in the order they joined the anon_vma or file, so a VMA forked from another
 * is visited after its parent (the kernel keeps the same order for the same reason: a PTE that
 * fork copies while the walk runs is either seen in the parent or copied from the parent's
 * already-converted entry).
 *
 * Context: the caller should hold the folio lock, so `mapping`/`index` are stable. Takes the
 * anon_vma rwsem or `i_mmap_rwsem` for read for the whole walk (so fork cannot link a new VMA
 * meanwhile); may sleep. With `tryLock` the walk returns `'contended'` instead of sleeping for
 * the rmap lock.
 *
 * @see rmap_walk
 * @see rmap_walk_anon
 * @see rmap_walk_file
 */
export function* rmapWalk(
  core: MmCore,
  pfn: number,
  visit: RmapVisitor,
  options: RmapWalkOptions = {},
): TaskGen<RmapWalkResult> {
  const root = rmapRoot(core, pfn);
  if (root === null) return 'none';
  const index = core.phys.index[pfn]!;
  if (options.tryLock === true) {
    if (!root.lock.tryDownRead()) return 'contended';
  } else {
    yield* root.lock.downRead();
  }
  let result: RmapWalkResult = 'done';
  try {
    for (const vma of [...root.vmas]) {
      // A VMA unlinked while the visitor slept is gone (unlinking should take the rmap lock for
      // write, as unlink_anon_vmas and vma_unlink_file do; this is the defensive re-check).
      if (!root.vmas.has(vma)) continue;
      const va = vma.addressOf(index);
      if (va < 0) continue;
      if (!(yield* visit(vma, va))) {
        result = 'stopped';
        break;
      }
    }
  } finally {
    root.lock.upRead();
  }
  return result;
}

/** A PTE found by {@link pageVmaMappedWalk}, with its page-table lock held. */
export interface MappedPte {
  /** Where the PTE lives. */
  readonly slot: PteSlot;
  /** The PTE table's lock, held: the caller unlocks it. */
  readonly ptl: SpinLock;
  /** The PTE's value when it was checked under the lock. */
  readonly pte: number;
}

/**
 * `page_vma_mapped_walk` for one small folio: does `vma`'s PTE at `va` really map the folio?
 * `match` decides on the PTE value ({@link mapsPfn} for a present mapping of a pfn; migration
 * uses a migration-entry test). A lockless look first (no table or no match: null), then the PTE
 * table's lock is taken and the check repeated, also making sure the table is still the one
 * linked at `va`.
 *
 * Returns the PTE with its lock **held** (the caller changes the entry and unlocks), or null
 * with no lock held.
 *
 * Context: may spin for the PTL; the caller must not hold another PTL of the same mm.
 *
 * @see page_vma_mapped_walk
 * @see check_pte
 */
export function* pageVmaMappedWalk(
  core: MmCore,
  vma: Vma,
  va: number,
  match: (pte: number) => boolean,
): TaskGen<MappedPte | null> {
  const mm = vma.mm;
  const slot = core.pt.lookup(mm, va);
  if (slot === null || !match(slot.table[slot.index]!)) return null;
  const ptl = mm.ptl(slot.tablePfn);
  yield* ptl.lock();
  const again = core.pt.lookup(mm, va);
  const pte = slot.table[slot.index]!;
  if (again === null || again.tablePfn !== slot.tablePfn || !match(pte)) {
    ptl.unlock();
    return null;
  }
  return { slot, ptl, pte };
}

/**
 * A `match` for {@link pageVmaMappedWalk}: an entry mapping frame `pfn` — present, or PROT_NONE
 * (which the kernel's `pte_present` counts as mapped: it holds a mapcount and a reference).
 */
export function mapsPfn(pfn: number): (pte: number) => boolean {
  return (pte) => pteMapsPage(pte) && ptePfn(pte) === pfn;
}
