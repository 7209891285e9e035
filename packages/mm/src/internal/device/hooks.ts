// The small pieces of device-memory behaviour that existing mm paths call: the fault path's
// handling of device-private and device-exclusive entries (do_swap_page), zap's
// (zap_nonpresent_ptes), fork's (copy_nonpresent_pte) and hmm_range_fault's
// (hmm_vma_handle_pte). Kept here so each of those files only gains a one-line hook.
import type { TaskGen } from '@mmnsim/core';
import type { MmCore } from '../core.js';
import type { FaultFlags, FaultResult } from '../fault.js';
import type { MmStruct } from '../mm.js';
import type { PteSlot } from '../pagetable.js';
import { ptePfn } from '../pte.js';
import type { Vma } from '../vma.js';
import {
  mkDevicePrivatePte,
  pteIsDeviceExclusive,
  pteIsDevicePrivate,
  pteIsWritableDevicePrivate,
} from './entries.js';
import { removeDeviceExclusiveEntry, restoreExclusiveForFork } from './exclusive.js';
import { pagePgmap } from './memremap.js';

/**
 * `do_swap_page` for a device-private or device-exclusive entry `orig` at `va`. Device-exclusive:
 * {@link removeDeviceExclusiveEntry}. Device-private: under the PTE lock, if the entry is
 * unchanged, the page is try-locked and referenced, the lock dropped, and the pagemap's
 * `migrate_to_ram` called; then the page is unlocked and put. A contended page lock (a migration
 * of that page in flight) waits for it and retries, like `migration_entry_wait`.
 *
 * Context: `mmap_lock` held for read; may sleep.
 *
 * @see do_swap_page
 */
export function* doDeviceEntryFault(
  core: MmCore,
  mm: MmStruct,
  vma: Vma,
  va: number,
  slot: PteSlot,
  orig: number,
  flags: FaultFlags,
): TaskGen<FaultResult> {
  if (pteIsDeviceExclusive(orig))
    return yield* removeDeviceExclusiveEntry(core, mm, vma, va, slot, orig);
  const phys = core.phys;
  const pfn = ptePfn(orig);
  const ptl = mm.ptl(slot.tablePfn);
  yield* ptl.lock();
  if (slot.table[slot.index] !== orig) {
    ptl.unlock();
    return 'retry';
  }
  if (!phys.tryLockFolio(pfn)) {
    ptl.unlock();
    yield* phys.waitUnlocked(pfn);
    return 'retry';
  }
  phys.get(pfn);
  ptl.unlock();
  const pgmap = pagePgmap(core, pfn);
  let r: FaultResult = 'sigbus';
  if (pgmap?.ops.migrateToRam !== undefined)
    r = yield* pgmap.ops.migrateToRam({ mm, vma, address: va, page: pfn, write: flags.write });
  const bus = core.kernel.bus;
  if (bus.wants('mm.device.fault')) bus.emit('mm.device.fault', { mm: mm.id, va, pfn, result: r });
  phys.unlockFolio(pfn);
  phys.put(pfn);
  return r;
}

/**
 * `zap_nonpresent_ptes` for a device-private or device-exclusive entry of frame `pfn` (already
 * cleared by the caller under the PTE lock): the page loses the mapping's mapcount and
 * reference (`folio_remove_rmap_pte`, `folio_put`) at once — no TLB entry can exist — which may
 * free it (a device page goes to its pagemap's `page_free`).
 *
 * @see zap_nonpresent_ptes
 */
export function zapDeviceEntry(core: MmCore, pfn: number): void {
  core.phys.mapcount[pfn]!--;
  core.phys.put(pfn);
}

/**
 * `copy_nonpresent_pte` for device entries, both PTE locks held. A device-private entry: the
 * child shares the page (a reference and a mapcount), and in a COW mapping a writable entry
 * becomes read-only in both (the next CPU write goes through `migrate_to_ram`, then COW). A
 * device-exclusive entry is restored in the parent first ({@link restoreExclusiveForFork}) and
 * the present PTE returned for the caller to copy as present.
 *
 * @returns the entry to continue with: the child's entry for device-private, the parent's
 *   restored present PTE for device-exclusive.
 * @see copy_nonpresent_pte
 */
export function copyDeviceEntry(
  core: MmCore,
  parent: MmStruct,
  src: Vma,
  srcSlot: PteSlot,
  va: number,
  pte: number,
): number {
  if (pteIsDeviceExclusive(pte))
    return restoreExclusiveForFork(core, parent, src, srcSlot, va, pte);
  if (!pteIsDevicePrivate(pte)) return pte;
  const pfn = ptePfn(pte);
  core.phys.get(pfn);
  core.phys.mapcount[pfn]!++;
  if (src.cow && pteIsWritableDevicePrivate(pte)) {
    const ro = mkDevicePrivatePte(pfn, false);
    core.pt.set(parent, srcSlot, va, ro);
    return ro;
  }
  return pte;
}

/**
 * `hmm_vma_handle_pte` for a device-private entry: a page of the caller's `dev_private_owner`
 * is reported (`pfn | VALID [| WRITE]`, computed by the caller from the returned flags) instead
 * of being faulted back. Returns 1 for a writable entry of the owner, 0 for a read-only one,
 * -1 when the entry is not such a page.
 *
 * @see hmm_vma_handle_pte
 */
export function hmmOwnDevicePrivate(core: MmCore, pte: number, owner: unknown): number {
  if (!pteIsDevicePrivate(pte) || owner === undefined || owner === null) return -1;
  if (pagePgmap(core, ptePfn(pte))?.owner !== owner) return -1;
  return pteIsWritableDevicePrivate(pte) ? 1 : 0;
}
