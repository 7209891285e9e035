// Device migration without a VMA (mm/migrate_device.c, 6.17): migrate_device_range/pages/
// finalize, with which a driver evicts its own device pages (test_hmm's RELEASE), and
// migrate_device_coherent_folio, which GUP uses before a FOLL_LONGTERM pin. Split from
// migrate-device.ts (the migrate_vma_* protocol) to keep each file to one entry point family;
// both share the unmap, pages and finalize steps defined there.
import { Errno, GFP_KERNEL } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import type { MmCore } from '../core.js';
import { isZoneDevicePage } from './memremap.js';
import { deviceFinalize } from './migrate-finalize.js';
import {
  devicePages,
  deviceUnmap,
  emit,
  MigratePfn,
  migratePfn,
  migratePfnHas,
} from './migrate-device.js';

/**
 * `migrate_device_range`: collects `npages` device pages from `startPfn` for eviction (a driver
 * removing its memory): each page in use is referenced and try-locked (`src[i] =
 * migratePfn(pfn) | MIGRATE`; a free or contended page gives 0), then unmapped from every mm
 * that maps it (`try_to_migrate`) and checked like {@link migrateVmaSetup}. The driver then
 * allocates system pages, copies, and calls {@link migrateDevicePages} and
 * {@link migrateDeviceFinalize}. Returns 0, or -EINVAL for a range that is not device memory
 * or arrays too short.
 *
 * Context: process context, no `mmap_lock` needed; may sleep.
 *
 * @see migrate_device_range
 */
export function* migrateDeviceRange(
  core: MmCore,
  src: number[],
  startPfn: number,
  npages: number,
): TaskGen<number> {
  if (!Number.isInteger(startPfn) || !Number.isInteger(npages) || npages < 1) return -Errno.EINVAL;
  if (!Array.isArray(src) || src.length < npages) return -Errno.EINVAL;
  const phys = core.phys;
  for (let i = 0; i < npages; i++) if (!isZoneDevicePage(core, startPfn + i)) return -Errno.EINVAL;
  for (let i = 0; i < npages; i++) {
    const pfn = startPfn + i;
    if (phys.refcount[pfn]! <= 0) {
      src[i] = 0; // folio_try_get failed: a free page
      continue;
    }
    phys.get(pfn);
    if (!phys.tryLockFolio(pfn)) {
      phys.put(pfn);
      src[i] = 0;
      continue;
    }
    src[i] = migratePfn(pfn) + MigratePfn.MIGRATE;
  }
  yield* deviceUnmap(core, src, npages, -1);
  emit(core, 'range', 0, startPfn, src, npages);
  return 0;
}

/**
 * `migrate_device_pages`: {@link migrateVmaPages} for entries collected by
 * {@link migrateDeviceRange} (no VMA: no entry without a page).
 *
 * @see migrate_device_pages
 */
export function* migrateDevicePages(
  core: MmCore,
  src: number[],
  dst: readonly number[],
  npages: number,
): TaskGen<void> {
  yield* devicePages(core, src, dst, npages, null);
  emit(core, 'pages', 0, 0, src, npages);
}

/**
 * `migrate_device_finalize`: {@link migrateVmaFinalize} for {@link migrateDeviceRange}.
 *
 * @see migrate_device_finalize
 */
export function* migrateDeviceFinalize(
  core: MmCore,
  src: readonly number[],
  dst: readonly number[],
  npages: number,
): TaskGen<void> {
  yield* deviceFinalize(core, src, dst, npages, -1, null);
  emit(core, 'finalize', 0, 0, src, npages);
}

/**
 * `migrate_device_coherent_folio`: moves one device-coherent page to a new system page (GUP does
 * this before a FOLL_LONGTERM pin; the caller holds a reference it converted from its pin).
 * Returns 0, or -EBUSY if the page could not be unmapped, had extra references, or no system
 * page was free.
 *
 * Context: process context; may sleep (folio lock, notifier, allocation).
 *
 * @see migrate_device_coherent_folio
 */
export function* migrateDeviceCoherentFolio(core: MmCore, pfn: number): TaskGen<number> {
  const phys = core.phys;
  yield* phys.lockFolio(pfn);
  const src = [migratePfn(pfn) + MigratePfn.MIGRATE];
  yield* deviceUnmap(core, src, 1, -1);
  if (!migratePfnHas(src[0]!, MigratePfn.MIGRATE)) return -Errno.EBUSY;
  const dst = [0];
  core.kernel.mightAlloc(GFP_KERNEL, 'folio_alloc');
  const fresh = yield* core.allocFrame('anon');
  if (fresh >= 0) {
    phys.tryLockFolio(fresh);
    dst[0] = migratePfn(fresh);
  }
  yield* devicePages(core, src, dst, 1, null);
  if (migratePfnHas(src[0]!, MigratePfn.MIGRATE)) phys.copy(pfn, fresh); // folio_copy
  yield* deviceFinalize(core, src, dst, 1, -1, null);
  return migratePfnHas(src[0]!, MigratePfn.MIGRATE) ? 0 : -Errno.EBUSY;
}
