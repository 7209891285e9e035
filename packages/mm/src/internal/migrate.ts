import { Errno, GFP_KERNEL } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { PAGE_SIZE } from './constants.js';
import type { MmCore } from './core.js';
import { NotifierRange } from './notifier.js';
import { Frame } from './physmem.js';
import { mkMigrationPte, mkPte, Pte, PTE_NONE, pteFlags, pteIsMigration, ptePfn } from './pte.js';
import { flushClearedPte, isolateLru, putbackLru } from './reclaim.js';
import { mapsPfn, pageVmaMappedWalk, rmapWalk } from './rmap.js';
import { Vm, VM_ACCESS_FLAGS } from './vma.js';

/** Flags that describe the folio's identity and state, moved to the new frame by migration. */
const MIGRATED_FLAGS = Frame.ANON | Frame.FILE | Frame.DIRTY | Frame.REFERENCED | Frame.LAZYFREE;

function emitMigrate(core: MmCore, from: number, to: number, result: string): void {
  const bus = core.kernel.bus;
  if (bus.wants('mm.migrate')) bus.emit('mm.migrate', { from, to, result });
}

/**
 * `try_to_migrate` (notifier-core.md §7 row 10): replaces every PTE that maps the folio in frame
 * `pfn` by a migration entry. For each VMA of the rmap walk: a CLEAR window
 * `[va, va + PAGE_SIZE)`, and under the PTE lock: clear the PTE, flush (at once or deferred,
 * like reclaim), move its dirty bit to the folio, install `mkMigrationPte(pfn, writable)`, drop
 * the mapping's reference and mapcount. A pinned folio stops the walk (left mapped).
 *
 * Context: the caller holds the folio lock and a reference; with deferred flushing it calls
 * `core.tlb.batchFlush()` before copying the content.
 *
 * @returns true if nothing maps the folio any more.
 * @see try_to_migrate
 * @see try_to_migrate_one
 */
export function* tryToMigrate(core: MmCore, pfn: number): TaskGen<boolean> {
  const phys = core.phys;
  if (phys.mapcount[pfn]! === 0) return true;
  const maps = mapsPfn(pfn);
  yield* rmapWalk(core, pfn, function* (vma, va) {
    const mm = vma.mm;
    const range = new NotifierRange('CLEAR', mm, va, va + PAGE_SIZE);
    yield* core.notifiers.invalidateRangeStart(range);
    let go = true;
    const m = yield* pageVmaMappedWalk(core, vma, va, maps);
    if (m !== null) {
      if (phys.pincount[pfn]! > 0) {
        go = false;
      } else {
        core.pt.set(mm, m.slot, va, PTE_NONE);
        yield* flushClearedPte(core, mm, va);
        const f = pteFlags(m.pte);
        if ((f & Pte.DIRTY) !== 0) phys.flags[pfn]! |= Frame.DIRTY;
        core.pt.set(mm, m.slot, va, mkMigrationPte(pfn, (f & Pte.WRITE) !== 0));
        phys.mapcount[pfn]!--;
        phys.put(pfn);
      }
      m.ptl.unlock();
    }
    yield* core.notifiers.invalidateRangeEnd(range);
    return go && phys.mapcount[pfn]! > 0;
  });
  return phys.mapcount[pfn]! === 0;
}

/**
 * `remove_migration_ptes`: every migration entry for frame `from` in the VMAs of the rmap walk
 * becomes a present PTE mapping frame `to` (writable if the entry was and the VMA is, dirty if
 * writable and the folio is dirty; a PROT_NONE entry in an inaccessible VMA), taking a reference and a mapcount on `to`. With `from === to` it undoes a
 * failed migration. Installing a PTE where there was none needs no notifier window.
 *
 * Context: both folios locked by the caller; `to` already carries the rmap identity
 * (mapping/index) the walk uses. Takes the rmap lock for read and PTE locks.
 *
 * @see remove_migration_ptes
 * @see remove_migration_pte
 */
export function* removeMigrationPtes(core: MmCore, from: number, to: number): TaskGen<void> {
  const phys = core.phys;
  const isEntry = (pte: number): boolean => pteIsMigration(pte) && ptePfn(pte) === from;
  yield* rmapWalk(core, to, function* (vma, va) {
    const m = yield* pageVmaMappedWalk(core, vma, va, isEntry);
    if (m === null) return true;
    phys.get(to);
    phys.mapcount[to]!++;
    let pte: number;
    if ((vma.flags & VM_ACCESS_FLAGS) === 0) {
      // vm_page_prot of a PROT_NONE VMA: the page is mapped, the CPU cannot use it.
      pte = to * PAGE_SIZE + (Pte.USER | Pte.PROTNONE);
    } else {
      const writable = (pteFlags(m.pte) & Pte.WRITE) !== 0 && (vma.flags & Vm.WRITE) !== 0;
      const dirty = writable && (phys.flags[to]! & Frame.DIRTY) !== 0;
      pte = mkPte(to, Pte.USER | (writable ? Pte.WRITE : 0) | (dirty ? Pte.DIRTY : 0));
    }
    core.pt.set(vma.mm, m.slot, va, pte);
    m.ptl.unlock();
    return true;
  });
}

