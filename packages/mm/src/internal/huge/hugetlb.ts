// hugetlb: a boot-time pool of 2 MiB folios, MAP_HUGETLB mappings that reserve from it at mmap
// time (-ENOMEM when it cannot), the hugetlb fault and copy-on-write, and what munmap, mremap
// and fork do with such mappings. Its own file: hugetlb shares only the PMD leaf with THP.
import { Errno, GFP_KERNEL } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { MMAP_BASE, PAGE_SIZE, PMD_SIZE, TASK_SIZE } from '../constants.js';
import type { MmCore } from '../core.js';
import type { FaultResult } from '../fault.js';
import type { MmStruct } from '../mm.js';
import { Frame } from '../physmem.js';
import { Pte, PTE_NONE, pteFlags, ptePfn, pteWithFlags } from '../pte.js';
import { Vm } from '../vma.js';
import type { Vma } from '../vma.js';
import {
  HPAGE_PMD_NR,
  HPAGE_PMD_ORDER,
  mkHugePmd,
  clearFrame,
  pmdLookup,
  setPmd,
  pmdAlloc,
  pmdIsLeaf,
} from './pmd.js';
import type { PmdSlot } from './pmd.js';
import { emitThp, installLeaf, VmHuge } from './thp.js';

/** `MAP_HUGETLB`: back the mapping with pages of the hugetlb pool. */
export const MAP_HUGETLB = 0x40000;

const USER_RW_DIRTY = Pte.USER | Pte.WRITE | Pte.DIRTY | Pte.ACCESSED | Pte.SOFT_DIRTY;

/**
 * The hugetlb pool of one memory model (`struct hstate` for 2 MiB pages): `size` folios taken
 * at boot (`hugepages=`), each holding one reference of the pool's own. A folio is free when
 * only that reference is left; `reserved` counts pages promised to mappings and not yet
 * faulted (`resv_huge_pages`). Reservations are kept per mm, anon_vma and 2 MiB index (the
 * `resv_map` of a private mapping, owned by the mm that made it: a forked child has none).
 *
 * @see struct hstate
 * @see hugetlb_reserve_pages
 */
export class HugetlbPool {
  /** Head frames of the pool's folios. */
  readonly folios: number[] = [];
  /** `resv_huge_pages`. */
  reserved = 0;
  /** Reserved, unfaulted 2 MiB indexes by anon_vma id. */
  readonly resvMap = new Map<string, Set<number>>();

  /**
   * @param core the memory model.
   * @param size folios wanted (`nr_hugepages`); fewer if memory has no more aligned runs.
   */
  constructor(
    private readonly core: MmCore,
    size: number,
  ) {
    for (let i = 0; i < size; i++) {
      const head = core.phys.allocLarge(HPAGE_PMD_ORDER, 'anon');
      if (head < 0) break;
      this.folios.push(head);
    }
  }

  /** `free_huge_pages`: folios nobody maps or references. */
  get free(): number {
    const phys = this.core.phys;
    let n = 0;
    for (const h of this.folios) if (phys.refcount[h] === 1) n++;
    return n;
  }

  /** `dequeue_hugetlb_folio`: a free folio, with a reference for the caller, or -1. */
  take(): number {
    const phys = this.core.phys;
    for (const h of this.folios) {
      if (phys.refcount[h] === 1) {
        phys.refcount[h]++;
        return h;
      }
    }
    return -1;
  }
}

/** The 2 MiB index of `va` in `vma` (the reservation key). */
function hugeIndex(vma: Vma, va: number): number {
  return Math.floor((vma.pgoff * PAGE_SIZE + (va - vma.start)) / PMD_SIZE);
}

/**
 * The MAP_HUGETLB part of `ksys_mmap_pgoff`, before the mapping is made: -EINVAL for a file
 * mapping (only anonymous hugetlb mappings are modelled; a non-hugetlbfs file is -EINVAL in
 * Linux too) or a shared one, and for MAP_FIXED at an address that is not 2 MiB aligned
 * (`prepare_hugepage_range`). Returns the length rounded up to 2 MiB, or the negated errno.
 */
export function hugetlbMmapCheck(
  addr: number,
  len: number,
  flags: number,
  fixed: boolean,
  anonymous: boolean,
): number {
  if (!anonymous || (flags & 0x03) !== 0x02) return -Errno.EINVAL;
  if (fixed && addr % PMD_SIZE !== 0) return -Errno.EINVAL;
  const r = len % PMD_SIZE;
  return r === 0 ? len : len + PMD_SIZE - r;
}

