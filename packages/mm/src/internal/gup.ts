import { Errno, KernelBug } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { PAGE_SIZE, PMD_SIZE } from './constants.js';
import type { MmCore } from './core.js';
import { handleMmFault } from './fault.js';
import type { MmStruct } from './mm.js';
import { Frame, PhysMem } from './physmem.js';
import { Pte, PTE_NONE, pteFlags, pteIsProtNone, ptePfn, ptePresent } from './pte.js';
import { hugeLeafAt, isHugeZero } from './huge/thp.js';
import { mmgetNotZero, mmput } from './unmap.js';
import { Vm } from './vma.js';
import type { Vma } from './vma.js';
import { gupLongtermLocked } from './device/gup-longterm.js';

/**
 * `FOLL_*` flags of the get_user_pages family, with the values of `include/linux/mm.h` from
 * v5.16 to v6.1 (v6.2 renumbered them as an enum; the meaning is unchanged). Callers pass
 * WRITE, FORCE, NOFAULT, ANON and LONGTERM; GET, TOUCH, REMOTE and PIN are set by the entry
 * points themselves, and passing them is rejected as the kernel's `is_valid_gup_args` does.
 *
 * @see FOLL_WRITE
 */
export const Foll = {
  /** `FOLL_WRITE`: the pages will be written: break COW, require a writable PTE. */
  WRITE: 0x01,
  /** `FOLL_TOUCH` (internal): mark the page accessed, and dirty for a write. */
  TOUCH: 0x02,
  /** `FOLL_GET` (internal): take a plain reference on each page (`get_user_pages`). */
  GET: 0x04,
  /** `FOLL_FORCE`: ptrace-style access: read a VMA without VM_READ, write a private VMA without VM_WRITE (via COW). */
  FORCE: 0x10,
  /** `FOLL_NOFAULT`: never fault; a page not already mapped ends the walk with -EFAULT. */
  NOFAULT: 0x80,
  /** `FOLL_REMOTE` (internal): working on another process's mm (faults are `FAULT_FLAG_REMOTE`). */
  REMOTE: 0x2000,
  /** `FOLL_ANON`: only anonymous VMAs (-EFAULT on a file mapping). */
  ANON: 0x8000,
  /** `FOLL_LONGTERM`: the pin is held indefinitely (RDMA MRs, VFIO); only with FOLL_PIN. */
  LONGTERM: 0x10000,
  /** `FOLL_PIN` (internal): a DMA pin (`pin_user_pages`), released with `unpin_user_page`. */
  PIN: 0x40000,
} as const;

/** Flags only the GUP entry points may set (`INTERNAL_GUP_FLAGS`, reduced to the ones modelled). */
const INTERNAL = Foll.TOUCH | Foll.REMOTE | Foll.PIN;

/**
 * `is_valid_gup_args`: rejects internal flags from callers, FOLL_GET with FOLL_PIN, and
 * FOLL_LONGTERM without FOLL_PIN, with a WARN (reported as `gup-bad-args`). Returns the flags
 * to use, or -1.
 */
function validGupArgs(core: MmCore, what: string, flags: number, toSet: number): number {
  const bad =
    (flags & INTERNAL) !== 0
      ? 'internal FOLL_ flags passed by the caller'
      : (flags & Foll.GET) !== 0 && (toSet & Foll.PIN) !== 0
        ? 'FOLL_GET and FOLL_PIN together'
        : (flags & Foll.LONGTERM) !== 0 && (toSet & Foll.PIN) === 0
          ? 'FOLL_LONGTERM without FOLL_PIN'
          : null;
  if (bad !== null) {
    core.kernel.report('gup-bad-args', `${what}: ${bad} (gup_flags 0x${flags.toString(16)})`);
    return -1;
  }
  return flags | toSet;
}

/**
 * `mmap_assert_locked`: the caller must hold `mm->mmap_lock` (read or write). A missing lock is
 * a lockdep assertion in the kernel (a WARN), reported here as `mmap-lock-not-held`.
 *
 * Context: any task; reads the lock's holders only.
 *
 * @see mmap_assert_locked
 */
