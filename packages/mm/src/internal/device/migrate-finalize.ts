// The last step of device migration (mm/migrate_device.c __migrate_device_finalize, 6.17):
// migration entries become mappings of the destination or of the source again, folios are
// unlocked and references dropped. Split from migrate-device.ts to keep files to one step each;
// migrate_vma_finalize and migrate_device_finalize both end here.
import type { TaskGen } from '@mmnsim/core';
import { PAGE_SIZE } from '../constants.js';
import type { MmCore } from '../core.js';
import { Frame } from '../physmem.js';
import { pteIsMigration, ptePfn } from '../pte.js';
import { deviceMemory, isZoneDevicePage } from './memremap.js';
import {
  directRestore,
  emit,
  mappingOf,
  MigratePfn,
  migratePfnHas,
  migratePfnToPfn,
  removeMigrationEntries,
} from './migrate-device.js';
import type { MigrateVma } from './migrate-device.js';

/** `__migrate_device_finalize`: the shared body of the two finalize calls. */
export function* deviceFinalize(
  core: MmCore,
  src: readonly number[],
  dst: readonly number[],
  n: number,
  fault: number,
  args: MigrateVma | null,
): TaskGen<void> {
  const phys = core.phys;
  const direct = args?.vma != null ? directRestore.get(src) : undefined;
  // Pass 1: where each source's mappings go; unused destinations are dropped.
  const tos = new Int32Array(n).fill(-1);
  for (let i = 0; i < n; i++) {
    const newPage = migratePfnToPfn(dst[i]!);
    const page = migratePfnToPfn(src[i]!);
    let to = newPage;
    if (page < 0 || !migratePfnHas(src[i]!, MigratePfn.MIGRATE) || newPage < 0) {
      if (newPage >= 0) {
        phys.unlockFolio(newPage);
        phys.put(newPage);
      }
      if (page < 0) continue;
      to = page;
    }
    tos[i] = to;
    if (!isZoneDevicePage(core, to)) core.lruAdd(to);
  }
  // Pass 2: remove_migration_ptes — directly, one PTE lock per table, where collect removed
  // the only mapping; through the rmap otherwise.
  for (let i = 0; i < n;) {
    if (tos[i]! < 0) {
      i++;
      continue;
    }
    if (direct?.[i] !== 1) {
      yield* removeMigrationEntries(core, migratePfnToPfn(src[i]!), tos[i]!);
      i++;
      continue;
    }
    i = yield* restoreTable(core, args!, src, tos, direct, i);
  }
  // Pass 3: unlock and drop the references.
  for (let i = 0; i < n; i++) {
    const to = tos[i]!;
    if (to < 0) continue;
    const page = migratePfnToPfn(src[i]!);
    if (to !== page) phys.flags[page]! &= ~(Frame.DIRTY | Frame.REFERENCED); // identity moved
    if (page !== fault) phys.unlockFolio(page);
    phys.put(page); // collect's or the isolation's reference: a migrated source is freed
    if (to !== page) {
      phys.unlockFolio(to);
      phys.put(to); // the allocation reference: the mappings hold it now
    }
  }
}

/**
 * Restores the direct entries from index `i` that share one PTE table, under its lock (the
 * check of `page_vma_mapped_walk`: the table is still the one linked, the entry is the
 * migration entry for the source). Returns the next index to handle.
 */
function* restoreTable(
  core: MmCore,
  args: MigrateVma,
  src: readonly number[],
  tos: Int32Array,
  direct: Uint8Array,
  i: number,
): TaskGen<number> {
  const vma = args.vma!;
  const mm = vma.mm;
  const va0 = args.start + i * PAGE_SIZE;
  const slot = core.pt.lookup(mm, va0);
  const tableEnd = va0 - (va0 % (512 * PAGE_SIZE)) + 512 * PAGE_SIZE;
  const n = tos.length;
  let j = i;
  const inTable = (k: number): boolean =>
    k < n && args.start + k * PAGE_SIZE < tableEnd && (tos[k]! < 0 || direct[k] === 1);
  if (slot === null) {
    while (inTable(j)) j++; // zapped meanwhile, table and all
    return j;
  }
  const ptl = mm.ptl(slot.tablePfn);
  yield* ptl.lock();
  const linked = core.pt.lookup(mm, va0)?.tablePfn === slot.tablePfn;
  for (; inTable(j); j++) {
    const to = tos[j]!;
    if (to < 0 || !linked) continue;
    const from = migratePfnToPfn(src[j]!);
    const s = { table: slot.table, tablePfn: slot.tablePfn, index: slot.index + (j - i) };
    const pte = slot.table[s.index]!;
    if (!pteIsMigration(pte) || ptePfn(pte) !== from) continue; // zapped meanwhile
    const toPrivate = deviceMemory(core).pagemap(to)?.type === 'device-private';
    core.pt.set(mm, s, args.start + j * PAGE_SIZE, mappingOf(core, vma, pte, to, toPrivate));
  }
  ptl.unlock();
  return j;
}

/**
 * `migrate_vma_finalize`: the end of a migration. For every entry, the migration entries become
 * mappings of the destination (when it is still MIGRATE) or of the source again, the folios are
 * unlocked (the fault page stays locked for its fault path), the source's reference is dropped
 * (freeing a migrated source: a device page goes to its pagemap's `page_free`), and unused
 * destination pages are unlocked and put.
 *
 * The content is the driver's business, as in the kernel: it copies each source into its
 * destination (`core.phys.copy`) between setup and `migrateVmaPages`.
 *
 * Context: `mmap_lock` held for read; may sleep.
 *
 * @see migrate_vma_finalize
 * @see __migrate_device_finalize
 */
export function* migrateVmaFinalize(core: MmCore, args: MigrateVma): TaskGen<void> {
  yield* deviceFinalize(core, args.src, args.dst, args.npages, args.faultPage ?? -1, args);
  directRestore.delete(args.src);
  emit(core, 'finalize', args.vma?.mm.id ?? 0, args.start, args.src, args.npages);
}