/**
 * `hugetlbfs_file_mmap` → `hugetlb_reserve_pages` for a new private mapping, with `mmap_lock`
 * held for write and the VMA not yet inserted: moves a non-fixed VMA to a 2 MiB-aligned free
 * range, marks it VM_HUGETLB, and reserves one pool folio per 2 MiB — -ENOMEM when the pool has
 * fewer free unreserved folios (always, with the default pool of 0). MAP_NORESERVE skips the
 * reservation (faults may then SIGBUS).
 */
export function hugetlbMmapPrepare(
  core: MmCore,
  vma: Vma,
  fixed: boolean,
  noreserve: boolean,
): number {
  const pool = core.hugetlb;
  const size = vma.end - vma.start;
  if (!fixed && vma.start % PMD_SIZE !== 0) {
    const s = vma.mm.vmas.findFree(size + PMD_SIZE, MMAP_BASE, TASK_SIZE);
    if (s < 0) return -Errno.ENOMEM;
    const aligned = s + ((PMD_SIZE - (s % PMD_SIZE)) % PMD_SIZE);
    vma.start = aligned;
    vma.end = aligned + size;
    vma.pgoff = aligned / PAGE_SIZE;
  }
  const pages = size / PMD_SIZE;
  if (!noreserve) {
    if (pool.free - pool.reserved < pages) return -Errno.ENOMEM;
    pool.reserved += pages;
  }
  vma.flags |= VmHuge.HUGETLB;
  const av = core.anonVmaPrepare(vma);
  if (!noreserve) {
    const key = `${vma.mm.id}:${av.id}`;
    let set = pool.resvMap.get(key);
    if (set === undefined) pool.resvMap.set(key, (set = new Set()));
    for (let i = 0; i < pages; i++) set.add(hugeIndex(vma, vma.start + i * PMD_SIZE));
  }
  return 0;
}

/** Drops the reservations of `[start, end)` of a hugetlb VMA that was never faulted (`hugetlb_vm_op_close`). */
export function hugetlbUnreserve(core: MmCore, vma: Vma, start: number, end: number): void {
  if ((vma.flags & VmHuge.HUGETLB) === 0 || vma.anonVma === null) return;
  const pool = core.hugetlb;
  const set = pool.resvMap.get(`${vma.mm.id}:${vma.anonVma.id}`);
  if (set === undefined) return;
  for (let va = start - (start % PMD_SIZE); va < end; va += PMD_SIZE) {
    if (set.delete(hugeIndex(vma, va))) pool.reserved--;
  }
}

/**
 * `hugetlb_vm_op_split`: a hugetlb VMA may only be split (by munmap or mprotect) at a 2 MiB
 * boundary. Returns -EINVAL when `[start, end)` cuts one, else 0.
 */
export function hugetlbSplitCheck(mm: MmStruct, start: number, end: number): number {
  for (const v of mm.vmas.intersecting(start, end)) {
    if ((v.flags & VmHuge.HUGETLB) === 0) continue;
    if ((start > v.start && start % PMD_SIZE !== 0) || (end < v.end && end % PMD_SIZE !== 0))
      return -Errno.EINVAL;
  }
  return 0;
}

/**
 * `hugetlb_fault` for a PMD-sized hugetlb page, `mmap_lock` held for read: an empty PMD takes a
 * folio from the pool (`hugetlb_no_page`: the reservation if there is one, else a free folio,
 * else SIGBUS), zeroes it and maps it — writable for a write fault in a writable mapping, else
 * read-only; a write to a read-only leaf copies the folio unless this mapping is its only user
 * (`hugetlb_wp`); otherwise the accessed/dirty bits are set.
 *
 * @see hugetlb_fault
 * @see hugetlb_no_page
 * @see hugetlb_wp
 */
