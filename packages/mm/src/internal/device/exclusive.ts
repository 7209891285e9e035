// Device-exclusive entries (mm/rmap.c make_device_exclusive, mm/memory.c
// remove_device_exclusive_entry and the fork path's try_restore_exclusive_pte, 6.17): a device
// gets exclusive (atomic) access to an anonymous page; any CPU access or fork turns the entry
// back into a present PTE under an MMU_NOTIFY_EXCLUSIVE window. Its own file: one concept,
// used by the fault path, fork and drivers.
import { Errno } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { PAGE_SIZE } from '../constants.js';
import type { MmCore } from '../core.js';
import type { FaultResult } from '../fault.js';
import { Foll, getUserPages, mmapAssertLocked } from '../gup.js';
import type { MmStruct } from '../mm.js';
import { NotifierRange } from '../notifier.js';
import type { PteSlot } from '../pagetable.js';
import { Frame } from '../physmem.js';
import { mkPte, Pte, pteFlags, ptePfn, ptePresent } from '../pte.js';
import { Vm } from '../vma.js';
import type { Vma } from '../vma.js';
import { isZoneDevicePage } from './memremap.js';
import { mkDeviceExclusivePte } from './entries.js';

/**
 * `make_device_exclusive(mm, addr, owner, &folio)`: gives a device exclusive access to the
 * anonymous page at `addr`. The page is faulted in writable and referenced
 * (`get_user_page_vma_remote` with FOLL_WRITE — which also revokes an existing device-exclusive
 * entry by faulting), locked, and under an `MMU_NOTIFY_EXCLUSIVE` window whose owner is `owner`
 * (the caller must skip that event, or it livelocks) the PTE is re-checked — still this page,
 * still writable, else everything is dropped and it starts over — cleared with a TLB flush, its
 * dirty bit moved to the folio, and replaced by a device-exclusive entry that keeps the page's
 * mapcount and the mapping's reference (6.15+).
 *
 * Returns the page's frame, **locked and with a reference** the caller drops (`unlockFolio`,
 * `put`) once it programmed the device under its notifier lock; or a negated errno: -EFAULT
 * (no VMA, no write permission — a read-only mapping —, SIGSEGV/SIGBUS), -ENOMEM, -EOPNOTSUPP (a
 * page that is not anonymous, a device page), -EINVAL (a bad address).
 *
 * Context: the caller holds `mm->mmap_lock` for read (asserted); may sleep.
 *
 * @see make_device_exclusive
 */
export function* makeDeviceExclusive(
  core: MmCore,
  mm: MmStruct,
  addr: number,
  owner: unknown,
): TaskGen<number> {
  if (!Number.isInteger(addr) || addr < 0) return -Errno.EINVAL;
  mmapAssertLocked(core, mm, 'make_device_exclusive');
  const va = addr - (addr % PAGE_SIZE);
  const phys = core.phys;
  const result = (r: number): number => {
    const bus = core.kernel.bus;
    if (bus.wants('mm.device_exclusive'))
      bus.emit('mm.device_exclusive', { mm: mm.id, va, result: r });
    return r;
  };
  for (;;) {
    const pages = [0];
    const got = yield* getUserPages(core, mm, va, 1, Foll.WRITE, pages);
    if (got < 0) return result(got);
    if (got !== 1) return result(-Errno.EFAULT);
    const pfn = pages[0]!;
    const vma = mm.vmas.find(va)!;
    if ((phys.flags[pfn]! & Frame.ANON) === 0 || isZoneDevicePage(core, pfn)) {
      phys.put(pfn);
      return result(-Errno.EOPNOTSUPP);
    }
    yield* phys.lockFolio(pfn); // folio_lock_killable
    const range = new NotifierRange('EXCLUSIVE', mm, va, va + PAGE_SIZE, owner);
    yield* core.notifiers.invalidateRangeStart(range);
    const slot = core.pt.lookup(mm, va);
    const ptl = slot === null ? null : mm.ptl(slot.tablePfn);
    if (ptl !== null) yield* ptl.lock();
    const pte = slot === null ? 0 : slot.table[slot.index]!;
    if (
      slot === null ||
      core.pt.lookup(mm, va)?.tablePfn !== slot.tablePfn ||
      !ptePresent(pte) ||
      ptePfn(pte) !== pfn ||
      (pteFlags(pte) & Pte.WRITE) === 0 ||
      mm.vmas.find(va) !== vma
    ) {
      ptl?.unlock();
      yield* core.notifiers.invalidateRangeEnd(range);
      phys.unlockFolio(pfn);
      phys.put(pfn);
      continue; // goto retry
    }
    // ptep_clear_flush: nuke the entry to get the up-to-date dirty bit.
    core.pt.set(mm, slot, va, 0);
    yield* core.tlb.flushRange(mm, va, va + PAGE_SIZE, false);
    if ((pteFlags(pte) & Pte.DIRTY) !== 0) phys.flags[pfn]! |= Frame.DIRTY;
    core.pt.set(mm, slot, va, mkDeviceExclusivePte(pfn, (pteFlags(pte) & Pte.SOFT_DIRTY) !== 0));
    ptl!.unlock();
    yield* core.notifiers.invalidateRangeEnd(range);
    return result(pfn);
  }
}

