// Transparent huge pages for anonymous memory: the PMD-leaf fault (a 2 MiB folio, the huge
// zero page, the fallback to 4 KiB pages), the write-protect fault, the split of a PMD leaf into
// a PTE table, and the zap, mprotect and MADV_FREE of whole leaves. Its own file because it is
// the huge layer's core: the 4 KiB code calls in through the few hooks of `HugeHooks`.
import { GFP_KERNEL } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { PAGE_SIZE, PMD_SIZE } from '../constants.js';
import type { MmCore } from '../core.js';
import type { FaultResult } from '../fault.js';
import type { MmuGather } from '../gather.js';
import type { MmStruct } from '../mm.js';
import { NotifierRange } from '../notifier.js';
import { Frame, PhysMem } from '../physmem.js';
import { mkPte, Pte, PTE_NONE, pteFlags, ptePfn, pteWithFlags } from '../pte.js';
import { Vm, VM_ACCESS_FLAGS } from '../vma.js';
import type { Vma } from '../vma.js';
import {
  HPAGE_PMD_NR,
  HPAGE_PMD_ORDER,
  mkHugePmd,
  Pmd,
  pmdAlignDown,
  pmdAlloc,
  pmdIsLeaf,
  pmdLookup,
  pmdPopulate,
  setPmd,
} from './pmd.js';
import type { PmdSlot } from './pmd.js';

/** VMA flags of the huge layer, with the kernel's values. */
export const VmHuge = {
  /** `VM_HUGETLB`: a hugetlbfs mapping (MAP_HUGETLB). */
  HUGETLB: 0x00400000,
  /** `VM_HUGEPAGE`: MADV_HUGEPAGE was given. */
  HUGEPAGE: 0x20000000,
  /** `VM_NOHUGEPAGE`: MADV_NOHUGEPAGE was given. */
  NOHUGEPAGE: 0x40000000,
} as const;

/** The values of `/sys/kernel/mm/transparent_hugepage/enabled`. */
export const THP_MODES = ['never', 'madvise', 'always'] as const;

/** `/sys/kernel/mm/transparent_hugepage/enabled`: when anonymous faults may map PMD leaves. */
export type ThpMode = (typeof THP_MODES)[number];

const USER_RW_DIRTY = Pte.USER | Pte.WRITE | Pte.DIRTY | Pte.ACCESSED | Pte.SOFT_DIRTY;

declare module '@mmnsim/core' {
  interface SimEventMap {
    /**
     * A transparent-huge-page step: `'fault'` (a 2 MiB folio mapped), `'zero'` (the huge zero
     * page mapped), `'fallback'` (no huge frame: 4 KiB pages instead), `'split'`, `'zap'`,
     * `'collapse'` (MADV_COLLAPSE installed a leaf), `'reuse'` (a write fault made a leaf writable),
     * `'split-folio'` (a PTE-mapped large folio split into order-0 folios: `split_folio`).
     */
    'mm.thp': {
      /** The mm. */
      mm: number;
      /** 2 MiB-aligned address. */
      va: number;
      /** What happened. */
      op: string;
      /** The folio's head frame (-1 for fallback). */
      pfn: number;
    };
  }
}

/**
 * The huge-page state of one memory model: the THP mode, the huge zero folio, the page tables
 * deposited for PMD leaves (`pgtable_trans_huge_deposit`), and the number of live leaves (so
 * the 4 KiB paths skip the PMD-level walk while there are none).
 *
 * @see mm/huge_memory.c
 */
export class HugeState {
  /** The huge zero folio's head frame (`huge_zero_folio`), -1 until first used. */
  hugeZero = -1;
  /** Deposited PTE tables by PMD slot key (`pmd table pfn * 512 + index`). */
  readonly deposits = new Map<number, number>();
  /** Live PMD leaves (THP and hugetlb) over all mms. */
  leaves = 0;

  /**
   * @param mode `transparent_hugepage/enabled`.
   * @param useZeroPage `transparent_hugepage/use_zero_page`.
   */
  constructor(
    public mode: ThpMode,
    public useZeroPage: boolean,
  ) {}
}

