// Migration of anonymous memory to and from device memory (mm/migrate_device.c, 6.17):
// migrate_vma_setup/pages/finalize for a driver working on a VMA, and the unmap, pages and
// finalize steps that migrate-range.ts (migrate_device_range, migrate_device_coherent_folio)
// shares. Its own file: the whole src/dst protocol lives here; migrate.ts (NUMA-style
// migrate_pages of one folio) is a different path with different rules.
import { Errno } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { PAGE_SIZE } from '../constants.js';
import type { MmCore } from '../core.js';
import { tryToMigrate } from '../migrate.js';
import { NotifierRange } from '../notifier.js';
import { Frame, PhysMem } from '../physmem.js';
import {
  mkMigrationPte,
  mkPte,
  Pte,
  PTE_NONE,
  pteFlags,
  pteIsMigration,
  pteMapsPage,
  ptePfn,
} from '../pte.js';
import { isolateLru, putbackLru } from '../reclaim.js';
import { pageVmaMappedWalk, rmapWalk } from '../rmap.js';
import { migrateVmaSplitHuge } from '../huge/split-folio.js';
import { VmHuge } from '../huge/thp.js';
import { Vm, VM_ACCESS_FLAGS } from '../vma.js';
import type { Vma } from '../vma.js';
import { mkDevicePrivatePte, pteIsDevicePrivate, pteIsWritableDevicePrivate } from './entries.js';
import { deviceMemory, isZoneDevicePage } from './memremap.js';

/**
 * The flags of a `migrate_vma` src/dst entry (`MIGRATE_PFN_*`, include/linux/migrate.h). An entry
 * is `pfn * 64 + flags` ({@link migratePfn}): VALID says a page is there, MIGRATE that it is (still)
 * being migrated, WRITE that it was mapped writable.
 *
 * @see MIGRATE_PFN_VALID
 */
export const MigratePfn = {
  /** `MIGRATE_PFN_VALID`: the entry holds a pfn. */
  VALID: 1,
  /** `MIGRATE_PFN_MIGRATE`: the page can (still) be migrated. */
  MIGRATE: 2,
  /** `MIGRATE_PFN_WRITE`: the source was mapped writable. */
  WRITE: 8,
  /** `MIGRATE_PFN_SHIFT`: the pfn's position (6 bits of flags). */
  SHIFT: 6,
} as const;

const PFN_UNIT = 2 ** MigratePfn.SHIFT;

/** `migrate_pfn(pfn)`: a VALID entry for `pfn`. @see migrate_pfn */
export function migratePfn(pfn: number): number {
  return pfn * PFN_UNIT + MigratePfn.VALID;
}

/** `migrate_pfn_to_page`: the pfn of an entry, or -1 if it is not VALID. @see migrate_pfn_to_page */
export function migratePfnToPfn(entry: number): number {
  return ((entry % PFN_UNIT) & MigratePfn.VALID) === 0 ? -1 : Math.floor(entry / PFN_UNIT);
}

/** True if entry `entry` has flag `flag` (a {@link MigratePfn} value). */
export function migratePfnHas(entry: number, flag: number): boolean {
  return ((entry % PFN_UNIT) & flag) !== 0;
}

function clearFlag(entry: number, flag: number): number {
  return migratePfnHas(entry, flag) ? entry - flag : entry;
}

/**
 * Which pages `migrate_vma_setup` collects (`enum migrate_vma_direction`): system memory, the
 * caller's device-private pages, the caller's device-coherent pages.
 *
 * @see MIGRATE_VMA_SELECT_SYSTEM
 */
export const MigrateVmaSelect = {
  /** `MIGRATE_VMA_SELECT_SYSTEM`: ordinary pages, the zero page and empty anonymous PTEs. */
  SYSTEM: 1,
  /** `MIGRATE_VMA_SELECT_DEVICE_PRIVATE`: device-private pages of `pgmapOwner`. */
  DEVICE_PRIVATE: 2,
  /** `MIGRATE_VMA_SELECT_DEVICE_COHERENT`: device-coherent pages of `pgmapOwner`. */
  DEVICE_COHERENT: 4,
} as const;

