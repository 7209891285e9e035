import { Errno } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { PAGE_SIZE, PTRS_PER_TABLE } from './constants.js';
import type { MmCore } from './core.js';
import { handleMmFault } from './fault.js';
import { mmapAssertLocked } from './gup.js';
import type { MmStruct } from './mm.js';
import { PhysMem } from './physmem.js';
import {
  Pte,
  PTE_NONE,
  pteFlags,
  pteIsMigration,
  pteIsProtNone,
  pteIsSwap,
  ptePfn,
  ptePresent,
} from './pte.js';
import { Vm } from './vma.js';
import { pteIsDeviceEntry } from './device/entries.js';
import { hmmOwnDevicePrivate } from './device/hooks.js';
import type { Vma } from './vma.js';
import { HPAGE_PMD_ORDER, pmdIsLeaf, pmdLeafPfnAt } from './huge/pmd.js';

/**
 * Bit position of the lowest flag bit of an HMM pfn entry (`HMM_PFN_ORDER_SHIFT`). The kernel
 * puts the flags in the top byte of an `unsigned long` (BITS_PER_LONG - 8); entries here are JS
 * numbers, exact up to 2^53, so the same layout is used with BITS_PER_LONG = 53: the pfn in bits
 * 0..44, the map order in bits 45..49, ERROR, WRITE, VALID in bits 50, 51, 52. Entries are
 * built and read with arithmetic (`pfn + HmmPfn.VALID`, {@link hmmPfnHas}), never with 32-bit
 * bitwise operators.
 *
 * @see HMM_PFN_ORDER_SHIFT
 */
export const HMM_PFN_ORDER_SHIFT = 45;

const UNIT = 2 ** HMM_PFN_ORDER_SHIFT;
/** Flag bits as seen in the top byte (`Math.floor(entry / UNIT)`). */
const HI_VALID = 0x80;
const HI_WRITE = 0x40;
const HI_ERROR = 0x20;

/**
 * `enum hmm_pfn_flags`: the flags of an `hmm_pfns[]` entry. On input (what the driver asks per
 * page, merged with the range's `defaultFlags` under `pfnFlagsMask`) REQ_FAULT asks for the page
 * to be faulted in and REQ_WRITE for it to be writable; on output an entry is `pfn | VALID
 * [| WRITE]`, `ERROR`, or 0 (nothing mapped, nothing asked).
 *
 * @see enum hmm_pfn_flags
 */
export const HmmPfn = {
  /** `HMM_PFN_VALID`: the CPU maps the page; the low bits are its pfn. */
  VALID: HI_VALID * UNIT,
  /** `HMM_PFN_WRITE`: the CPU maps it writable. */
  WRITE: HI_WRITE * UNIT,
  /** `HMM_PFN_ERROR`: the address cannot be mirrored (no VMA, VM_IO/VM_PFNMAP, no VM_READ). */
  ERROR: HI_ERROR * UNIT,
  /** `HMM_PFN_REQ_FAULT` (input, = VALID): fault the page in if the CPU does not map it. */
  REQ_FAULT: HI_VALID * UNIT,
  /** `HMM_PFN_REQ_WRITE` (input, = WRITE): fault it in writable. */
  REQ_WRITE: HI_WRITE * UNIT,
  /** `HMM_PFN_FLAGS`: every flag bit (the top byte). */
  FLAGS: 0xff * UNIT,
} as const;

/** The top byte of an entry or flag mask (its flags and order). */
function hi(v: number): number {
  return Math.floor(v / UNIT) & 0xff;
}

/**
 * True if entry `entry` has every bit of `flag` (an {@link HmmPfn} value).
 *
 * @see HMM_PFN_VALID
 */
export function hmmPfnHas(entry: number, flag: number): boolean {
  const f = hi(flag);
  return (hi(entry) & f) === f;
}

/**
 * The frame number of an entry (`hmm_pfn_to_page` gives its struct page).
 *
 * @see hmm_pfn_to_page
 */