function emitThp(core: MmCore, mm: MmStruct, va: number, op: string, pfn: number): void {
  const bus = core.kernel.bus;
  if (bus.wants('mm.thp')) bus.emit('mm.thp', { mm: mm.id, va: pmdAlignDown(va), op, pfn });
}

function slotKey(slot: PmdSlot): number {
  return slot.tablePfn * 512 + slot.index;
}

/** `pgtable_trans_huge_deposit`. */
function deposit(h: HugeState, slot: PmdSlot, table: number): void {
  h.deposits.set(slotKey(slot), table);
}

/** `pgtable_trans_huge_withdraw`: the table deposited for the leaf at `slot` (-1 if none). */
function withdraw(h: HugeState, slot: PmdSlot): number {
  const k = slotKey(slot);
  const t = h.deposits.get(k);
  if (t === undefined) return -1;
  h.deposits.delete(k);
  return t;
}

/**
 * `thp_vma_suitable_order` + `thp_vma_allowable_order` for a PMD leaf at `haddr`: a private
 * anonymous VMA covering the whole aligned 2 MiB, THP enabled for it (`always`, or `madvise`
 * with VM_HUGEPAGE), not VM_NOHUGEPAGE.
 */
export function thpSuitable(core: MmCore, vma: Vma, haddr: number, forced = false): boolean {
  if (haddr < vma.start || haddr + PMD_SIZE > vma.end) return false;
  return thpVmaAllowable(core, vma, forced);
}

/**
 * `thp_vma_allowable_order` for PMD order: private anonymous, not hugetlb or VM_PFNMAP, not
 * VM_NOHUGEPAGE, and (unless `forced`, as MADV_COLLAPSE is) THP enabled for it.
 */
export function thpVmaAllowable(core: MmCore, vma: Vma, forced = false): boolean {
  const h = core.huge;
  if (!vma.anonymous || (vma.flags & (Vm.SHARED | Vm.PFNMAP | VmHuge.HUGETLB)) !== 0) return false;
  if ((vma.flags & VmHuge.NOHUGEPAGE) !== 0) return false;
  if (forced) return true;
  if (h.mode === 'never') return false;
  return h.mode === 'always' || (vma.flags & VmHuge.HUGEPAGE) !== 0;
}

/** `mm_get_huge_zero_folio`: allocates the huge zero folio on first use; -1 if it cannot. */
function hugeZeroFolio(core: MmCore): number {
  const h = core.huge;
  if (h.hugeZero >= 0) return h.hugeZero;
  const head = core.phys.allocLarge(HPAGE_PMD_ORDER, 'kernel');
  if (head < 0) return -1;
  for (let i = 0; i < HPAGE_PMD_NR; i++) core.phys.flags[head + i]! |= Frame.ZERO;
  h.hugeZero = head;
  return head;
}

/** True if `pfn` is the huge zero folio's head (`is_huge_zero_pfn`). */
export function isHugeZero(core: MmCore, pfn: number): boolean {
  return pfn === core.huge.hugeZero && pfn >= 0;
}

/**
 * The PMD-level part of `__handle_mm_fault`, called before the 4 KiB path: returns the fault's
 * result when the PMD level handled it (a huge leaf was mapped, reused, touched, or split and
 * the access must be retried), or null to let the PTE path go on (the PMD now points at a PTE
 * table, or nothing here concerns huge pages). A hugetlb VMA is handed to `hugetlbFault`.
 *
 * Context: `mmap_lock` held for read; may sleep.
 *
 * @see create_huge_pmd
 * @see do_huge_pmd_anonymous_page
 * @see do_huge_pmd_wp_page
 * @see huge_pmd_set_accessed
 */
