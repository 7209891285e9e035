import { GFP_KERNEL } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { PAGE_SIZE } from './constants.js';
import type { MmCore } from './core.js';
import type { SimFile } from './file.js';
import type { MmStruct } from './mm.js';
import { NotifierRange } from './notifier.js';
import type { PteSlot } from './pagetable.js';
import { Frame, PhysMem } from './physmem.js';
import {
  mkPte,
  Pte,
  PTE_NONE,
  pteFlags,
  pteIsMigration,
  pteIsProtNone,
  pteIsSwap,
  ptePfn,
  ptePresent,
  pteWithFlags,
} from './pte.js';
import { hugetlbFault } from './huge/hugetlb.js';
import { thpFault } from './huge/thp.js';
import { Vm } from './vma.js';
import type { Vma } from './vma.js';
import { pteIsDeviceEntry } from './device/entries.js';
import { doDeviceEntryFault } from './device/hooks.js';

/**
 * Result of a page fault (`vm_fault_t`, reduced): `'ok'` (the PTE now allows the access),
 * `'retry'` (something changed under us: retry the access), `'sigsegv'`, `'sigbus'`, `'oom'`.
 */
export type FaultResult = 'ok' | 'retry' | 'sigsegv' | 'sigbus' | 'oom';

/** Flags of a fault (`FAULT_FLAG_*`). */
export interface FaultFlags {
  /** `FAULT_FLAG_WRITE`. */
  readonly write: boolean;
  /** `FAULT_FLAG_REMOTE`: on behalf of GUP/HMM rather than the mm's own CPU access. */
  readonly remote?: boolean;
}

const USER_RW_DIRTY = Pte.USER | Pte.WRITE | Pte.DIRTY | Pte.ACCESSED | Pte.SOFT_DIRTY;

/**
 * `maybe_mkwrite`: PTE flags for a page just written, writable only if the VMA is (a FOLL_FORCE
 * write to a read-only private mapping installs its COW copy read-only).
 */
function maybeMkwrite(vma: Vma, f: number): number {
  return (vma.flags & Vm.WRITE) !== 0 ? f | Pte.WRITE : f & ~Pte.WRITE;
}

function emitFault(
  core: MmCore,
  mm: MmStruct,
  va: number,
  write: boolean,
  result: FaultResult,
): void {
  const bus = core.kernel.bus;
  if (bus.wants('mm.fault')) bus.emit('mm.fault', { mm: mm.id, va, write, result });
}

/**
 * `handle_mm_fault`: resolve a fault at `va` in `vma`, with `mm->mmap_lock` held for read by the
 * caller. Populates missing tables, then by the PTE's state: anonymous or file fault on an empty
 * PTE, swap-in, waiting for a migration to finish, copy-on-write or reuse on a write to a
 * read-only PTE, or just setting the accessed/dirty bits.
 *
 * Context: may sleep (allocation, folio lock, notifier calls).
 *
 * @see handle_mm_fault
 */
export function* handleMmFault(
  core: MmCore,
  mm: MmStruct,
  vma: Vma,
  va: number,
  flags: FaultFlags,
): TaskGen<FaultResult> {
  const addr = va - (va % PAGE_SIZE);
  // sanitize_fault_flags: a write fault needs VM_MAYWRITE, and without VM_WRITE (FOLL_FORCE)
  // only a private COW mapping may take it.
  if (
    flags.write &&
    ((vma.flags & Vm.MAYWRITE) === 0 || ((vma.flags & Vm.WRITE) === 0 && !vma.cow))
  ) {
    return done(core, mm, addr, flags, 'sigsegv');
  }
  const huge = yield* thpFault(core, mm, vma, addr, flags.write, (s, pmd) =>
    hugetlbFault(core, mm, vma, addr, s, pmd, flags.write),
  );
  if (huge !== null) return done(core, mm, addr, flags, huge);
  const slot = yield* core.pt.allocSlot(mm, addr);
  if (slot === null) return done(core, mm, addr, flags, 'oom');
  const orig = slot.table[slot.index]!;
  let r: FaultResult;
  if (orig === PTE_NONE) {
    r = vma.anonymous
      ? yield* doAnonymousPage(core, mm, vma, addr, slot, flags)
      : yield* doFileFault(core, mm, vma, addr, slot, flags);
  } else if (pteIsSwap(orig)) {
    r = yield* doSwapPage(core, mm, vma, addr, slot, orig);
  } else if (pteIsDeviceEntry(orig)) {
    // do_swap_page: device-private → migrate_to_ram; device-exclusive → restore the PTE.
    r = yield* doDeviceEntryFault(core, mm, vma, addr, slot, orig, flags);
  } else if (pteIsMigration(orig)) {
    // migration_entry_wait: sleep until the folio under migration is unlocked, then retry.
    yield* core.phys.waitUnlocked(ptePfn(orig));
    r = 'retry';
  } else if (pteIsProtNone(orig)) {
    r = yield* doProtNonePage(core, mm, vma, addr, slot, orig);
  } else if (flags.write && (pteFlags(orig) & Pte.WRITE) === 0) {
    r = yield* doWpPage(core, mm, vma, addr, slot, orig);
  } else {
    // The PTE already allows it: set the young/dirty bits (handle_pte_fault's tail).
    const ptl = mm.ptl(slot.tablePfn);
    yield* ptl.lock();
    const cur = slot.table[slot.index]!;
    if (cur === orig) {
      const want = pteFlags(cur) | Pte.ACCESSED | (flags.write ? Pte.DIRTY | Pte.SOFT_DIRTY : 0);
      if (want !== pteFlags(cur)) core.pt.set(mm, slot, addr, pteWithFlags(cur, want));
    }
    ptl.unlock();
    r = 'ok';
  }
  return done(core, mm, addr, flags, r);
}