export function hmmPfnToPfn(entry: number): number {
  return entry % UNIT;
}

/**
 * The map order of an entry (`hmm_pfn_to_map_order`): log2 of the pages the CPU maps with one
 * entry: 9 for a page mapped by a PMD leaf (2 MiB), 0 for a PTE.
 *
 * @see hmm_pfn_to_map_order
 */
export function hmmPfnToMapOrder(entry: number): number {
  return hi(entry) & 0x1f;
}

/**
 * `struct hmm_range`: what {@link hmmRangeFault} snapshots and where it writes the result.
 *
 * `notifierSeqChanged` stands for `mmu_interval_check_retry(range->notifier,
 * range->notifier_seq)`: the driver passes a closure over its interval notifier and the
 * sequence `mmu_interval_read_begin` returned, and `hmm_range_fault` gives up with -EBUSY as soon
 * as it reports true. `mm` is `range->notifier->mm`.
 *
 * @see struct hmm_range
 */
export interface HmmRange {
  /** The address space (the notifier's mm). */
  readonly mm: MmStruct;
  /** `mmu_interval_check_retry(notifier, notifier_seq)`: true once an invalidation collided. */
  readonly notifierSeqChanged: () => boolean;
  /** First address (page aligned). */
  readonly start: number;
  /** Exclusive end (page aligned, > start). */
  readonly end: number;
  /**
   * One entry per page of `[start, end)`: the request on input (REQ_FAULT, REQ_WRITE), the
   * snapshot on output.
   */
  readonly hmmPfns: number[];
  /** Flags requested for every page (`default_flags`). */
  readonly defaultFlags: number;
  /** Which per-page request bits count (`pfn_flags_mask`; 0 = only `defaultFlags`). */
  readonly pfnFlagsMask: number;
  /**
   * `dev_private_owner`: device-private pages of this owner (`pgmap->owner`) are reported as
   * `pfn | VALID [| WRITE]` rather than faulted back; those of any other owner are faulted back
   * to system memory (through `migrate_to_ram`) when a fault is requested.
   */
  readonly devPrivateOwner?: unknown;
}

const NEED_FAULT = 1;
const NEED_WRITE_FAULT = 2;
const NEED_ALL = NEED_FAULT | NEED_WRITE_FAULT;

/** Address span of one entry at each level: 0 = PTE table … 3 = PGD. */
const SPAN = [2 ** 12, 2 ** 21, 2 ** 30, 2 ** 39] as const;

/** `struct hmm_vma_walk` plus the walk's mm. */
interface Walk {
  readonly core: MmCore;
  readonly range: HmmRange;
  /** Where the next walk starts (`hmm_vma_walk->last`). */
  last: number;
}

/** `hmm_pte_need_fault`: what faulting one page with request `req` and CPU flags `cpu` needs. */
function pteNeedFault(range: HmmRange, req: number, cpu: number): number {
  const want = (hi(req) & hi(range.pfnFlagsMask)) | hi(range.defaultFlags);
  if ((want & HI_VALID) === 0) return 0;
  if ((want & HI_WRITE) !== 0 && (cpu & HI_WRITE) === 0) return NEED_ALL;
  if ((cpu & HI_VALID) === 0) return NEED_FAULT;
  return 0;
}

/** `hmm_range_need_fault`: the union of {@link pteNeedFault} over `[addr, end)`. */
function rangeNeedFault(range: HmmRange, addr: number, end: number, cpu: number): number {
  if (((hi(range.defaultFlags) | hi(range.pfnFlagsMask)) & HI_VALID) === 0) return 0;
  let need = 0;
  const pfns = range.hmmPfns;
  for (let i = (addr - range.start) / PAGE_SIZE, a = addr; a < end; a += PAGE_SIZE, i++) {
    need |= pteNeedFault(range, pfns[i]!, cpu);
    if (need === NEED_ALL) break;
  }
  return need;
}