export function* thpFault(
  core: MmCore,
  mm: MmStruct,
  vma: Vma,
  addr: number,
  write: boolean,
  hugetlb: (slot: PmdSlot, pmd: number) => TaskGen<FaultResult>,
): TaskGen<FaultResult | null> {
  const haddr = pmdAlignDown(addr);
  const isHugetlb = (vma.flags & VmHuge.HUGETLB) !== 0;
  const eligible = isHugetlb || thpSuitable(core, vma, haddr);
  let slot = pmdLookup(core, mm, addr);
  if (!eligible && (slot === null || !pmdIsLeaf(slot.table[slot.index]!))) return null;
  if (slot === null) {
    slot = yield* pmdAlloc(core, mm, addr);
    if (slot === null) return 'oom';
  }
  const pmd = slot.table[slot.index]!;
  if (isHugetlb) return yield* hugetlb(slot, pmd);
  if (pmd === PTE_NONE) return yield* doHugePmdAnonymousPage(core, mm, vma, haddr, slot, write);
  if (!pmdIsLeaf(pmd)) return null;
  return yield* hugePmdFault(core, mm, vma, haddr, slot, pmd, write);
}

/** A fault on an existing leaf: PROT_NONE restore, write-protect fault, or accessed/dirty. */
function* hugePmdFault(
  core: MmCore,
  mm: MmStruct,
  vma: Vma,
  haddr: number,
  slot: PmdSlot,
  pmd: number,
  write: boolean,
): TaskGen<FaultResult> {
  const ptl = mm.pageTableLock;
  const f = pteFlags(pmd);
  if ((f & Pte.PRESENT) === 0) {
    // A split holds the PMD lock while the leaf is invalidated: wait for it. A leaf still
    // non-present under the lock is a PROT_NONE leaf (do_huge_pmd_numa_page's restore).
    yield* ptl.lock();
    const cur = slot.table[slot.index]!;
    if (cur === pmd && (vma.flags & VM_ACCESS_FLAGS) !== 0) {
      setPmd(
        core,
        mm,
        slot,
        haddr,
        pteWithFlags(cur, (f & ~Pte.WRITE) | Pte.PRESENT | Pte.ACCESSED),
      );
    }
    ptl.unlock();
    return (vma.flags & VM_ACCESS_FLAGS) === 0 ? 'sigsegv' : 'retry';
  }
  if (write && (f & Pte.WRITE) === 0)
    return yield* doHugePmdWpPage(core, mm, vma, haddr, slot, pmd);
  yield* ptl.lock();
  const cur = slot.table[slot.index]!;
  if (cur === pmd) {
    const want = f | Pte.ACCESSED | (write ? Pte.DIRTY | Pte.SOFT_DIRTY : 0);
    if (want !== f) setPmd(core, mm, slot, haddr, pteWithFlags(cur, want));
  }
  ptl.unlock();
  return cur === pmd ? 'ok' : 'retry';
}

/**
 * `do_huge_pmd_anonymous_page`: a read fault maps the huge zero folio read-only (when
 * `use_zero_page`); a write fault allocates a 2 MiB folio (zeroed) and a PTE table to deposit,
 * then under the PMD lock installs the leaf if the PMD is still none. Without a free aligned
 * 2 MiB run it falls back (`THP_FAULT_FALLBACK`): the PTE table is populated and the 4 KiB path
 * handles the fault.
 */