function done(
  core: MmCore,
  mm: MmStruct,
  va: number,
  flags: FaultFlags,
  r: FaultResult,
): FaultResult {
  emitFault(core, mm, va, flags.write, r);
  return r;
}

/**
 * A fault on a PROT_NONE entry ({@link Pte.PROTNONE}) whose VMA now allows access (the
 * `do_numa_page` path of `handle_pte_fault`): make the entry present again, read-only, keeping
 * its page, mapcount and reference. A write then faults again and takes the write-protect path
 * (reuse or copy). A VMA that still allows no access is a SIGSEGV.
 */
function* doProtNonePage(
  core: MmCore,
  mm: MmStruct,
  vma: Vma,
  addr: number,
  slot: PteSlot,
  orig: number,
): TaskGen<FaultResult> {
  if ((vma.flags & (Vm.READ | Vm.WRITE | Vm.EXEC)) === 0) return 'sigsegv';
  const ptl = mm.ptl(slot.tablePfn);
  yield* ptl.lock();
  if (slot.table[slot.index] === orig) {
    const f = (pteFlags(orig) & ~(Pte.PROTNONE | Pte.WRITE)) | Pte.PRESENT | Pte.ACCESSED;
    core.pt.set(mm, slot, addr, pteWithFlags(orig, f));
  }
  ptl.unlock();
  return 'retry';
}

/** `do_anonymous_page`: the zero page for a read, a new zeroed page for a write. */
function* doAnonymousPage(
  core: MmCore,
  mm: MmStruct,
  vma: Vma,
  addr: number,
  slot: PteSlot,
  flags: FaultFlags,
): TaskGen<FaultResult> {
  const ptl = mm.ptl(slot.tablePfn);
  if (!flags.write) {
    yield* ptl.lock();
    if (slot.table[slot.index] === PTE_NONE)
      core.pt.set(mm, slot, addr, mkPte(PhysMem.ZERO_PFN, Pte.USER | Pte.SPECIAL | Pte.ACCESSED));
    ptl.unlock();
    return 'ok';
  }
  const av = core.anonVmaPrepare(vma);
  core.kernel.mightAlloc(GFP_KERNEL, 'alloc_anon_folio');
  const pfn = yield* core.allocFrame('anon');
  if (pfn < 0) return 'oom';
  const phys = core.phys;
  phys.mapping[pfn] = av.id;
  phys.index[pfn] = vma.pageIndex(addr);
  yield* ptl.lock();
  if (slot.table[slot.index] !== PTE_NONE) {
    ptl.unlock();
    phys.put(pfn);
    return 'retry';
  }
  phys.mapcount[pfn] = 1; // the allocation reference becomes the mapping's
  core.pt.set(
    mm,
    slot,
    addr,
    mkPte(pfn, (vma.flags & Vm.WRITE) !== 0 ? USER_RW_DIRTY : Pte.USER | Pte.ACCESSED),
  );
  ptl.unlock();
  core.lruAdd(pfn);
  return 'ok';
}

/**
 * Finds (or reads in) the page-cache page of `index` in `vma`'s file; returns its pfn (with no
 * extra reference), -1 beyond end of file, -2 when out of memory.
 */