export function mmapAssertLocked(core: MmCore, mm: MmStruct, what: string): void {
  if (!mm.mmapLock.heldByCurrent('any')) {
    core.kernel.report(
      'mmap-lock-not-held',
      `${what} on ${mm.toString()} without mmap_lock held by the caller`,
    );
  }
}

/**
 * `check_vma_flags`: may GUP touch `vma` with `flags`? VM_IO/VM_PFNMAP (no struct pages) and
 * FOLL_ANON on a file VMA give -EFAULT; a write needs VM_WRITE, or FOLL_FORCE on a private
 * (COW) mapping; a read needs VM_READ, or FOLL_FORCE with VM_MAYREAD.
 */
function checkVmaFlags(vma: Vma, flags: number): number {
  const vf = vma.flags;
  if ((vf & (Vm.IO | Vm.PFNMAP)) !== 0) return -Errno.EFAULT;
  if ((flags & Foll.ANON) !== 0 && !vma.anonymous) return -Errno.EFAULT;
  if ((flags & Foll.WRITE) !== 0) {
    if ((vf & Vm.WRITE) === 0) {
      if ((flags & Foll.FORCE) === 0) return -Errno.EFAULT;
      if (!vma.cow) return -Errno.EFAULT;
    }
  } else if ((vf & Vm.READ) === 0) {
    if ((flags & Foll.FORCE) === 0) return -Errno.EFAULT;
    if ((vf & Vm.MAYREAD) === 0) return -Errno.EFAULT;
  }
  return 0;
}

/**
 * `can_follow_write_pte`: a write may use this PTE if it is writable, or — for FOLL_FORCE on a
 * private mapping without VM_WRITE — if it maps an anonymous page this mapping owns exclusively
 * (the COW already happened). Exclusivity (`PageAnonExclusive`) is approximated by "anonymous
 * and mapped once".
 */
function canFollowWritePte(
  core: MmCore,
  pte: number,
  pfn: number,
  vma: Vma,
  flags: number,
): boolean {
  if (ptePresent(pte) && (pteFlags(pte) & Pte.WRITE) !== 0) return true;
  if ((flags & Foll.FORCE) === 0) return false;
  const vf = vma.flags;
  if ((vf & Vm.SHARED) !== 0 || (vf & Vm.MAYWRITE) === 0 || (vf & Vm.WRITE) !== 0) return false;
  if (pfn === PhysMem.ZERO_PFN) return false;
  const phys = core.phys;
  return (phys.flags[pfn]! & Frame.ANON) !== 0 && phys.mapcount[pfn] === 1;
}

/**
 * `follow_huge_pmd`: the page of `addr` in a PMD leaf, with the reference (FOLL_GET) or pin
 * (FOLL_PIN) taken on its folio; -1 when the caller must fault (no leaf, not present, not
 * writable for a write, or the huge zero page for a pin or a write).
 */
function followHugePmd(core: MmCore, mm: MmStruct, addr: number, flags: number): number {
  const pmd = hugeLeafAt(core, mm, addr);
  if (pmd === PTE_NONE || !ptePresent(pmd)) return -1;
  const write = (flags & Foll.WRITE) !== 0;
  if (write && (pteFlags(pmd) & Pte.WRITE) === 0) return -1;
  const head = ptePfn(pmd);
  if (isHugeZero(core, head))
    return (flags & (Foll.PIN | Foll.WRITE)) !== 0 ? -1 : PhysMem.ZERO_PFN;
  const pfn = head + Math.floor((addr % PMD_SIZE) / PAGE_SIZE);
  const phys = core.phys;
  if ((flags & (Foll.PIN | Foll.GET)) !== 0) phys.get(pfn);
  if ((flags & Foll.PIN) !== 0) phys.pincount[pfn]!++;
  if ((flags & Foll.TOUCH) !== 0) phys.flags[head]! |= Frame.REFERENCED | (write ? Frame.DIRTY : 0);
  return pfn;
}

/**
 * `follow_page_mask` for a 4 KiB PTE: the frame `addr` maps if the access `flags` asks for is
 * allowed, with the reference (FOLL_GET) or pin (FOLL_PIN) taken and the page touched; -1 when
 * the caller must fault (`no_page_table`, not present, not writable for a write).
 */