/**
 * Migrates the folio in frame `pfn` to a new frame (`migrate_pages` for one folio, synchronous
 * mode with a trylock): the data stays the same, the physical page changes, and every secondary
 * MMU sees a CLEAR invalidation for each mapping.
 *
 * 1. Checks and isolation: a free, zero, kernel or page-table frame, or one not on the LRU (being
 *    reclaimed or migrated), gives -EBUSY; so does a pinned one (`folio_maybe_dma_pinned`).
 *    Isolating takes a reference.
 * 2. The destination is allocated (may enter direct reclaim): -ENOMEM if it cannot be.
 * 3. The source folio lock is try-locked (-EBUSY if contended), the destination locked with
 *    subclass 1.
 * 4. `tryToMigrate`, then the deferred TLB flush.
 * 5. Only the isolation reference and the page cache's may remain (`folio_ref_freeze` of the
 *    expected count); otherwise the migration entries are turned back into PTEs to the old
 *    frame and the result is -EBUSY.
 * 6. Content, rmap identity (mapping, index) and state flags move to the new frame; a
 *    page-cache folio's cache entry is replaced (the cache's reference moves with it).
 * 7. `removeMigrationPtes` old → new; both folios unlocked (faults waiting on the old
 *    folio's lock in `migration_entry_wait` retry and find the new page); the new folio goes on
 *    the LRU; the old one is put and freed.
 *
 * Emits `mm.migrate` with `'ok'`, `'busy'`, `'pinned'` or `'nomem'`.
 *
 * Context: process context, may sleep. Lock order: folio lock → new folio lock (subclass 1) →
 * rmap lock → notifier window → PTE lock.
 *
 * @returns the new frame, or -EBUSY / -ENOMEM.
 * @see migrate_pages
 * @see migrate_folio_unmap
 * @see migrate_folio_move
 */
export function* migrateFolio(core: MmCore, pfn: number): TaskGen<number> {
  const phys = core.phys;
  if (!Number.isInteger(pfn) || pfn <= 0 || pfn >= phys.total) {
    emitMigrate(core, pfn, -1, 'busy');
    return -Errno.EBUSY;
  }
  if (phys.pincount[pfn]! > 0 && !phys.isFree(pfn)) {
    emitMigrate(core, pfn, -1, 'pinned');
    return -Errno.EBUSY;
  }
  if (!isolateLru(core, pfn)) {
    emitMigrate(core, pfn, -1, 'busy');
    return -Errno.EBUSY;
  }
  const file = (phys.flags[pfn]! & Frame.FILE) !== 0;
  core.kernel.mightAlloc(GFP_KERNEL, 'alloc_migration_target');
  const dst = yield* core.allocFrame(file ? 'file' : 'anon');
  if (dst < 0) {
    putbackLru(core, pfn);
    emitMigrate(core, pfn, -1, 'nomem');
    return -Errno.ENOMEM;
  }
  if (!phys.tryLockFolio(pfn)) {
    phys.put(dst);
    putbackLru(core, pfn);
    emitMigrate(core, pfn, -1, 'busy');
    return -Errno.EBUSY;
  }
  if (phys.pincount[pfn]! > 0) {
    phys.unlockFolio(pfn);
    phys.put(dst);
    putbackLru(core, pfn);
    emitMigrate(core, pfn, -1, 'pinned');
    return -Errno.EBUSY;
  }
  yield* phys.lockFolio(dst, 1);

  const unmapped = yield* tryToMigrate(core, pfn);
  yield* core.tlb.batchFlush(); // try_to_unmap_flush: before the content is copied

  const owner = file ? core.files.get(phys.mapping[pfn]!) : undefined;
  const index = phys.index[pfn]!;
  const inCache = owner !== undefined && owner.pageCache.get(index) === pfn;
  if (!unmapped || phys.refcount[pfn]! !== 1 + (inCache ? 1 : 0)) {
    // Someone else holds a reference (or a pin appeared): put the old PTEs back.
    yield* removeMigrationPtes(core, pfn, pfn);
    phys.unlockFolio(dst);
    phys.put(dst);
    phys.unlockFolio(pfn);
    putbackLru(core, pfn);
    emitMigrate(core, pfn, -1, 'busy');
    return -Errno.EBUSY;
  }

  // folio_migrate_mapping + folio_migrate_copy: no yield from the check above to here.
  phys.copy(pfn, dst);
  phys.mapping[dst] = phys.mapping[pfn]!;
  phys.index[dst] = index;
  phys.flags[dst] = (phys.flags[dst]! & Frame.LOCKED) | (phys.flags[pfn]! & MIGRATED_FLAGS);
  phys.flags[pfn]! &= ~(Frame.DIRTY | Frame.REFERENCED | Frame.LAZYFREE);
  if (owner !== undefined && inCache) {
    owner.pageCache.set(index, dst); // dst's allocation reference becomes the cache's
    phys.put(pfn); // the old page's cache reference (the isolation reference remains)
  }

  yield* removeMigrationPtes(core, pfn, dst);
  phys.unlockFolio(pfn);
  phys.unlockFolio(dst);
  core.lruAdd(dst);
  if (!inCache) phys.put(dst); // drop the allocation reference: the mappings hold it now
  emitMigrate(core, pfn, dst, 'ok');
  phys.put(pfn); // the isolation reference: the old frame is freed
  return dst;
}