const SELECT_ALL =
  MigrateVmaSelect.SYSTEM | MigrateVmaSelect.DEVICE_PRIVATE | MigrateVmaSelect.DEVICE_COHERENT;

/**
 * `struct migrate_vma`: what a driver fills in for {@link migrateVmaSetup} and what the three
 * calls pass between them. `src` and `dst` hold one entry per page of `[start, end)`.
 *
 * @see struct migrate_vma
 */
export interface MigrateVma {
  /** The VMA (the caller holds `mmap_lock` for read and looked it up). */
  readonly vma: Vma | null;
  /** First address (rounded down to a page). */
  start: number;
  /** Exclusive end (rounded down; set to the end of what was collected). */
  end: number;
  /** Source entries (output of setup; MIGRATE is cleared by later steps for failed pages). */
  readonly src: number[];
  /** Destination entries: the driver stores `migratePfn(newPage)` for each page it migrates. */
  readonly dst: number[];
  /** Pages collected and unmapped (output). */
  cpages: number;
  /** Entries filled in (output). */
  npages: number;
  /** `pgmap_owner`: selects device pages of this owner and is the MIGRATE event's owner. */
  readonly pgmapOwner: unknown;
  /** {@link MigrateVmaSelect} bits. */
  readonly flags: number;
  /**
   * `fault_page`: the locked device-private page a `migrate_to_ram` handler migrates, or -1.
   * Its lock and the fault path's reference are accounted for, and it is not unlocked here.
   */
  readonly faultPage?: number;
}

/**
 * Per `src` array of a `migrate_vma`: 1 where collect removed the page's only mapping (the
 * migration entry it installed is then the only one, and it stays the only one while the
 * caller holds `mmap_lock`: fork and mremap need it for write), so finalize can restore that
 * entry directly instead of walking the rmap. The result is the rmap walk's.
 */
export const directRestore = new WeakMap<readonly number[], Uint8Array>();

/** Emits `mm.migrate_device` for step `op`, counting the entries still MIGRATE. */
export function emit(
  core: MmCore,
  op: string,
  mm: number,
  start: number,
  src: readonly number[],
  n: number,
): void {
  const bus = core.kernel.bus;
  if (!bus.wants('mm.migrate_device')) return;
  let migrating = 0;
  for (let i = 0; i < n; i++) if (migratePfnHas(src[i]!, MigratePfn.MIGRATE)) migrating++;
  bus.emit('mm.migrate_device', { op, mm, start, npages: n, migrating });
}

function vmaSpecial(vma: Vma): boolean {
  return (vma.flags & (Vm.IO | Vm.PFNMAP)) !== 0;
}

/**
 * `migrate_vma_setup`: collects the pages of `[args.start, args.end)` selected by `args.flags`
 * and unmaps them, leaving migration entries, so their content is stable for the driver to copy
 * into the destination pages it allocates.
 *
 * Collect (`migrate_vma_collect`) runs inside a `MMU_NOTIFY_MIGRATE` window whose owner is
 * `args.pgmapOwner` (so the owning driver can skip invalidating its own pages). Per PTE, under
 * the PTE lock:
 * - empty, in an anonymous VMA: `MIGRATE` with no page (the driver may populate it); in a file
 *   VMA (and MAP_SHARED anonymous memory, which is shmem): 0;
 * - the zero page with SELECT_SYSTEM: `MIGRATE` with no page (its PTE stays);
 * - a system page with SELECT_SYSTEM, a device-private entry (SELECT_DEVICE_PRIVATE) or
 *   device-coherent page (SELECT_DEVICE_COHERENT) of the owner: a reference is taken, the folio
 *   try-locked (a contended lock gives 0), the PTE replaced by a migration entry (mapcount and
 *   the mapping's reference dropped, dirty moved to the folio): `pfn | MIGRATE [| WRITE]`;
 * - a DMA-pinned anonymous page: 0 (`folio_try_share_anon_rmap_pte` refuses it);
 * - swap, migration and device-exclusive entries, raw pfns, pages without an rmap: 0.
 * The CPU TLB is flushed for each table that had present PTEs unmapped, under its lock.
 *
 * Unmap (`migrate_device_unmap`): system folios are isolated from the LRU (else the entry loses
 * MIGRATE), any other mapping is replaced by `try_to_migrate`, and a folio that is still mapped
 * or holds references beyond its mappings plus the caller's (`migrate_vma_check_page`: a GUP
 * reference, a pin taken meanwhile) is restored: its migration entries become PTEs again, the
 * entry becomes 0. `args.cpages` is the number of entries still MIGRATE.
 *
 * Returns 0, or -EINVAL: no VMA, VM_IO/VM_PFNMAP, an empty range or one outside the VMA, src/dst
 * arrays shorter than the range, unknown select flags, a `faultPage` that is not a locked
 * device-private page — all checked before anything changes.
 *
 * Context: the caller holds `vma.mm.mmapLock` for read; may sleep (notifier, TLB flush, folio
 * lock for the restore). Lock order: folio lock (try) under the PTE lock, rmap lock → PTE lock.
 *
 * @see migrate_vma_setup
 * @see migrate_vma_collect_pmd
 * @see migrate_device_unmap
 */
