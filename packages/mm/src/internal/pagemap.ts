// /proc/<pid>/pagemap (fs/proc/task_mmu.c pagemap_read, pte_to_pagemap_entry, 6.17): one 64-bit
// entry per virtual page saying whether it is present, swapped (including the pfn swap entries:
// migration, device-private, device-exclusive) and which frame it maps. Its own file: a read-only
// view of page tables that hmm-tests and users check, with the kernel's bit layout.
import { Errno } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { PAGE_SIZE, TASK_SIZE } from './constants.js';
import type { MmCore } from './core.js';
import { pteIsDeviceExclusive, pteIsDevicePrivate } from './device/entries.js';
import type { MmStruct } from './mm.js';
import { Frame, PhysMem } from './physmem.js';
import { Pte, PTE_NONE, pteFlags, pteIsMigration, pteIsSwap, pteMapsPage, ptePfn } from './pte.js';
import { Vm } from './vma.js';

/**
 * The bits of a pagemap entry (`PM_*`, fs/proc/task_mmu.c), as bigints: entries are 64-bit.
 *
 * @see PM_PRESENT
 */
export const PagemapBits = {
  /** `PM_PFRAME_MASK`: bits 0–54, the pfn (present) or swap type | offset << 5 (swapped). */
  PFRAME_MASK: (1n << 55n) - 1n,
  /** `PM_SOFT_DIRTY` (bit 55). */
  SOFT_DIRTY: 1n << 55n,
  /** `PM_MMAP_EXCLUSIVE` (bit 56): the page is mapped exactly once. */
  MMAP_EXCLUSIVE: 1n << 56n,
  /** `PM_FILE` (bit 61): a page-cache (or shmem) page. */
  FILE: 1n << 61n,
  /** `PM_SWAP` (bit 62): a swap or pfn swap entry. */
  SWAP: 1n << 62n,
  /** `PM_PRESENT` (bit 63). */
  PRESENT: 1n << 63n,
} as const;

/** `MAX_SWAPFILES_SHIFT`: the swap type's width in a swapped entry's frame field. */
export const MAX_SWAPFILES_SHIFT = 5;

/**
 * Swap types of the pfn swap entries (include/linux/swap.h with device-private memory, migration
 * and memory-failure configured: MAX_SWAPFILES = 32 − 3 − 3 − 1 − 1 = 24). The model's swap
 * device is type 0.
 *
 * @see SWP_DEVICE_WRITE
 */
export const SwpType = {
  /** `SWP_MIGRATION_READ`. */
  MIGRATION_READ: 25,
  /** `SWP_MIGRATION_WRITE`. */
  MIGRATION_WRITE: 27,
  /** `SWP_DEVICE_WRITE`: a writable device-private entry. */
  DEVICE_WRITE: 28,
  /** `SWP_DEVICE_READ`: a read-only device-private entry. */
  DEVICE_READ: 29,
  /** `SWP_DEVICE_EXCLUSIVE`. */
  DEVICE_EXCLUSIVE: 30,
} as const;

/** Options of {@link pagemapRead}. */
export interface PagemapOptions {
  /**
   * `pm->show_pfn` (the reader has CAP_SYS_ADMIN): frame numbers and swap type/offset are shown;
   * without it they read 0. Default true.
   */
  readonly showPfn?: boolean;
}

function swapFrame(type: number, offset: number): bigint {
  return BigInt(type) | (BigInt(offset) << BigInt(MAX_SWAPFILES_SHIFT));
}

/** `pte_to_pagemap_entry` for one PTE of a VMA. */
function entryOf(core: MmCore, pte: number, showPfn: boolean, rawPfns: boolean): bigint {
  if (pte === PTE_NONE) return 0n;
  const f = pteFlags(pte);
  const phys = core.phys;
  let flags = (f & Pte.SOFT_DIRTY) !== 0 ? PagemapBits.SOFT_DIRTY : 0n;
  let frame = 0n;
  let page = -1;
  if (pteMapsPage(pte)) {
    const pfn = ptePfn(pte);
    if (showPfn) frame = BigInt(pfn);
    flags |= PagemapBits.PRESENT;
    // vm_normal_page: no page for the zero page or raw pfns.
    if (pfn !== PhysMem.ZERO_PFN && (f & Pte.SPECIAL) === 0 && !rawPfns) page = pfn;
  } else {
    let type: number;
    let pfnEntry = true;
    if (pteIsSwap(pte)) {
      type = 0;
      pfnEntry = false;
    } else if (pteIsMigration(pte)) {
      type = (f & Pte.WRITE) !== 0 ? SwpType.MIGRATION_WRITE : SwpType.MIGRATION_READ;
    } else if (pteIsDevicePrivate(pte)) {
      type = (f & Pte.WRITE) !== 0 ? SwpType.DEVICE_WRITE : SwpType.DEVICE_READ;
    } else if (pteIsDeviceExclusive(pte)) {
      type = SwpType.DEVICE_EXCLUSIVE;
    } else {
      return 0n;
    }
    if (showPfn) frame = swapFrame(type, ptePfn(pte));
    flags |= PagemapBits.SWAP;
    if (pfnEntry) page = ptePfn(pte);
  }
  if (page >= 0) {
    if ((phys.flags[page]! & Frame.ANON) === 0) flags |= PagemapBits.FILE;
    if ((flags & PagemapBits.PRESENT) !== 0n && phys.mapcount[page] === 1)
      flags |= PagemapBits.MMAP_EXCLUSIVE;
  }
  return (frame & PagemapBits.PFRAME_MASK) | flags;
}