export function* findOrReadFilePage(core: MmCore, vma: Vma, index: number): TaskGen<number> {
  const file = vma.file!;
  if (index >= file.sizePages) return -1;
  const pfn = yield* filemapReadPage(core, file, index);
  return pfn < 0 ? -2 : pfn;
}

/**
 * The page-cache page of `index` in `file`, read in from the backing store if missing
 * (`filemap_get_folio` / `__filemap_get_folio(FGP_CREAT)`): its pfn (the page cache holds the
 * reference), or -1 when out of memory. May sleep (the allocation).
 */
export function* filemapReadPage(core: MmCore, file: SimFile, index: number): TaskGen<number> {
  let pfn = file.pageCache.get(index);
  if (pfn !== undefined) return pfn;
  core.kernel.mightAlloc(GFP_KERNEL, 'filemap_alloc_folio');
  const fresh = yield* core.allocFrame('file');
  if (fresh < 0) return -1;
  pfn = file.pageCache.get(index);
  if (pfn !== undefined) {
    core.phys.put(fresh); // someone else read it in meanwhile
    return pfn;
  }
  const phys = core.phys;
  phys.mapping[fresh] = file.id;
  phys.index[fresh] = index;
  phys.restore(fresh, file.backing.get(index) ?? []);
  file.pageCache.set(index, fresh); // the allocation reference is the page cache's
  core.lruAdd(fresh);
  return fresh;
}

/** `do_fault`: read fault, COW fault (write to a private file mapping) or shared fault. */
function* doFileFault(
  core: MmCore,
  mm: MmStruct,
  vma: Vma,
  addr: number,
  slot: PteSlot,
  flags: FaultFlags,
): TaskGen<FaultResult> {
  const index = vma.pageIndex(addr);
  const filePfn = yield* findOrReadFilePage(core, vma, index);
  if (filePfn === -1) return 'sigbus';
  if (filePfn === -2) return 'oom';
  const phys = core.phys;
  const ptl = mm.ptl(slot.tablePfn);
  const shared = (vma.flags & Vm.SHARED) !== 0;
  if (flags.write && !shared) {
    // do_cow_fault: a private copy of the file page.
    const av = core.anonVmaPrepare(vma);
    core.kernel.mightAlloc(GFP_KERNEL, 'alloc_cow_folio');
    const pfn = yield* core.allocFrame('anon');
    if (pfn < 0) return 'oom';
    if (vma.file!.pageCache.get(index) !== filePfn) {
      // Reclaim or migration replaced the page-cache page while we allocated: look it up again.
      phys.put(pfn);
      return 'retry';
    }
    phys.copy(filePfn, pfn);
    phys.mapping[pfn] = av.id;
    phys.index[pfn] = index;
    yield* ptl.lock();
    if (slot.table[slot.index] !== PTE_NONE) {
      ptl.unlock();
      phys.put(pfn);
      return 'retry';
    }
    phys.mapcount[pfn] = 1;
    core.pt.set(mm, slot, addr, mkPte(pfn, maybeMkwrite(vma, USER_RW_DIRTY)));
    ptl.unlock();
    core.lruAdd(pfn);
    return 'ok';
  }
  yield* ptl.lock();
  if (slot.table[slot.index] !== PTE_NONE || vma.file!.pageCache.get(index) !== filePfn) {
    // Someone mapped it, or reclaim/migration dropped the page-cache page meanwhile.
    ptl.unlock();
    return 'retry';
  }
  phys.get(filePfn);
  phys.mapcount[filePfn]!++;
  let f = Pte.USER | Pte.ACCESSED;
  if (flags.write) {
    // do_shared_fault: map writable and dirty the page.
    f |= Pte.WRITE | Pte.DIRTY | Pte.SOFT_DIRTY;
    phys.flags[filePfn]! |= Frame.DIRTY;
  }
  core.pt.set(mm, slot, addr, mkPte(filePfn, f));
  ptl.unlock();
  return 'ok';
}