export function* migrateVmaSetup(core: MmCore, args: MigrateVma): TaskGen<number> {
  const vma = args.vma;
  // migrate_vma_setup refuses hugetlb VMAs with the special ones.
  if (vma === null || vmaSpecial(vma) || (vma.flags & VmHuge.HUGETLB) !== 0) return -Errno.EINVAL;
  if (!Number.isInteger(args.start) || !Number.isInteger(args.end)) return -Errno.EINVAL;
  if (!Number.isInteger(args.flags) || (args.flags & ~SELECT_ALL) !== 0) return -Errno.EINVAL;
  const start = args.start - (args.start % PAGE_SIZE);
  const end = args.end - (args.end % PAGE_SIZE);
  const n = (end - start) / PAGE_SIZE;
  if (n <= 0) return -Errno.EINVAL;
  if (start < vma.start || start >= vma.end) return -Errno.EINVAL;
  if (end <= vma.start || end > vma.end) return -Errno.EINVAL;
  if (!Array.isArray(args.src) || !Array.isArray(args.dst)) return -Errno.EINVAL;
  if (args.src.length < n || args.dst.length < n) return -Errno.EINVAL;
  const fault = args.faultPage ?? -1;
  if (fault !== -1) {
    const pgmap = deviceMemory(core).pagemap(fault);
    if (pgmap?.type !== 'device-private' || !core.phys.isLocked(fault)) return -Errno.EINVAL;
  }
  args.start = start;
  args.end = end;
  for (let i = 0; i < n; i++) args.src[i] = 0;
  args.cpages = 0;
  args.npages = 0;
  directRestore.set(args.src, new Uint8Array(n));
  // migrate_vma_collect_pmd meets a PMD leaf: 6.17 splits the huge zero PMD, and a THP's
  // folio (split_folio) or skips its range when it cannot. The model does this PMD step before
  // the collect's window (see the README).
  const skipped = yield* migrateVmaSplitHuge(core, vma, start, end);
  yield* collect(core, args, vma, start, end, fault, skipped);
  if (args.cpages > 0) args.cpages = yield* deviceUnmap(core, args.src, args.npages, fault);
  emit(core, 'setup', vma.mm.id, start, args.src, args.npages);
  return 0;
}