/**
 * Reads `npages` entries of `/proc/<pid>/pagemap` of `mm` from the page of `addr` (the file
 * offset `addr / PAGE_SIZE * 8`), as `pagemap_read` does: under `mmap_lock` for read, one entry
 * per page — 0 for a hole or an empty PTE; `PRESENT | pfn` for a present or PROT_NONE PTE (with
 * `MMAP_EXCLUSIVE` when the page is mapped once, `FILE` for a page-cache page, nothing for the
 * zero page); `SWAP | type | offset << 5` for a swap entry (type 0, the slot) or a pfn swap entry
 * (migration 25/27, device-private 28/29, device-exclusive 30; the offset is the pfn, and
 * `FILE` applies as for present pages); `SOFT_DIRTY` from the entry.
 *
 * Returns the entries, or -EINVAL for an address that is not a page-aligned integer or a count
 * that is not a non-negative integer. Entries past `TASK_SIZE` are not returned (the read ends
 * there, as `pagemap_read` stops at the end of the user address space).
 *
 * Context: process context; takes and drops `mm.mmapLock` for read (the caller must not hold it).
 *
 * @see pagemap_read
 * @see pte_to_pagemap_entry
 */
export function* pagemapRead(
  core: MmCore,
  mm: MmStruct,
  addr: number,
  npages: number,
  options: PagemapOptions = {},
): TaskGen<bigint[] | number> {
  if (!Number.isInteger(addr) || addr < 0 || addr % PAGE_SIZE !== 0) return -Errno.EINVAL;
  if (!Number.isInteger(npages) || npages < 0) return -Errno.EINVAL;
  const showPfn = options.showPfn ?? true;
  const out: bigint[] = [];
  yield* mm.mmapLock.downRead();
  for (let i = 0, va = addr; i < npages && va < TASK_SIZE; i++, va += PAGE_SIZE) {
    const vma = mm.vmas.find(va);
    if (vma === undefined) {
      out.push(0n); // pagemap_pte_hole
      continue;
    }
    out.push(entryOf(core, core.pt.pte(mm, va), showPfn, (vma.flags & Vm.PFNMAP) !== 0));
  }
  mm.mmapLock.upRead();
  return out;
}

/** A pagemap entry taken apart. */
export interface PagemapEntry {
  /** PM_PRESENT. */
  readonly present: boolean;
  /** PM_SWAP. */
  readonly swap: boolean;
  /** PM_FILE. */
  readonly file: boolean;
  /** PM_MMAP_EXCLUSIVE. */
  readonly exclusive: boolean;
  /** PM_SOFT_DIRTY. */
  readonly softDirty: boolean;
  /** The pfn of a present entry (0 when hidden or not present). */
  readonly pfn: number;
  /** The swap type of a swapped entry. */
  readonly swapType: number;
  /** The swap offset (the pfn for a pfn swap entry). */
  readonly swapOffset: number;
}

/**
 * Takes a pagemap entry apart (what a user of `/proc/self/pagemap` does with the bits).
 *
 * @see PM_PRESENT
 */
export function decodePagemap(entry: bigint): PagemapEntry {
  const frame = entry & PagemapBits.PFRAME_MASK;
  const present = (entry & PagemapBits.PRESENT) !== 0n;
  const swap = (entry & PagemapBits.SWAP) !== 0n;
  return {
    present,
    swap,
    file: (entry & PagemapBits.FILE) !== 0n,
    exclusive: (entry & PagemapBits.MMAP_EXCLUSIVE) !== 0n,
    softDirty: (entry & PagemapBits.SOFT_DIRTY) !== 0n,
    pfn: present ? Number(frame) : 0,
    swapType: swap ? Number(frame & 0x1fn) : 0,
    swapOffset: swap ? Number(frame >> BigInt(MAX_SWAPFILES_SHIFT)) : 0,
  };
}