/** `do_swap_page`: read the page back from swap into a new frame. */
function* doSwapPage(
  core: MmCore,
  mm: MmStruct,
  vma: Vma,
  addr: number,
  slot: PteSlot,
  orig: number,
): TaskGen<FaultResult> {
  const swapSlot = ptePfn(orig);
  core.kernel.mightAlloc(GFP_KERNEL, 'swapin_readahead');
  const pfn = yield* core.allocFrame('anon');
  if (pfn < 0) return 'oom';
  const phys = core.phys;
  const ptl = mm.ptl(slot.tablePfn);
  yield* ptl.lock();
  if (slot.table[slot.index] !== orig) {
    ptl.unlock();
    phys.put(pfn);
    return 'retry';
  }
  const writeback = core.swap.writebackPfn(swapSlot);
  if (writeback >= 0) {
    // The slot's folio is still being swapped out (it is in the "swap cache", locked by
    // reclaim): wait for its folio lock and retry (folio_lock_or_retry in do_swap_page).
    ptl.unlock();
    phys.put(pfn);
    yield* phys.waitUnlocked(writeback);
    return 'retry';
  }
  const av = core.anonVmaPrepare(vma);
  phys.restore(pfn, core.swap.load(swapSlot));
  phys.mapping[pfn] = av.id;
  phys.index[pfn] = vma.pageIndex(addr);
  phys.mapcount[pfn] = 1;
  const exclusive = core.swap.users(swapSlot) === 1;
  core.swap.free(swapSlot);
  const writable = exclusive && (vma.flags & Vm.WRITE) !== 0;
  core.pt.set(mm, slot, addr, mkPte(pfn, Pte.USER | Pte.ACCESSED | (writable ? Pte.WRITE : 0)));
  ptl.unlock();
  core.lruAdd(pfn);
  const bus = core.kernel.bus;
  if (bus.wants('mm.swap.in')) bus.emit('mm.swap.in', { mm: mm.id, va: addr, slot: swapSlot, pfn });
  return 'ok';
}

/**
 * `do_wp_page`: a write to a present read-only PTE. Shared mappings are made writable and the
 * page dirtied; a private anonymous page nobody else maps or references is reused; anything else
 * (the zero page, a page shared after fork, a page-cache page, a GUP-referenced page) is copied.
 * In a private mapping without VM_WRITE (a FOLL_FORCE write) the reused or copied page stays
 * read-only (`maybe_mkwrite`).
 */
function* doWpPage(
  core: MmCore,
  mm: MmStruct,
  vma: Vma,
  addr: number,
  slot: PteSlot,
  orig: number,
): TaskGen<FaultResult> {
  const phys = core.phys;
  const old = ptePfn(orig);
  const ptl = mm.ptl(slot.tablePfn);
  const isZero = old === PhysMem.ZERO_PFN;
  if ((vma.flags & Vm.SHARED) !== 0 && !isZero) {
    yield* ptl.lock();
    if (slot.table[slot.index] === orig) {
      core.pt.set(
        mm,
        slot,
        addr,
        pteWithFlags(orig, pteFlags(orig) | Pte.WRITE | Pte.DIRTY | Pte.ACCESSED | Pte.SOFT_DIRTY),
      );
      phys.flags[old]! |= Frame.DIRTY;
    }
    ptl.unlock();
    return 'ok';
  }
  const anon = !isZero && (phys.flags[old]! & Frame.ANON) !== 0;
  if (anon && phys.mapcount[old] === 1 && phys.refcount[old] === 1) {
    // wp_page_reuse: we are the only user.
    yield* ptl.lock();
    if (slot.table[slot.index] === orig) {
      core.pt.set(
        mm,
        slot,
        addr,
        pteWithFlags(
          orig,
          maybeMkwrite(vma, pteFlags(orig) | Pte.DIRTY | Pte.ACCESSED | Pte.SOFT_DIRTY),
        ),
      );
    }
    ptl.unlock();
    return 'ok';
  }
  return yield* wpPageCopy(core, mm, vma, addr, slot, orig);
}

/**
 * `wp_page_copy` (notifier-core.md §7 row 8): allocate and fill the new page, open a CLEAR
 * window over the page, and under the PTE lock — if the PTE is unchanged — clear it and flush
 * (CPU and secondary TLBs) before installing the new PTE; close the window; only then drop the
 * old page's reference (which may free it).
 */