/** `migrate_vma_collect` with `migrate_vma_collect_pmd` for every PTE table of the range. */
function* collect(
  core: MmCore,
  args: MigrateVma,
  vma: Vma,
  start: number,
  end: number,
  fault: number,
  skipped: ReadonlySet<number>,
): TaskGen<void> {
  const mm = vma.mm;
  const range = new NotifierRange('MIGRATE', mm, start, end, args.pgmapOwner);
  yield* core.notifiers.invalidateRangeStart(range);
  const phys = core.phys;
  const dev = deviceMemory(core);
  const anon = vma.anonymous;
  let addr = start;
  while (addr < end) {
    const tableEnd = Math.min(end, addr - (addr % (512 * PAGE_SIZE)) + 512 * PAGE_SIZE);
    if (skipped.has(addr - (addr % (512 * PAGE_SIZE)))) {
      // migrate_vma_collect_skip: a THP that could not be split.
      for (; addr < tableEnd; addr += PAGE_SIZE) {
        args.src[args.npages] = 0;
        args.dst[args.npages++] = 0;
      }
      continue;
    }
    const slot = core.pt.lookup(mm, addr);
    if (slot === null) {
      // migrate_vma_collect_hole: only anonymous memory may be populated.
      for (; addr < tableEnd; addr += PAGE_SIZE) {
        args.src[args.npages] = anon ? MigratePfn.MIGRATE : 0;
        args.dst[args.npages++] = 0;
        if (anon) args.cpages++;
      }
      continue;
    }
    const ptl = mm.ptl(slot.tablePfn);
    yield* ptl.lock();
    let unmapped = false;
    const from = addr;
    for (; addr < tableEnd; addr += PAGE_SIZE) {
      const index = slot.index + (addr - from) / PAGE_SIZE;
      const pte = slot.table[index]!;
      const s = { table: slot.table, tablePfn: slot.tablePfn, index };
      let mpfn = 0;
      let page = -1;
      if (pte === PTE_NONE) {
        if (anon) {
          mpfn = MigratePfn.MIGRATE;
          args.cpages++;
        }
      } else if (pteIsDevicePrivate(pte)) {
        const pfn = ptePfn(pte);
        const pgmap = dev.pagemap(pfn);
        if (
          (args.flags & MigrateVmaSelect.DEVICE_PRIVATE) !== 0 &&
          pgmap?.owner === args.pgmapOwner
        ) {
          page = pfn;
          mpfn =
            migratePfn(pfn) +
            MigratePfn.MIGRATE +
            (pteIsWritableDevicePrivate(pte) ? MigratePfn.WRITE : 0);
        }
      } else if (pteMapsPage(pte)) {
        const pfn = ptePfn(pte);
        const special = (pteFlags(pte) & Pte.SPECIAL) !== 0 || (vma.flags & Vm.PFNMAP) !== 0;
        if (pfn === PhysMem.ZERO_PFN || special) {
          if (pfn === PhysMem.ZERO_PFN && (args.flags & MigrateVmaSelect.SYSTEM) !== 0) {
            mpfn = MigratePfn.MIGRATE;
            args.cpages++;
          }
        } else {
          const zd = isZoneDevicePage(core, pfn);
          const pgmap = zd ? dev.pagemap(pfn) : undefined;
          const selected = zd
            ? pgmap?.type === 'device-coherent' &&
              (args.flags & MigrateVmaSelect.DEVICE_COHERENT) !== 0 &&
              pgmap.owner === args.pgmapOwner
            : (args.flags & MigrateVmaSelect.SYSTEM) !== 0;
          if (selected) {
            page = pfn;
            mpfn =
              migratePfn(pfn) +
              MigratePfn.MIGRATE +
              ((pteFlags(pte) & Pte.WRITE) !== 0 ? MigratePfn.WRITE : 0);
          }
        }
      }
      // "FIXME support THP": a page without an rmap (no anon_vma, no file) is not migrated.
      if (page >= 0 && phys.mapping[page] === 0) {
        page = -1;
        mpfn = 0;
      }
      if (page >= 0) {
        phys.get(page); // pins the folio and "freezes" the PTE
        if (page === fault || phys.tryLockFolio(page)) {
          const anonPinned = (phys.flags[page]! & Frame.ANON) !== 0 && phys.pincount[page]! > 0;
          if (anonPinned) {
            // folio_try_share_anon_rmap_pte fails for a maybe-DMA-pinned exclusive page.
            if (page !== fault) phys.unlockFolio(page);
            phys.put(page);
            mpfn = 0;
          } else {
            const present = pteMapsPage(pte);
            args.cpages++;
            if ((pteFlags(pte) & Pte.DIRTY) !== 0) phys.flags[page]! |= Frame.DIRTY;
            core.pt.set(mm, s, addr, mkMigrationPte(page, migratePfnHas(mpfn, MigratePfn.WRITE)));
            phys.mapcount[page]!--; // folio_remove_rmap_pte
            phys.put(page); // the mapping's reference; ours keeps the folio
            if (phys.mapcount[page] === 0) directRestore.get(args.src)![args.npages] = 1;
            if (present) unmapped = true;
          }
        } else {
          phys.put(page);
          mpfn = 0;
        }
      }
      args.dst[args.npages] = 0;
      args.src[args.npages++] = mpfn;
    }
    if (unmapped) yield* core.tlb.flushRange(mm, from, addr, false);
    ptl.unlock();
  }
  yield* core.notifiers.invalidateRangeEnd(range);
  args.end = args.start + args.npages * PAGE_SIZE;
}