function followPage(core: MmCore, mm: MmStruct, vma: Vma, addr: number, flags: number): number {
  const slot = core.pt.lookup(mm, addr);
  if (slot === null) return followHugePmd(core, mm, addr, flags);
  const pte = slot.table[slot.index]!;
  if (!ptePresent(pte)) {
    // A PROT_NONE entry: fault it back if the VMA allows access again; FOLL_FORCE on an
    // inaccessible VMA follows it (gup_can_follow_protnone).
    if (!pteIsProtNone(pte) || (flags & Foll.FORCE) === 0) return -1;
    if ((vma.flags & (Vm.READ | Vm.WRITE | Vm.EXEC)) !== 0) return -1;
  }
  const pfn = ptePfn(pte);
  if ((flags & Foll.WRITE) !== 0 && !canFollowWritePte(core, pte, pfn, vma, flags)) return -1;
  if (pfn === PhysMem.ZERO_PFN) return pfn; // try_grab_folio: the zero page is never counted
  const phys = core.phys;
  if ((flags & Foll.PIN) !== 0) {
    phys.get(pfn);
    phys.pincount[pfn]!++;
  } else if ((flags & Foll.GET) !== 0) {
    phys.get(pfn);
  }
  if ((flags & Foll.TOUCH) !== 0) {
    // set_page_dirty for a write through a clean PTE; mark_page_accessed.
    let f = phys.flags[pfn]! | Frame.REFERENCED;
    if ((flags & Foll.WRITE) !== 0 && (pteFlags(pte) & Pte.DIRTY) === 0) f |= Frame.DIRTY;
    phys.flags[pfn] = f;
  }
  return pfn;
}

/**
 * `__get_user_pages`: for each page of `[start, start + nrPages pages)`, find the VMA (checking
 * it once per VMA), follow the PTE, and fault (`handle_mm_fault` with FAULT_FLAG_REMOTE) and
 * retry when the page is missing or not writable enough. Returns the pages done, or the error
 * if none was.
 */
function* getUserPagesCore(
  core: MmCore,
  mm: MmStruct,
  start: number,
  nrPages: number,
  flags: number,
  pages: number[] | null,
): TaskGen<number> {
  if (nrPages === 0) return 0;
  const sched = core.kernel.scheduler;
  let addr = start - (start % PAGE_SIZE);
  let vma: Vma | undefined;
  let done = 0;
  let ret = 0;
  const write = (flags & Foll.WRITE) !== 0;
  outer: while (done < nrPages) {
    if (vma === undefined || addr >= vma.end) {
      vma = mm.vmas.find(addr);
      if (vma === undefined) {
        ret = -Errno.EFAULT;
        break;
      }
      ret = checkVmaFlags(vma, flags);
      if (ret !== 0) break;
    }
    for (;;) {
      yield* sched.preempt(); // cond_resched()
      const pfn = followPage(core, mm, vma, addr, flags);
      if (pfn >= 0) {
        if (pages !== null) pages[done] = pfn;
        break;
      }
      // faultin_page
      if ((flags & Foll.NOFAULT) !== 0) {
        ret = -Errno.EFAULT;
        break outer;
      }
      const r = yield* handleMmFault(core, mm, vma, addr, { write, remote: true });
      if (r === 'oom') {
        ret = -Errno.ENOMEM;
        break outer;
      }
      if (r === 'sigbus' || r === 'sigsegv') {
        ret = -Errno.EFAULT;
        break outer;
      }
    }
    done++;
    addr += PAGE_SIZE;
  }
  return done > 0 ? done : ret;
}

function badCount(n: number): boolean {
  return !Number.isInteger(n) || n < 0;
}