/** `hmm_pfns_fill`: every entry of `[addr, end)` becomes `value`. */
function fill(range: HmmRange, addr: number, end: number, value: number): void {
  const pfns = range.hmmPfns;
  for (let i = (addr - range.start) / PAGE_SIZE, a = addr; a < end; a += PAGE_SIZE, i++)
    pfns[i] = value;
}

/**
 * `hmm_vma_fault`: fault in every page of `[addr, end)` (write faults when a write is needed,
 * -EPERM if the VMA is not writable), then -EBUSY so the walk restarts at `addr`; -EFAULT if a
 * fault fails.
 */
function* vmaFault(w: Walk, vma: Vma, addr: number, end: number, need: number): TaskGen<number> {
  w.last = addr;
  let write = false;
  if ((need & NEED_WRITE_FAULT) !== 0) {
    if ((vma.flags & Vm.WRITE) === 0) return -Errno.EPERM;
    write = true;
  }
  const mm = w.range.mm;
  for (let a = addr; a < end; a += PAGE_SIZE) {
    const r = yield* handleMmFault(w.core, mm, vma, a, { write, remote: true });
    if (r === 'oom' || r === 'sigbus' || r === 'sigsegv') return -Errno.EFAULT;
  }
  return -Errno.EBUSY;
}

/**
 * `hmm_vma_walk_hole`: no page table (or, with `vma` null, no VMA) for `[addr, end)`: fault it
 * if asked to (-EFAULT without a VMA), else report 0 (or ERROR without a VMA).
 */
function* hole(w: Walk, vma: Vma | null, addr: number, end: number): TaskGen<number> {
  const range = w.range;
  const need = rangeNeedFault(range, addr, end, 0);
  if (vma === null) {
    if (need !== 0) return -Errno.EFAULT;
    fill(range, addr, end, HmmPfn.ERROR);
    return 0;
  }
  if (need !== 0) return yield* vmaFault(w, vma, addr, end, need);
  fill(range, addr, end, 0);
  return 0;
}

/**
 * `hmm_vma_handle_pte`: one PTE at `addr`; `end` bounds the faults it may trigger (the end of its
 * PMD range). Present: `pfn | VALID [| WRITE]`, or a fault if the request needs more. Swap
 * entry: fault if asked. Migration entry: wait for the migration, then -EBUSY, if asked.
 */
function* handlePte(w: Walk, vma: Vma, addr: number, end: number, pte: number): TaskGen<number> {
  const range = w.range;
  const i = (addr - range.start) / PAGE_SIZE;
  const req = range.hmmPfns[i]!;
  if (pte === PTE_NONE) {
    const need = pteNeedFault(range, req, 0);
    if (need !== 0) return yield* vmaFault(w, vma, addr, end, need);
    range.hmmPfns[i] = 0;
    return 0;
  }
  if (pteIsProtNone(pte)) {
    // pte_present() but pte_protnone(): no CPU access, so no flags; fault if asked, else the
    // bare pfn (not VALID), as pte_to_hmm_pfn_flags gives.
    const need = pteNeedFault(range, req, 0);
    if (need !== 0) return yield* vmaFault(w, vma, addr, end, need);
    range.hmmPfns[i] = ptePfn(pte);
    return 0;
  }
  if (!ptePresent(pte)) {
    // Device-private pages of the caller's dev_private_owner are reported, not faulted back.
    const own = hmmOwnDevicePrivate(w.core, pte, range.devPrivateOwner);
    if (own >= 0) {
      range.hmmPfns[i] = ptePfn(pte) + HmmPfn.VALID + (own === 1 ? HmmPfn.WRITE : 0);
      return 0;
    }
    const need = pteNeedFault(range, req, 0);
    if (need === 0) {
      range.hmmPfns[i] = 0;
      return 0;
    }
    if (pteIsSwap(pte) || pteIsDeviceEntry(pte)) return yield* vmaFault(w, vma, addr, end, need);
    if (pteIsMigration(pte)) {
      w.last = addr;
      yield* w.core.phys.waitUnlocked(ptePfn(pte)); // migration_entry_wait
      return -Errno.EBUSY;
    }
    return -Errno.EFAULT;
  }
  const cpu = (pteFlags(pte) & Pte.WRITE) !== 0 ? HI_VALID | HI_WRITE : HI_VALID;
  const need = pteNeedFault(range, req, cpu);
  if (need !== 0) return yield* vmaFault(w, vma, addr, end, need);
  // vm_normal_page: the only special PTEs of the model map the zero page, reported as a page.
  const pfn = ptePfn(pte);
  range.hmmPfns[i] = pfn + ((cpu & HI_WRITE) !== 0 ? HmmPfn.VALID + HmmPfn.WRITE : HmmPfn.VALID);
  return 0;
}