/**
 * `migrate_vma_check_page`: may the unmapped folio be migrated? Only its mappings, the caller's
 * reference (collect's, or the isolation's) and the fault path's for the fault page may remain.
 */
function checkPage(core: MmCore, pfn: number, fault: number): boolean {
  const phys = core.phys;
  let extra = 1 + (pfn === fault ? 1 : 0);
  if ((phys.flags[pfn]! & Frame.FILE) !== 0) extra += 1; // the page cache's reference
  return phys.refcount[pfn]! - extra <= phys.mapcount[pfn]!;
}

/**
 * `try_to_migrate` for a device-private folio: every device-private entry mapping it (in every
 * mm the rmap finds) becomes a migration entry. A CLEAR window per mapping, as
 * `try_to_migrate_one` opens; no TLB flush (the CPU never mapped it).
 */
function* tryToMigrateDevicePrivate(core: MmCore, pfn: number): TaskGen<void> {
  const phys = core.phys;
  const match = (pte: number): boolean => pteIsDevicePrivate(pte) && ptePfn(pte) === pfn;
  yield* rmapWalk(core, pfn, function* (vma, va) {
    const range = new NotifierRange('CLEAR', vma.mm, va, va + PAGE_SIZE);
    yield* core.notifiers.invalidateRangeStart(range);
    const m = yield* pageVmaMappedWalk(core, vma, va, match);
    if (m !== null) {
      core.pt.set(vma.mm, m.slot, va, mkMigrationPte(pfn, pteIsWritableDevicePrivate(m.pte)));
      phys.mapcount[pfn]!--;
      phys.put(pfn);
      m.ptl.unlock();
    }
    yield* core.notifiers.invalidateRangeEnd(range);
    return phys.mapcount[pfn]! > 0;
  });
}

/**
 * `migrate_device_unmap`: isolate, unmap what collect could not, check the references, and
 * restore the pages that cannot be migrated. Returns the entries still MIGRATE.
 */
export function* deviceUnmap(
  core: MmCore,
  src: number[],
  n: number,
  fault: number,
): TaskGen<number> {
  const phys = core.phys;
  let unmapped = 0;
  let restore = 0;
  for (let i = 0; i < n; i++) {
    const pfn = migratePfnToPfn(src[i]!);
    if (pfn < 0) {
      if (migratePfnHas(src[i]!, MigratePfn.MIGRATE)) unmapped++;
      continue;
    }
    const zd = isZoneDevicePage(core, pfn);
    if (!zd) {
      if (!isolateLru(core, pfn)) {
        src[i] = clearFlag(src[i]!, MigratePfn.MIGRATE);
        restore++;
        continue;
      }
      phys.put(pfn); // drop collect's reference: the isolation holds one now
    }
    if (phys.mapcount[pfn]! > 0) {
      if (zd && deviceMemory(core).pagemap(pfn)?.type === 'device-private') {
        yield* tryToMigrateDevicePrivate(core, pfn);
      } else {
        yield* tryToMigrate(core, pfn);
        yield* core.tlb.batchFlush();
      }
    }
    if (phys.mapcount[pfn]! > 0 || !checkPage(core, pfn, fault)) {
      if (!zd) {
        phys.get(pfn);
        putbackLru(core, pfn);
      }
      src[i] = clearFlag(src[i]!, MigratePfn.MIGRATE);
      restore++;
      continue;
    }
    unmapped++;
  }
  for (let i = 0; i < n && restore > 0; i++) {
    const pfn = migratePfnToPfn(src[i]!);
    if (pfn < 0 || migratePfnHas(src[i]!, MigratePfn.MIGRATE)) continue;
    yield* removeMigrationEntries(core, pfn, pfn);
    src[i] = 0;
    if (pfn !== fault) phys.unlockFolio(pfn);
    phys.put(pfn);
    restore--;
  }
  return unmapped;
}