function* wpPageCopy(
  core: MmCore,
  mm: MmStruct,
  vma: Vma,
  addr: number,
  slot: PteSlot,
  orig: number,
): TaskGen<FaultResult> {
  const phys = core.phys;
  const old = ptePfn(orig);
  const av = core.anonVmaPrepare(vma);
  core.kernel.mightAlloc(GFP_KERNEL, 'alloc_cow_folio');
  const pfn = yield* core.allocFrame('anon');
  if (pfn < 0) return 'oom';
  if (old !== PhysMem.ZERO_PFN) phys.copy(old, pfn);
  phys.mapping[pfn] = av.id;
  phys.index[pfn] = vma.pageIndex(addr);
  const range = new NotifierRange('CLEAR', mm, addr, addr + PAGE_SIZE);
  yield* core.notifiers.invalidateRangeStart(range);
  const ptl = mm.ptl(slot.tablePfn);
  yield* ptl.lock();
  let replaced = false;
  if (slot.table[slot.index] === orig) {
    core.pt.set(mm, slot, addr, PTE_NONE); // ptep_clear_flush
    yield* core.tlb.flushRange(mm, addr, addr + PAGE_SIZE, false);
    phys.mapcount[pfn] = 1;
    core.pt.set(mm, slot, addr, mkPte(pfn, maybeMkwrite(vma, USER_RW_DIRTY)));
    if (old !== PhysMem.ZERO_PFN) phys.mapcount[old]!--;
    replaced = true;
  }
  ptl.unlock();
  yield* core.notifiers.invalidateRangeEnd(range);
  if (replaced) {
    core.lruAdd(pfn);
    if (old !== PhysMem.ZERO_PFN) phys.put(old);
    return 'ok';
  }
  phys.put(pfn);
  return 'retry';
}

/** A user-space access fault that could not be resolved: `si_code` of the SIGSEGV/SIGBUS. */
export interface SigInfo {
  /** `'SIGSEGV'` or `'SIGBUS'`. */
  readonly signal: 'SIGSEGV' | 'SIGBUS';
  /** `'SEGV_MAPERR'` (no mapping), `'SEGV_ACCERR'` (no permission) or `'BUS_ADRERR'`. */
  readonly code: 'SEGV_MAPERR' | 'SEGV_ACCERR' | 'BUS_ADRERR';
  /** The faulting address. */
  readonly addr: number;
}

/**
 * `do_user_addr_fault` (x86): the CPU faulted at `va`. Takes `mmap_lock` for read, finds the
 * VMA, checks the access against its flags (a write needs VM_WRITE; a read needs any of
 * READ/WRITE/EXEC, as on x86), and handles the fault. Returns null when the access can be
 * retried, or the signal the process would get.
 */
export function* doUserAddrFault(
  core: MmCore,
  mm: MmStruct,
  va: number,
  write: boolean,
): TaskGen<SigInfo | null> {
  if (mm.exited) return { signal: 'SIGSEGV', code: 'SEGV_MAPERR', addr: va };
  yield* mm.mmapLock.downRead();
  const vma = mm.vmas.find(va);
  let sig: SigInfo | null = null;
  if (vma === undefined) sig = { signal: 'SIGSEGV', code: 'SEGV_MAPERR', addr: va };
  else if (
    write ? (vma.flags & Vm.WRITE) === 0 : (vma.flags & (Vm.READ | Vm.WRITE | Vm.EXEC)) === 0
  ) {
    sig = { signal: 'SIGSEGV', code: 'SEGV_ACCERR', addr: va };
  } else {
    const r = yield* handleMmFault(core, mm, vma, va, { write });
    if (r === 'sigsegv') sig = { signal: 'SIGSEGV', code: 'SEGV_ACCERR', addr: va };
    else if (r === 'sigbus') sig = { signal: 'SIGBUS', code: 'BUS_ADRERR', addr: va };
    else if (r === 'oom') sig = { signal: 'SIGBUS', code: 'BUS_ADRERR', addr: va };
  }
  mm.mmapLock.upRead();
  if (sig !== null) {
    const bus = core.kernel.bus;
    if (bus.wants('mm.fault'))
      bus.emit('mm.fault', { mm: mm.id, va, write, result: sig.signal.toLowerCase() });
  }
  return sig;
}

/**
 * A CPU load or store of the 32-bit word at `va` by the running task, through the TLB provider:
 * translate, and on a translation fault handle the page fault and retry. Returns the value read
 * (or written), or the signal the access raised.
 */
export function* cpuAccess(
  core: MmCore,
  mm: MmStruct,
  va: number,
  write: boolean,
  value: number,
): TaskGen<number | SigInfo> {
  const word = Math.floor((va % PAGE_SIZE) / 4);
  for (let attempt = 0; ; attempt++) {
    const pfn = core.tlb.translate(mm, va, write);
    if (pfn >= 0) {
      if (write) {
        core.phys.write(pfn, word, value);
        return value >>> 0;
      }
      return core.phys.read(pfn, word);
    }
    if (attempt > 64) return { signal: 'SIGBUS', code: 'BUS_ADRERR', addr: va };
    const sig = yield* doUserAddrFault(core, mm, va, write);
    if (sig !== null) return sig;
  }
}

/** True if `pte` maps a page the CPU may write through. */
export function pteWritable(pte: number): boolean {
  return ptePresent(pte) && (pteFlags(pte) & Pte.WRITE) !== 0;
}