export function* hugetlbFault(
  core: MmCore,
  mm: MmStruct,
  vma: Vma,
  addr: number,
  slot: PmdSlot,
  pmd: number,
  write: boolean,
): TaskGen<FaultResult> {
  const haddr = addr - (addr % PMD_SIZE);
  const phys = core.phys;
  const pool = core.hugetlb;
  const ptl = mm.pageTableLock;
  if (pmd === PTE_NONE) {
    const av = core.anonVmaPrepare(vma);
    const set = pool.resvMap.get(`${mm.id}:${av.id}`);
    const idx = hugeIndex(vma, haddr);
    const reserved = set?.has(idx) === true;
    if (!reserved && pool.free - pool.reserved <= 0) return 'sigbus';
    core.kernel.mightAlloc(GFP_KERNEL, 'alloc_hugetlb_folio');
    const head = pool.take();
    if (head < 0) return 'sigbus';
    for (let i = 0; i < HPAGE_PMD_NR; i++) {
      clearFrame(core, head + i);
      phys.mapping[head + i] = av.id;
      phys.index[head + i] = vma.pageIndex(haddr) + i;
    }
    yield* ptl.lock();
    if (slot.table[slot.index] !== PTE_NONE) {
      ptl.unlock();
      phys.put(head);
      return 'retry';
    }
    if (reserved) {
      set.delete(idx);
      pool.reserved--;
    }
    phys.mapcount[head] = 1;
    const f = write && (vma.flags & Vm.WRITE) !== 0 ? USER_RW_DIRTY : Pte.USER | Pte.ACCESSED;
    installLeaf(core, mm, slot, haddr, mkHugePmd(head, f), -1);
    ptl.unlock();
    emitThp(core, mm, haddr, 'hugetlb', head);
    return 'ok';
  }
  if (!pmdIsLeaf(pmd)) return 'sigbus';
  const f = pteFlags(pmd);
  if ((f & Pte.PRESENT) === 0) {
    yield* ptl.lock();
    const cur = slot.table[slot.index]!;
    if (cur === pmd)
      setPmd(
        core,
        mm,
        slot,
        haddr,
        pteWithFlags(cur, (f & ~Pte.WRITE) | Pte.PRESENT | Pte.ACCESSED),
      );
    ptl.unlock();
    return 'retry';
  }
  const head = ptePfn(pmd);
  if (write && (f & Pte.WRITE) === 0) {
    if (phys.mapcount[head] === 1 && phys.refcount[head] === 2) {
      yield* ptl.lock();
      if (slot.table[slot.index] === pmd)
        setPmd(core, mm, slot, haddr, pteWithFlags(pmd, f | USER_RW_DIRTY));
      ptl.unlock();
      return 'ok';
    }
    // hugetlb_wp: copy into a new folio (no reservation: a free one or SIGBUS).
    if (pool.free - pool.reserved <= 0) return 'sigbus';
    const fresh = pool.take();
    if (fresh < 0) return 'sigbus';
    for (let i = 0; i < HPAGE_PMD_NR; i++) {
      phys.copy(head + i, fresh + i);
      phys.mapping[fresh + i] = phys.mapping[head + i]!;
      phys.index[fresh + i] = phys.index[head + i]!;
    }
    yield* ptl.lock();
    if (slot.table[slot.index] !== pmd) {
      ptl.unlock();
      phys.put(fresh);
      return 'retry';
    }
    setPmd(core, mm, slot, haddr, PTE_NONE);
    yield* core.tlb.flushRange(mm, haddr, haddr + PMD_SIZE, false);
    phys.mapcount[fresh] = 1;
    setPmd(core, mm, slot, haddr, mkHugePmd(fresh, USER_RW_DIRTY));
    phys.mapcount[head]!--;
    ptl.unlock();
    phys.put(head);
    return 'ok';
  }
  yield* ptl.lock();
  if (slot.table[slot.index] === pmd) {
    const want = f | Pte.ACCESSED | (write ? Pte.DIRTY | Pte.SOFT_DIRTY : 0);
    if (want !== f) setPmd(core, mm, slot, haddr, pteWithFlags(pmd, want));
  }
  ptl.unlock();
  return 'ok';
}

/**
 * `copy_hugetlb_page_range` for a private mapping at fork: each leaf of the parent is
 * write-protected and shared with the child (mapcount and reference taken), so the first write
 * on either side copies (`hugetlb_wp`). Runs inside fork's PROTECTION_PAGE window; the parent's
 * flush is fork's. Returns 0 or -ENOMEM.
 *
 * @see copy_hugetlb_page_range
 */
export function* copyHugetlbRange(
  core: MmCore,
  parent: MmStruct,
  child: MmStruct,
  src: Vma,
): TaskGen<number> {
  const phys = core.phys;
  for (let haddr = src.start; haddr < src.end; haddr += PMD_SIZE) {
    const ps = pmdLookup(core, parent, haddr);
    if (ps === null) continue;
    const pmd = ps.table[ps.index]!;
    if (!pmdIsLeaf(pmd)) continue;
    const cs = yield* pmdAlloc(core, child, haddr);
    if (cs === null) return -Errno.ENOMEM;
    yield* parent.pageTableLock.lock();
    const cur = ps.table[ps.index]!;
    if (pmdIsLeaf(cur)) {
      const wp = cur - (pteFlags(cur) & Pte.WRITE);
      if (wp !== cur) setPmd(core, parent, ps, haddr, wp);
      const head = ptePfn(cur);
      phys.get(head);
      phys.mapcount[head]!++;
      installLeaf(core, child, cs, haddr, wp, -1);
    }
    parent.pageTableLock.unlock();
  }
  return 0;
}

/** True if `pfn` belongs to the hugetlb pool (its frames are never on the LRU). */
export function isHugetlbFolio(core: MmCore, pfn: number): boolean {
  return (
    core.hugetlb.folios.includes(core.phys.folioOf(pfn)) &&
    (core.phys.flags[pfn]! & Frame.FREE) === 0
  );
}