/**
 * `remove_migration_ptes(src, dst)` for device migration: every migration entry for frame `from`
 * found through `to`'s rmap becomes a mapping of `to` — a device-private entry when `to` is a
 * device-private page (`make_{writable,readable}_device_private_entry`), else a present PTE
 * (writable if the entry was and the VMA is, dirty if writable and the folio dirty; PROT_NONE in
 * an inaccessible VMA). Each takes a reference and a mapcount on `to`.
 *
 * @see remove_migration_pte
 */
export function* removeMigrationEntries(core: MmCore, from: number, to: number): TaskGen<void> {
  const toPrivate = deviceMemory(core).pagemap(to)?.type === 'device-private';
  const isEntry = (pte: number): boolean => pteIsMigration(pte) && ptePfn(pte) === from;
  yield* rmapWalk(core, to, function* (vma, va) {
    const m = yield* pageVmaMappedWalk(core, vma, va, isEntry);
    if (m === null) return true;
    core.pt.set(vma.mm, m.slot, va, mappingOf(core, vma, m.pte, to, toPrivate));
    m.ptl.unlock();
    return true;
  });
}

/**
 * `remove_migration_pte` for one migration entry `entry` of `vma`: the entry mapping `to` that
 * replaces it, with the reference and mapcount it holds taken.
 */
export function mappingOf(
  core: MmCore,
  vma: Vma,
  entry: number,
  to: number,
  toPrivate: boolean,
): number {
  const phys = core.phys;
  phys.get(to);
  phys.mapcount[to]!++;
  const writable = (pteFlags(entry) & Pte.WRITE) !== 0 && (vma.flags & Vm.WRITE) !== 0;
  if (toPrivate) return mkDevicePrivatePte(to, writable);
  if ((vma.flags & VM_ACCESS_FLAGS) === 0) return to * PAGE_SIZE + (Pte.USER | Pte.PROTNONE);
  const dirty = writable && (phys.flags[to]! & Frame.DIRTY) !== 0;
  return mkPte(to, Pte.USER | (writable ? Pte.WRITE : 0) | (dirty ? Pte.DIRTY : 0));
}

/** Flags that describe the folio's identity and state, moved by `folio_migrate_flags`. */
const MIGRATED_FLAGS = Frame.ANON | Frame.DIRTY | Frame.REFERENCED;

/**
 * `migrate_vma_insert_page`: an entry collected without a page (an empty anonymous PTE or the
 * zero page) gets the driver's new page: a device-private entry (writable if the VMA is) or a
 * present PTE (writable and dirty if the VMA is writable). Aborts — clearing MIGRATE — in a
 * file VMA, when the page table cannot be allocated, when the PTE is no longer empty (or the
 * zero page, which is replaced with a flush), or when the mm is exiting.
 */
function* insertPage(
  core: MmCore,
  args: MigrateVma,
  vma: Vma,
  addr: number,
  page: number,
  i: number,
): TaskGen<void> {
  const phys = core.phys;
  const mm = vma.mm;
  const abort = (): void => {
    args.src[i] = clearFlag(args.src[i]!, MigratePfn.MIGRATE);
  };
  if (!vma.anonymous) return abort();
  const slot = yield* core.pt.allocSlot(mm, addr);
  if (slot === null) return abort();
  const av = core.anonVmaPrepare(vma);
  const writable = (vma.flags & Vm.WRITE) !== 0;
  const pgmap = deviceMemory(core).pagemap(page);
  const entry =
    pgmap?.type === 'device-private'
      ? mkDevicePrivatePte(page, writable)
      : mkPte(page, Pte.USER | (writable ? Pte.WRITE | Pte.DIRTY : 0));
  const ptl = mm.ptl(slot.tablePfn);
  yield* ptl.lock();
  const orig = slot.table[slot.index]!;
  let flush = false;
  if (mm.exited) {
    ptl.unlock();
    return abort(); // check_stable_address_space
  }
  if (pteMapsPage(orig)) {
    if (ptePfn(orig) !== PhysMem.ZERO_PFN) {
      ptl.unlock();
      return abort();
    }
    flush = true;
  } else if (orig !== PTE_NONE) {
    ptl.unlock();
    return abort();
  }
  // folio_add_new_anon_rmap + folio_get.
  phys.flags[page]! |= Frame.ANON;
  phys.mapping[page] = av.id;
  phys.index[page] = vma.pageIndex(addr);
  phys.mapcount[page] = 1;
  phys.get(page);
  if (pgmap === undefined) core.lruAdd(page);
  if (flush) {
    core.pt.set(mm, slot, addr, PTE_NONE);
    yield* core.tlb.flushRange(mm, addr, addr + PAGE_SIZE, false);
  }
  core.pt.set(mm, slot, addr, entry);
  ptl.unlock();
  args.src[i] = MigratePfn.MIGRATE;
}

