// The long-term pin rule for device memory (mm/gup.c __gup_longterm_locked,
// check_and_migrate_movable_pages, 6.17): device-coherent pages may not be pinned FOLL_LONGTERM,
// so GUP migrates them to system memory and pins again. Device-private pages never reach here:
// their entries are not present, so GUP faults them back through migrate_to_ram first. Its own
// file so gup.ts only gains the call.
import { Errno } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import type { MmCore } from '../core.js';
import { unpinUserPage } from '../gup.js';
import { isDeviceCoherentPage } from './memremap.js';
import { migrateDeviceCoherentFolio } from './migrate-range.js';

/**
 * `check_and_migrate_movable_pages` for the `n` pages just pinned in `pages`: if none is
 * device-coherent, 0 (keep the pins). Otherwise each device-coherent page's pin becomes a
 * plain reference and the page is migrated to system memory (`migrate_device_coherent_folio`);
 * every other pin is dropped; the result is -EAGAIN (pin again), or -EBUSY if a migration
 * failed.
 *
 * @see check_and_migrate_movable_pages
 */
export function* checkAndMigrateMovablePages(
  core: MmCore,
  pages: number[],
  n: number,
): TaskGen<number> {
  let any = false;
  for (let i = 0; i < n; i++) if (isDeviceCoherentPage(core, pages[i]!)) any = true;
  if (!any) return 0;
  const done = new Array<boolean>(n).fill(false);
  let ret = -Errno.EAGAIN;
  for (let i = 0; i < n; i++) {
    const pfn = pages[i]!;
    if (!isDeviceCoherentPage(core, pfn)) continue;
    done[i] = true;
    core.phys.get(pfn); // the pin becomes a plain reference, which the migration consumes
    unpinUserPage(core, pfn);
    if ((yield* migrateDeviceCoherentFolio(core, pfn)) !== 0) {
      ret = -Errno.EBUSY;
      break;
    }
  }
  for (let i = 0; i < n; i++) if (!done[i]) unpinUserPage(core, pages[i]!);
  return ret;
}

/**
 * `__gup_longterm_locked`: pins with `pin` (a GUP walk filling `pages`), then applies
 * {@link checkAndMigrateMovablePages}, pinning again while it returns -EAGAIN.
 *
 * @see __gup_longterm_locked
 */
export function* gupLongtermLocked(
  core: MmCore,
  pin: () => TaskGen<number>,
  pages: number[],
): TaskGen<number> {
  for (;;) {
    const rc = yield* pin();
    if (rc <= 0) return rc;
    const r = yield* checkAndMigrateMovablePages(core, pages, rc);
    if (r === -Errno.EAGAIN) continue;
    return r < 0 ? r : rc;
  }
}