function* doHugePmdAnonymousPage(
  core: MmCore,
  mm: MmStruct,
  vma: Vma,
  haddr: number,
  slot: PmdSlot,
  write: boolean,
): TaskGen<FaultResult | null> {
  const h = core.huge;
  const phys = core.phys;
  const ptl = mm.pageTableLock;
  if (!write && h.useZeroPage) {
    core.kernel.mightAlloc(GFP_KERNEL, 'pte_alloc_one');
    const table = yield* core.allocFrame('pagetable');
    if (table < 0) return 'oom';
    const zero = hugeZeroFolio(core);
    if (zero >= 0) {
      yield* ptl.lock();
      if (slot.table[slot.index] !== PTE_NONE) {
        ptl.unlock();
        phys.put(table);
        return 'retry';
      }
      deposit(h, slot, table);
      setPmd(core, mm, slot, haddr, mkHugePmd(zero, Pte.USER | Pte.ACCESSED));
      h.leaves++;
      ptl.unlock();
      emitThp(core, mm, haddr, 'zero', zero);
      return 'ok';
    }
    phys.put(table);
  } else {
    const av = core.anonVmaPrepare(vma);
    core.kernel.mightAlloc(GFP_KERNEL, 'vma_alloc_anon_folio_pmd');
    const head = phys.allocLarge(HPAGE_PMD_ORDER, 'anon');
    if (head >= 0) {
      const table = yield* core.allocFrame('pagetable');
      if (table < 0) {
        phys.put(head);
        return 'oom';
      }
      const index = vma.pageIndex(haddr);
      for (let i = 0; i < HPAGE_PMD_NR; i++) {
        phys.mapping[head + i] = av.id;
        phys.index[head + i] = index + i;
      }
      yield* ptl.lock();
      if (slot.table[slot.index] !== PTE_NONE) {
        ptl.unlock();
        phys.put(table);
        phys.put(head);
        return 'retry';
      }
      deposit(h, slot, table);
      phys.mapcount[head] = 1; // the folio's entire mapcount: one PMD mapping
      const flags = (vma.flags & Vm.WRITE) !== 0 ? USER_RW_DIRTY : Pte.USER | Pte.ACCESSED;
      setPmd(core, mm, slot, haddr, mkHugePmd(head, flags));
      h.leaves++;
      ptl.unlock();
      emitThp(core, mm, haddr, 'fault', head);
      return 'ok';
    }
  }
  emitThp(core, mm, haddr, 'fallback', -1);
  // __pte_alloc: the PTE path must find a table (a concurrent huge fault may have won).
  core.kernel.mightAlloc(GFP_KERNEL, 'pte_alloc_one');
  const table = yield* core.allocFrame('pagetable');
  if (table < 0) return 'oom';
  yield* ptl.lock();
  const cur = slot.table[slot.index]!;
  if (cur === PTE_NONE) pmdPopulate(core, mm, slot, haddr, table);
  else phys.put(table);
  ptl.unlock();
  return cur === PTE_NONE || !pmdIsLeaf(cur) ? null : 'retry';
}

/**
 * `do_huge_pmd_wp_page`: a write to a read-only leaf. An anonymous folio mapped once with no
 * other reference is reused (the leaf made writable and dirty); the huge zero page or a folio
 * shared or referenced elsewhere is split (`__split_huge_pmd`) and the access retried, so the
 * 4 KiB COW path copies one page (`VM_FAULT_FALLBACK`).
 */
function* doHugePmdWpPage(
  core: MmCore,
  mm: MmStruct,
  vma: Vma,
  haddr: number,
  slot: PmdSlot,
  pmd: number,
): TaskGen<FaultResult> {
  const phys = core.phys;
  const head = ptePfn(pmd);
  if (!isHugeZero(core, head) && phys.mapcount[head] === 1 && phys.refcount[head] === 1) {
    const ptl = mm.pageTableLock;
    yield* ptl.lock();
    const cur = slot.table[slot.index]!;
    if (cur === pmd && (vma.flags & Vm.WRITE) !== 0) {
      setPmd(core, mm, slot, haddr, pteWithFlags(cur, pteFlags(cur) | USER_RW_DIRTY));
      emitThp(core, mm, haddr, 'reuse', head);
    }
    ptl.unlock();
    return cur === pmd ? 'ok' : 'retry';
  }
  yield* splitHugePmd(core, vma, haddr);
  return 'retry';
}

/**
 * `__split_huge_pmd` for an anonymous leaf (THP or the huge zero page): a `MMU_NOTIFY_CLEAR`
 * window over the leaf's 2 MiB; under the PMD lock, `pmdp_invalidate` (the leaf made
 * non-present, the 2 MiB flushed from the TLBs), the deposited table filled with 512 PTEs (the
 * folio's pages with the leaf's bits, or the zero page), and linked in its place
 * (`pmd_populate`). The folio stays one large folio, now mapped by PTEs: each page gets its own
 * mapcount and each PTE a reference (`folio_ref_add(folio, HPAGE_PMD_NR - 1)`). A leaf that is
 * already gone when the lock is taken is left alone. hugetlb leaves are never split.
 *
 * Context: `mmap_lock` held (either mode); may sleep (notifier callbacks).
 *
 * @see __split_huge_pmd
 * @see __split_huge_pmd_locked
 */