/**
 * `restore_exclusive_pte`: the present PTE a device-exclusive entry stands for — old (not
 * accessed), soft-dirty carried over, writable if the VMA is (the page is exclusively mapped:
 * `can_change_pte_writable`), dirty if writable and the folio is dirty. The PTE lock is held.
 */
function restorePte(
  core: MmCore,
  mm: MmStruct,
  vma: Vma,
  slot: PteSlot,
  va: number,
  orig: number,
  why: string,
): void {
  const phys = core.phys;
  const pfn = ptePfn(orig);
  let f = Pte.USER | (pteFlags(orig) & Pte.SOFT_DIRTY);
  if ((vma.flags & Vm.WRITE) !== 0) {
    f |= Pte.WRITE;
    if ((phys.flags[pfn]! & Frame.DIRTY) !== 0) f |= Pte.DIRTY;
  }
  core.pt.set(mm, slot, va, mkPte(pfn, f));
  const bus = core.kernel.bus;
  if (bus.wants('mm.device_exclusive.restore'))
    bus.emit('mm.device_exclusive.restore', { mm: mm.id, va, pfn, why });
}

/**
 * `remove_device_exclusive_entry` (from `do_swap_page`): a CPU access hit a device-exclusive
 * entry. With a reference (`folio_try_get`; a page being freed just retries) and the folio lock,
 * an `MMU_NOTIFY_EXCLUSIVE` window with no owner over the page tells the device it loses its
 * exclusive access; under the PTE lock, if the entry is unchanged, it becomes a present PTE
 * again (see `restore_exclusive_pte`). The folio is unlocked and put before the window closes,
 * as in the kernel. Returns `'ok'` (the access is retried).
 *
 * Context: `mmap_lock` held for read; may sleep.
 *
 * @see remove_device_exclusive_entry
 */
export function* removeDeviceExclusiveEntry(
  core: MmCore,
  mm: MmStruct,
  vma: Vma,
  va: number,
  slot: PteSlot,
  orig: number,
): TaskGen<FaultResult> {
  const phys = core.phys;
  const pfn = ptePfn(orig);
  if (phys.refcount[pfn]! <= 0) return 'retry';
  phys.get(pfn);
  yield* phys.lockFolio(pfn); // folio_lock_or_retry
  const range = new NotifierRange('EXCLUSIVE', mm, va, va + PAGE_SIZE, null);
  yield* core.notifiers.invalidateRangeStart(range);
  const ptl = mm.ptl(slot.tablePfn);
  yield* ptl.lock();
  if (slot.table[slot.index] === orig && core.pt.lookup(mm, va)?.tablePfn === slot.tablePfn)
    restorePte(core, mm, vma, slot, va, orig, 'fault');
  ptl.unlock();
  phys.unlockFolio(pfn);
  phys.put(pfn);
  yield* core.notifiers.invalidateRangeEnd(range);
  return 'ok';
}

/**
 * `try_restore_exclusive_pte` (from fork's `copy_nonpresent_pte`): a device-exclusive entry of
 * the parent is turned back into its present PTE, which fork then copies like any present PTE.
 * Runs inside fork's PROTECTION_PAGE window on the parent, which is how the device learns it
 * lost its exclusive access. The parent's PTE lock is held (a plain function).
 *
 * The kernel try-locks the folio and, when that fails, drops the locks and retries the table
 * (-EBUSY); fork holds `mmap_lock` for write, so the only holders can be reclaim or NUMA
 * migration, which never touch a device-exclusive entry: the model restores it then without the
 * lock (listed under "Differences from Linux").
 *
 * @returns the restored PTE.
 * @see try_restore_exclusive_pte
 */
export function restoreExclusiveForFork(
  core: MmCore,
  parent: MmStruct,
  vma: Vma,
  slot: PteSlot,
  va: number,
  orig: number,
): number {
  const phys = core.phys;
  const pfn = ptePfn(orig);
  const locked = phys.tryLockFolio(pfn);
  restorePte(core, parent, vma, slot, va, orig, 'fork');
  if (locked) phys.unlockFolio(pfn);
  return slot.table[slot.index]!;
}