/**
 * `hmm_vma_handle_pmd`: a PMD leaf (THP or hugetlb) covering `[addr, end)`. A present leaf
 * reports each page as `pfn | VALID [| WRITE]` with map order 9 (`HPAGE_PMD_ORDER`), or faults
 * if the request needs more; a non-present leaf (PROT_NONE, or a split in progress) faults if
 * asked, else reports 0.
 */
function* handlePmdLeaf(
  w: Walk,
  vma: Vma,
  addr: number,
  end: number,
  pmd: number,
): TaskGen<number> {
  const range = w.range;
  const f = pteFlags(pmd);
  const present = (f & Pte.PRESENT) !== 0;
  const cpu = !present ? 0 : (f & Pte.WRITE) !== 0 ? HI_VALID | HI_WRITE : HI_VALID;
  const need = rangeNeedFault(range, addr, end, cpu);
  if (need !== 0) return yield* vmaFault(w, vma, addr, end, need);
  if (!present) {
    fill(range, addr, end, 0);
    return 0;
  }
  const flags = (cpu & HI_WRITE) !== 0 ? HmmPfn.VALID + HmmPfn.WRITE : HmmPfn.VALID;
  const order = HPAGE_PMD_ORDER * UNIT;
  for (let a = addr, i = (addr - range.start) / PAGE_SIZE; a < end; a += PAGE_SIZE, i++)
    range.hmmPfns[i] = pmdLeafPfnAt(pmd, a) + flags + order;
  return 0;
}

/**
 * `walk_pgd_range` and below for `[start, end)` inside `vma`, table `pfn` at `level` whose entry
 * 0 maps `base`: missing entries are holes, a present PMD entry hands its PTE table to
 * {@link handlePte} one entry at a time (`hmm_vma_walk_pmd`).
 */
function* walkLevel(
  w: Walk,
  vma: Vma,
  pfn: number,
  level: number,
  start: number,
  end: number,
): TaskGen<number> {
  const table = w.core.phys.tables[pfn];
  if (table === undefined) return yield* hole(w, vma, start, end);
  const span = SPAN[level]!;
  for (let addr = start; addr < end;) {
    const boundary = addr - (addr % span) + span;
    const next = boundary < end ? boundary : end;
    const index = Math.floor(addr / span) % PTRS_PER_TABLE;
    const e = table[index]!;
    let r: number;
    if (level === 0) {
      r = yield* handlePte(w, vma, addr, end, e);
    } else if (level === 1 && pmdIsLeaf(e)) {
      r = yield* handlePmdLeaf(w, vma, addr, next, e);
    } else if (e === PTE_NONE) {
      r = yield* hole(w, vma, addr, next);
    } else {
      r = yield* walkLevel(w, vma, ptePfn(e), level - 1, addr, next);
    }
    if (r !== 0) return r;
    addr = next;
  }
  return 0;
}

/**
 * `hmm_vma_walk_test`: a VMA HMM cannot mirror (VM_IO, VM_PFNMAP, or no VM_READ — HMM assumes no
 * write without read): -EFAULT if a fault was requested in it, else ERROR entries and skip it
 * (1). 0 = walk it.
 */
function testWalk(w: Walk, vma: Vma, start: number, end: number): number {
  if ((vma.flags & (Vm.IO | Vm.PFNMAP)) === 0 && (vma.flags & Vm.READ) !== 0) return 0;
  if (rangeNeedFault(w.range, start, end, 0) !== 0) return -Errno.EFAULT;
  fill(w.range, start, end, HmmPfn.ERROR);
  return 1;
}