export function* splitHugePmd(core: MmCore, vma: Vma, addr: number): TaskGen<void> {
  const mm = vma.mm;
  const haddr = pmdAlignDown(addr);
  const range = new NotifierRange('CLEAR', mm, haddr, haddr + PMD_SIZE);
  yield* core.notifiers.invalidateRangeStart(range);
  const ptl = mm.pageTableLock;
  yield* ptl.lock();
  const slot = pmdLookup(core, mm, haddr);
  const pmd = slot === null ? PTE_NONE : slot.table[slot.index]!;
  if (slot !== null && pmdIsLeaf(pmd) && (vma.flags & VmHuge.HUGETLB) === 0) {
    yield* splitLocked(core, mm, slot, haddr, pmd);
  }
  ptl.unlock();
  yield* core.notifiers.invalidateRangeEnd(range);
}

function* splitLocked(
  core: MmCore,
  mm: MmStruct,
  slot: PmdSlot,
  haddr: number,
  pmd: number,
): TaskGen<void> {
  const h = core.huge;
  const phys = core.phys;
  const f = pteFlags(pmd);
  const present = (f & Pte.PRESENT) !== 0;
  // pmdp_invalidate: no CPU may keep a 2 MiB translation while the PTEs are written.
  if (present) {
    setPmd(core, mm, slot, haddr, pmd - Pte.PRESENT);
    yield* core.tlb.flushRange(mm, haddr, haddr + PMD_SIZE, false);
  }
  const table = withdraw(h, slot);
  const head = ptePfn(pmd);
  const zero = isHugeZero(core, head);
  pmdPopulate(core, mm, slot, haddr, table);
  h.leaves--;
  const ptes = phys.tables[table]!;
  const bus = core.kernel.bus;
  const log = bus.wants('mm.pte.set');
  let pf = f & ~Pmd.PSE;
  if (!present) pf = (pf & ~(Pte.PRESENT | Pte.WRITE)) | Pte.PROTNONE;
  for (let i = 0; i < HPAGE_PMD_NR; i++) {
    const pte = zero
      ? mkPte(PhysMem.ZERO_PFN, Pte.USER | Pte.SPECIAL | Pte.ACCESSED)
      : (head + i) * PAGE_SIZE + pf;
    ptes[i] = pte;
    if (log) bus.emit('mm.pte.set', { mm: mm.id, va: haddr + i * PAGE_SIZE, pte, old: PTE_NONE });
  }
  if (!zero) {
    for (let i = 1; i < HPAGE_PMD_NR; i++) phys.mapcount[head + i] = 1;
    phys.refcount[head]! += HPAGE_PMD_NR - 1;
  }
  emitThp(core, mm, haddr, 'split', head);
}

/**
 * Visits the huge leaves of `mm` in `[start, end)`: `fn(haddr, covered)` for each, `covered`
 * telling whether the whole 2 MiB lies in the range. Lockless read of the PMDs; the caller
 * re-checks under the lock.
 */
function* forEachLeaf(
  core: MmCore,
  mm: MmStruct,
  start: number,
  end: number,
  fn: (haddr: number, covered: boolean) => TaskGen<void>,
): TaskGen<void> {
  if (core.huge.leaves === 0) return;
  for (let haddr = pmdAlignDown(start); haddr < end; haddr += PMD_SIZE) {
    const slot = pmdLookup(core, mm, haddr);
    if (slot === null) {
      continue;
    }
    if (!pmdIsLeaf(slot.table[slot.index]!)) continue;
    yield* fn(haddr, haddr >= start && haddr + PMD_SIZE <= end);
  }
}

/**
 * The PMD level of `zap_pmd_range` for one VMA: a leaf wholly inside `[start, end)` (or any
 * hugetlb leaf it touches) is zapped (`zap_huge_pmd`: cleared under the PMD lock, its 2 MiB
 * added to the gather's flush range, the deposited table freed, the folio's mapping reference
 * handed to the gather); a leaf only partly inside is split first, so the PTE walk that follows
 * zaps its part. Runs inside the caller's notifier window.
 *
 * @see zap_huge_pmd
 * @see __unmap_hugepage_range
 */