/**
 * `get_user_pages_remote(mm, start, nrPages, gupFlags, pages, NULL)`: takes a reference
 * (FOLL_GET) on each page of `[start, start + nrPages * PAGE_SIZE)` of `mm`, faulting pages in
 * as needed, and stores the frames in `pages[0 ..]` (pass `null` to only fault them in, taking
 * no reference). `start` is rounded down to its page. Release each page with {@link putPage}.
 *
 * Returns the number of pages done — fewer than asked when the walk stopped early — or, when it
 * stopped at the first page, a negated errno: -EFAULT (no VMA, VM_IO/VM_PFNMAP, a write to a VMA
 * without VM_WRITE and no FOLL_FORCE, a read of a VMA without VM_READ, FOLL_ANON on a file
 * mapping, FOLL_NOFAULT on a missing page, SIGBUS/SIGSEGV from the fault), -ENOMEM (the fault ran
 * out of memory), -EINVAL (internal or conflicting flags, FOLL_LONGTERM without FOLL_PIN — the
 * kernel before 6.3 accepted FOLL_LONGTERM here — or a negative count). 0 pages gives 0.
 *
 * Context: the caller holds `mm->mmap_lock` (read or write) and an `mm_users` reference; may
 * sleep (faults, and a `cond_resched` scheduling point per page).
 *
 * @see get_user_pages_remote
 * @see __get_user_pages
 */
export function* getUserPages(
  core: MmCore,
  mm: MmStruct,
  start: number,
  nrPages: number,
  gupFlags: number,
  pages: number[] | null,
): TaskGen<number> {
  const flags = validGupArgs(core, 'get_user_pages_remote', gupFlags, Foll.TOUCH | Foll.REMOTE);
  if (flags < 0 || badCount(nrPages)) return -Errno.EINVAL;
  core.kernel.mightSleep('get_user_pages_remote');
  mmapAssertLocked(core, mm, 'get_user_pages_remote');
  return yield* getUserPagesCore(
    core,
    mm,
    start,
    nrPages,
    pages === null ? flags : flags | Foll.GET,
    pages,
  );
}

/**
 * `pin_user_pages_remote(mm, start, nrPages, gupFlags, pages, NULL)`: pins (FOLL_PIN) each page
 * of the range for DMA: `pincount` and `refcount` go up by one per page, and the page stays
 * allocated — whatever the process does with the mapping (munmap, exit, COW) — until
 * {@link unpinUserPage}. The zero page is returned but never counted. Errors as
 * {@link getUserPages}, except that FOLL_LONGTERM is allowed.
 *
 * FOLL_LONGTERM: the kernel first migrates pages out of ZONE_MOVABLE and CMA so that a
 * long-term pin does not block memory hot-unplug or CMA allocations, and refuses fs-DAX
 * mappings. The model has no zones and no DAX; what it does model is the device-memory rule:
 * device-coherent pages are migrated to system memory and the range pinned again
 * (`check_and_migrate_movable_pages`), and device-private pages are faulted back through
 * `migrate_to_ram` before they could be pinned.
 *
 * Context: as {@link getUserPages}: mmap_lock held by the caller, may sleep.
 *
 * @see pin_user_pages_remote
 * @see __gup_longterm_locked
 */
export function* pinUserPages(
  core: MmCore,
  mm: MmStruct,
  start: number,
  nrPages: number,
  gupFlags: number,
  pages: number[],
): TaskGen<number> {
  const flags = validGupArgs(
    core,
    'pin_user_pages_remote',
    gupFlags,
    Foll.PIN | Foll.TOUCH | Foll.REMOTE,
  );
  if (flags < 0 || badCount(nrPages)) return -Errno.EINVAL;
  core.kernel.mightSleep('pin_user_pages_remote');
  mmapAssertLocked(core, mm, 'pin_user_pages_remote');
  if ((flags & Foll.LONGTERM) !== 0)
    return yield* gupLongtermLocked(
      core,
      () => getUserPagesCore(core, mm, start, nrPages, flags, pages),
      pages,
    );
  return yield* getUserPagesCore(core, mm, start, nrPages, flags, pages);
}

/**
 * `pin_user_pages_fast` as a thread of `mm` calls it (for example `ib_umem_get`): takes
 * `mmap_lock` for read itself, pins, and unlocks. The kernel first tries a lockless walk with
 * interrupts off; the model always takes the slow path, so it never pins without the lock.
 * Returns as {@link pinUserPages}.
 *
 * Context: the caller must not hold `mm->mmap_lock`; the calling thread keeps `mm` alive (it is
 * `current->mm`). May sleep.
 *
 * @see pin_user_pages_fast
 */