/** `__migrate_device_pages`: the shared body of {@link migrateVmaPages} and {@link migrateDevicePages}. */
export function* devicePages(
  core: MmCore,
  src: number[],
  dst: readonly number[],
  n: number,
  args: MigrateVma | null,
): TaskGen<void> {
  const phys = core.phys;
  const dev = deviceMemory(core);
  let range: NotifierRange | null = null;
  for (let i = 0; i < n; i++) {
    const newPage = migratePfnToPfn(dst[i]!);
    const page = migratePfnToPfn(src[i]!);
    if (newPage < 0) {
      src[i] = clearFlag(src[i]!, MigratePfn.MIGRATE);
      continue;
    }
    if (page < 0) {
      if (!migratePfnHas(src[i]!, MigratePfn.MIGRATE) || args === null || args.vma === null)
        continue;
      const addr = args.start + i * PAGE_SIZE;
      if (range === null) {
        range = new NotifierRange('MIGRATE', args.vma.mm, addr, args.end, args.pgmapOwner);
        yield* core.notifiers.invalidateRangeStart(range);
      }
      yield* insertPage(core, args, args.vma, addr, newPage, i);
      continue;
    }
    // Only anonymous memory moves to device memory (and the model moves nothing else).
    if ((phys.flags[page]! & Frame.FILE) !== 0 || dev.pagemap(newPage)?.live === false) {
      src[i] = clearFlag(src[i]!, MigratePfn.MIGRATE);
      continue;
    }
    // folio_migrate_mapping: the expected references are the collect/isolation one (+ the fault path's).
    const expected = 1 + (args !== null && args.faultPage === page ? 1 : 0);
    if (phys.refcount[page]! !== expected || phys.mapcount[page]! !== 0) {
      src[i] = clearFlag(src[i]!, MigratePfn.MIGRATE);
      continue;
    }
    // folio_migrate_flags (the rmap identity moves with the mapping).
    phys.mapping[newPage] = phys.mapping[page]!;
    phys.index[newPage] = phys.index[page]!;
    phys.flags[newPage] =
      (phys.flags[newPage]! & (Frame.LOCKED | Frame.DEVICE)) | (phys.flags[page]! & MIGRATED_FLAGS);
  }
  if (range !== null) yield* core.notifiers.invalidateRangeEnd(range);
}

/**
 * `migrate_vma_pages`: after the driver allocated destination pages (locked, one reference each:
 * `zoneDevicePageInit` for device pages, a locked system page otherwise), stored them in
 * `args.dst` and copied the data, moves each source's identity to its destination. Entries
 * without a destination, file pages, and sources that gained a reference since setup lose
 * MIGRATE; entries collected without a page are populated under a second MIGRATE window (owner
 * `pgmapOwner`) opened at the first of them. Nothing is mapped yet except those new pages.
 *
 * Context: `mmap_lock` held for read, as for setup; may sleep.
 *
 * @see migrate_vma_pages
 * @see __migrate_device_pages
 */
export function* migrateVmaPages(core: MmCore, args: MigrateVma): TaskGen<void> {
  yield* devicePages(core, args.src, args.dst, args.npages, args);
  emit(core, 'pages', args.vma?.mm.id ?? 0, args.start, args.src, args.npages);
}