export function* zapHugeRange(
  core: MmCore,
  tlb: MmuGather,
  vma: Vma,
  start: number,
  end: number,
): TaskGen<void> {
  const mm = tlb.mm;
  const hugetlb = (vma.flags & VmHuge.HUGETLB) !== 0;
  yield* forEachLeaf(core, mm, start, end, function* (haddr, covered) {
    if (!covered && !hugetlb) {
      yield* splitHugePmd(core, vma, haddr);
      return;
    }
    const ptl = mm.pageTableLock;
    yield* ptl.lock();
    const slot = pmdLookup(core, mm, haddr)!;
    const pmd = slot.table[slot.index]!;
    let full = false;
    if (pmdIsLeaf(pmd)) {
      setPmd(core, mm, slot, haddr, PTE_NONE);
      core.huge.leaves--;
      // tlb_remove_pmd_tlb_entry: the whole 2 MiB must be flushed before the folio is freed.
      tlb.removeTlbEntry(haddr);
      tlb.removeTlbEntry(haddr + PMD_SIZE - PAGE_SIZE);
      const table = withdraw(core.huge, slot);
      if (table >= 0) core.phys.put(table); // zap_deposited_table: never visible to walkers
      const head = ptePfn(pmd);
      if (!isHugeZero(core, head)) {
        core.phys.mapcount[head]!--;
        full = tlb.removePage(head);
      }
      emitThp(core, mm, haddr, 'zap', head);
    }
    ptl.unlock();
    if (full) yield* tlb.flushMmu();
  });
}

/**
 * Splits every THP leaf of `vma` in `[start, end)` (`split_huge_pmd` on each): used where the
 * model handles only PTEs (mremap's move, fork's copy, GUP's walk).
 */
export function* splitHugeRange(core: MmCore, vma: Vma, start: number, end: number): TaskGen<void> {
  if ((vma.flags & VmHuge.HUGETLB) !== 0) return;
  yield* forEachLeaf(core, vma.mm, start, end, function* (haddr) {
    yield* splitHugePmd(core, vma, haddr);
  });
}

/**
 * The PMD level of `change_pmd_range` (mprotect), inside the caller's PROTECTION_VMA window: a
 * leaf wholly inside the range gets the new protection in place (`change_huge_pmd`: write
 * removed, PROT_NONE made non-present, write given back only to an exclusive anonymous folio;
 * the 2 MiB flushed with the gather); a THP leaf partly inside is split first.
 *
 * @see change_huge_pmd
 */
export function* changeHugeRange(
  core: MmCore,
  tlb: MmuGather,
  vma: Vma,
  start: number,
  end: number,
): TaskGen<void> {
  const mm = vma.mm;
  const phys = core.phys;
  yield* forEachLeaf(core, mm, start, end, function* (haddr, covered) {
    if (!covered && (vma.flags & VmHuge.HUGETLB) === 0) {
      yield* splitHugePmd(core, vma, haddr);
      return;
    }
    const ptl = mm.pageTableLock;
    yield* ptl.lock();
    const slot = pmdLookup(core, mm, haddr)!;
    const pmd = slot.table[slot.index]!;
    if (pmdIsLeaf(pmd)) {
      const f = pteFlags(pmd);
      const head = ptePfn(pmd);
      let nf: number;
      if ((vma.flags & VM_ACCESS_FLAGS) === 0) nf = f & ~(Pte.PRESENT | Pte.WRITE);
      else {
        nf = (f & ~Pte.WRITE) | Pte.PRESENT;
        const exclusive =
          !isHugeZero(core, head) &&
          (vma.flags & Vm.WRITE) !== 0 &&
          phys.mapcount[head] === 1 &&
          phys.refcount[head] === ((vma.flags & VmHuge.HUGETLB) !== 0 ? 2 : 1);
        if (exclusive) nf |= Pte.WRITE;
      }
      if (nf !== f) {
        setPmd(core, mm, slot, haddr, pmd - f + nf);
        tlb.removeTlbEntry(haddr);
        tlb.removeTlbEntry(haddr + PMD_SIZE - PAGE_SIZE);
      }
    }
    ptl.unlock();
  });
}