/** `walk_page_range(mm, start, end, &hmm_walk_ops, …)`: gaps between VMAs are holes without a VMA. */
function* walkPageRange(w: Walk, start: number, end: number): TaskGen<number> {
  const mm = w.range.mm;
  let addr = start;
  for (const vma of mm.vmas.intersecting(start, end)) {
    if (vma.start > addr) {
      const r = yield* hole(w, null, addr, vma.start);
      if (r !== 0) return r;
      addr = vma.start;
    }
    const next = vma.end < end ? vma.end : end;
    let r = testWalk(w, vma, addr, next);
    if (r === 0) r = yield* walkLevel(w, vma, mm.pgd, 3, addr, next);
    if (r < 0) return r;
    addr = next;
  }
  if (addr < end) return yield* hole(w, null, addr, end);
  return 0;
}

/**
 * `hmm_range_fault`: snapshots the CPU page table of `range.mm` over `[range.start, range.end)`
 * into `range.hmmPfns`, faulting pages in where the request asks for it (REQ_FAULT, REQ_WRITE,
 * per page under `pfnFlagsMask` and for all pages in `defaultFlags`). Entries take no page
 * reference: they are valid only until the next invalidation, which is why the driver must use
 * the interval notifier's read_begin/read_retry protocol around it.
 *
 * Per page: a present PTE gives `pfn | VALID [| WRITE]` (the zero page is VALID, never WRITE);
 * nothing mapped and nothing asked gives 0. Errors:
 * - no VMA: -EFAULT if a fault was requested for one of its pages, else ERROR entries;
 * - a VMA with VM_IO/VM_PFNMAP or without VM_READ: the same;
 * - a write fault needed in a VMA without VM_WRITE: -EPERM;
 * - a fault that fails (SIGBUS, SIGSEGV, OOM): -EFAULT;
 * - an invalidation collided (`range.notifierSeqChanged()`, checked before every walk): -EBUSY;
 * - `start >= end` (`walk_page_range`), or — checks of the model — an unaligned range or an
 *   `hmmPfns` array too short: -EINVAL.
 * After each fault (and after waiting for a migration entry) the walk restarts at the page that
 * needed it; entries before it are final, entries after it still hold their input.
 *
 * Context: the caller holds `mm->mmap_lock` for read (asserted) and an `mm_users` reference
 * (`mmget_not_zero`; reported as `hmm-no-mm-users` when none is left). May sleep.
 *
 * @see hmm_range_fault
 */
export function* hmmRangeFault(core: MmCore, range: HmmRange): TaskGen<number> {
  const mm = range.mm;
  mmapAssertLocked(core, mm, 'hmm_range_fault');
  if (mm.users <= 0) {
    core.kernel.report(
      'hmm-no-mm-users',
      `hmm_range_fault on ${mm.toString()} whose mm_users is 0 (missing mmget_not_zero)`,
    );
  }
  const { start, end } = range;
  if (!(start < end)) return -Errno.EINVAL;
  if (start % PAGE_SIZE !== 0 || end % PAGE_SIZE !== 0) return -Errno.EINVAL;
  if (range.hmmPfns.length < (end - start) / PAGE_SIZE) return -Errno.EINVAL;
  core.kernel.mightSleep('hmm_range_fault');
  const w: Walk = { core, range, last: start };
  for (;;) {
    if (range.notifierSeqChanged()) return -Errno.EBUSY;
    const r = yield* walkPageRange(w, w.last, end);
    if (r !== -Errno.EBUSY) return r;
  }
}

/**
 * True if `pfn` is the shared zero page (what a read fault of anonymous memory maps): an HMM
 * entry for it is VALID and never WRITE.
 *
 * @see is_zero_pfn
 */
export function isZeroPfn(pfn: number): boolean {
  return pfn === PhysMem.ZERO_PFN;
}