export function* pinUserPagesFast(
  core: MmCore,
  mm: MmStruct,
  start: number,
  nrPages: number,
  gupFlags: number,
  pages: number[],
): TaskGen<number> {
  const flags = validGupArgs(core, 'pin_user_pages_fast', gupFlags, Foll.PIN | Foll.TOUCH);
  if (flags < 0 || badCount(nrPages)) return -Errno.EINVAL;
  core.kernel.mightSleep('pin_user_pages_fast');
  yield* mm.mmapLock.downRead();
  const r =
    (flags & Foll.LONGTERM) !== 0
      ? yield* gupLongtermLocked(
          core,
          () => getUserPagesCore(core, mm, start, nrPages, flags, pages),
          pages,
        )
      : yield* getUserPagesCore(core, mm, start, nrPages, flags, pages);
  mm.mmapLock.upRead();
  return r;
}

/**
 * How a driver pins memory of another process it only holds an `mm_count` reference on (the
 * pattern of `process_vm_rw_core` and of drivers that keep the mm of their opener):
 * `mmget_not_zero` — -EFAULT if the process already exited — then `mmap_read_lock`,
 * {@link pinUserPages}, unlock, `mmput` (which tears the address space down if the process exited
 * meanwhile; the pins stay valid). Returns as {@link pinUserPages}.
 *
 * Context: the caller must not hold `mm->mmap_lock`. May sleep.
 *
 * @see mmget_not_zero
 * @see pin_user_pages_remote
 */
export function* pinUserPagesRemoteUnlocked(
  core: MmCore,
  mm: MmStruct,
  start: number,
  nrPages: number,
  gupFlags: number,
  pages: number[],
): TaskGen<number> {
  if (!mmgetNotZero(mm)) return -Errno.EFAULT;
  yield* mm.mmapLock.downRead();
  const r = yield* pinUserPages(core, mm, start, nrPages, gupFlags, pages);
  mm.mmapLock.upRead();
  yield* mmput(core, mm);
  return r;
}

/**
 * `unpin_user_page`: releases one FOLL_PIN pin: `pincount` and `refcount` go down; the last
 * reference frees the frame (a pinned page that was unmapped meanwhile is freed here). Unpinning
 * the zero page does nothing. Unpinning a page with no pin is a kernel BUG.
 *
 * Context: any; does not sleep.
 *
 * @see unpin_user_page
 * @see gup_put_folio
 */
export function unpinUserPage(core: MmCore, pfn: number): void {
  if (pfn === PhysMem.ZERO_PFN) return;
  const phys = core.phys;
  if (phys.pincount[pfn]! <= 0 || phys.isFree(pfn))
    throw new KernelBug(`unpin_user_page on frame ${pfn}, which has no FOLL_PIN pin`);
  phys.pincount[pfn]!--;
  phys.put(pfn);
}

/**
 * `unpin_user_pages`: {@link unpinUserPage} for each frame.
 *
 * Context: any; does not sleep.
 *
 * @see unpin_user_pages
 */
export function unpinUserPages(core: MmCore, pfns: readonly number[]): void {
  for (const pfn of pfns) unpinUserPage(core, pfn);
}

/**
 * `unpin_user_pages_dirty_lock`: when `makeDirty`, marks each page dirty first (the device wrote
 * to it) under its folio lock (`set_page_dirty_lock`), skipping pages already dirty; then
 * unpins. This is how a pinned RDMA MR is released.
 *
 * Context: may sleep (the folio lock).
 *
 * @see unpin_user_pages_dirty_lock
 */
export function* unpinUserPagesDirtyLock(
  core: MmCore,
  pfns: readonly number[],
  makeDirty: boolean,
): TaskGen<void> {
  const phys = core.phys;
  for (const pfn of pfns) {
    if (makeDirty && pfn !== PhysMem.ZERO_PFN && (phys.flags[pfn]! & Frame.DIRTY) === 0) {
      yield* phys.lockFolio(pfn);
      phys.flags[pfn]! |= Frame.DIRTY;
      phys.unlockFolio(pfn);
    }
    unpinUserPage(core, pfn);
  }
}

/**
 * `put_page`: drops a reference taken by {@link getUserPages} (FOLL_GET); the last one frees
 * the frame. The zero page is not counted.
 *
 * Context: any; does not sleep.
 *
 * @see put_page
 */
export function putPage(core: MmCore, pfn: number): void {
  core.phys.put(pfn);
}