/**
 * The PMD level of `madvise_free_pte_range` (`madvise_free_huge_pmd`), inside the caller's CLEAR
 * window: a leaf wholly inside the range whose folio is mapped once has its dirty and young
 * bits cleared (the 2 MiB flushed with the gather) and the folio marked lazily freeable; a leaf
 * partly inside is split and left to the PTE walk. The huge zero page is skipped.
 *
 * @see madvise_free_huge_pmd
 */
export function* madviseFreeHugeRange(
  core: MmCore,
  tlb: MmuGather,
  vma: Vma,
  start: number,
  end: number,
): TaskGen<void> {
  const mm = vma.mm;
  const phys = core.phys;
  yield* forEachLeaf(core, mm, start, end, function* (haddr, covered) {
    if (!covered) {
      yield* splitHugePmd(core, vma, haddr);
      return;
    }
    const ptl = mm.pageTableLock;
    yield* ptl.lock();
    const slot = pmdLookup(core, mm, haddr)!;
    const pmd = slot.table[slot.index]!;
    const head = ptePfn(pmd);
    if (pmdIsLeaf(pmd) && !isHugeZero(core, head) && phys.mapcount[head] === 1) {
      phys.flags[head]! &= ~Frame.DIRTY;
      const f = pteFlags(pmd);
      if ((f & (Pte.ACCESSED | Pte.DIRTY)) !== 0) {
        setPmd(core, mm, slot, haddr, pmd - (f & (Pte.ACCESSED | Pte.DIRTY)));
        tlb.removeTlbEntry(haddr);
        tlb.removeTlbEntry(haddr + PMD_SIZE - PAGE_SIZE);
      }
      phys.flags[head]! |= Frame.LAZYFREE;
    }
    ptl.unlock();
  });
}

/**
 * The CPU's walk through a PMD leaf (the hardware's 2 MiB translation): the frame of `va`'s
 * page, or -1 when the leaf does not allow the access; sets the leaf's accessed bit (and dirty
 * for a write) unless `speculative`. For TLB providers.
 */
export function hugeLeafTranslate(
  core: MmCore,
  mm: MmStruct,
  va: number,
  write: boolean,
  speculative = false,
): number {
  const slot = pmdLookup(core, mm, va);
  if (slot === null) return -1;
  const pmd = slot.table[slot.index]!;
  if (!pmdIsLeaf(pmd)) return -1;
  const f = pteFlags(pmd);
  if ((f & Pte.PRESENT) === 0 || (write && (f & Pte.WRITE) === 0)) return -1;
  if (!speculative) {
    const want = f | Pte.ACCESSED | (write ? Pte.DIRTY | Pte.SOFT_DIRTY : 0);
    if (want !== f) setPmd(core, mm, slot, va, pmd - f + want);
  }
  return ptePfn(pmd) + Math.floor((va % PMD_SIZE) / PAGE_SIZE);
}

/** `pmdp_get_lockless` for reports and tests: the leaf mapping `va`, or 0. */
export function hugeLeafAt(core: MmCore, mm: MmStruct, va: number): number {
  const slot = pmdLookup(core, mm, va);
  if (slot === null) return PTE_NONE;
  const pmd = slot.table[slot.index]!;
  return pmdIsLeaf(pmd) ? pmd : PTE_NONE;
}

/** Installs a hugetlb or collapsed leaf under the PMD lock (the lock is the caller's). */
export function installLeaf(
  core: MmCore,
  mm: MmStruct,
  slot: PmdSlot,
  haddr: number,
  pmd: number,
  table: number,
): void {
  if (table >= 0) deposit(core.huge, slot, table);
  setPmd(core, mm, slot, haddr, pmd);
  core.huge.leaves++;
}

export { emitThp };
