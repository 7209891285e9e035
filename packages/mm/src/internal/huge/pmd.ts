// PMD leaf entries (2 MiB mappings) and the PMD-level walk: how a huge mapping sits in the
// page tables. Kept apart from pagetable.ts (the 4 KiB walk every operation uses) so the huge
// layer plugs in with small hooks; everything that writes a PMD leaf goes through setPmd, which
// records it as `mm.pmd.set` for the projection.
import type { TaskGen } from '@mmnsim/core';
import { GFP_KERNEL } from '@mmnsim/core';
import { PAGE_SIZE, PMD_SIZE, PTRS_PER_TABLE } from '../constants.js';
import type { MmCore } from '../core.js';
import type { MmStruct } from '../mm.js';
import { mkPte, Pte, PTE_NONE, ptePfn } from '../pte.js';

declare module '@mmnsim/core' {
  interface SimEventMap {
    /**
     * A PMD entry of an mm changed to or from a huge leaf (`set_pmd_at`, `pmdp_huge_clear_flush`,
     * `pmdp_invalidate`): `pmd` is the new value (0 when cleared), `va` the 2 MiB-aligned address.
     * Entries pointing at PTE tables are described by `mm.pt.alloc`/`mm.pt.unlink` instead.
     */
    'mm.pmd.set': {
      /** The mm. */
      mm: number;
      /** 2 MiB-aligned address the entry maps. */
      va: number;
      /** The new entry (0 = none). */
      pmd: number;
      /** The previous entry. */
      old: number;
    };
    /** A frame's content was zeroed (`clear_highpage`, as part of `folio_zero_user`). */
    'mm.frame.clear': {
      /** The frame. */
      pfn: number;
    };
  }
}

/**
 * PMD-level bits beyond the PTE ones ({@link Pte}): `_PAGE_PSE` (bit 7) marks a leaf that maps
 * 2 MiB. A present huge leaf has PRESENT|PSE; a leaf under `pmdp_invalidate` (a split in
 * progress) keeps PSE with PRESENT clear, so the CPU faults and the fault waits for the split.
 */
export const Pmd = {
  /** `_PAGE_PSE`: a huge leaf (`pmd_trans_huge` / `pmd_leaf`). */
  PSE: 0x080,
} as const;

/** `HPAGE_PMD_ORDER`: a PMD leaf maps 2^9 pages. */
export const HPAGE_PMD_ORDER = 9;
/** `HPAGE_PMD_NR`: pages in one PMD leaf (512). */
export const HPAGE_PMD_NR = 512;

/** Where one PMD entry lives: the PMD table's entries, its frame and the index. */
export interface PmdSlot {
  /** The PMD table's entries. */
  readonly table: Float64Array;
  /** The PMD table's frame. */
  readonly tablePfn: number;
  /** Index of the entry. */
  readonly index: number;
}

const TABLE_ENTRY = Pte.PRESENT | Pte.WRITE | Pte.USER;

/** True if the PMD value is a huge leaf (present or under invalidation). @see pmd_trans_huge */
export function pmdIsLeaf(pmd: number): boolean {
  return pmd !== PTE_NONE && ((pmd % PAGE_SIZE) & Pmd.PSE) !== 0;
}

/** True if the PMD value is a present huge leaf the CPU may use. @see pmd_present */
export function pmdIsPresentLeaf(pmd: number): boolean {
  const f = pmd % PAGE_SIZE;
  return pmd !== PTE_NONE && (f & Pmd.PSE) !== 0 && (f & Pte.PRESENT) !== 0;
}

/** Builds a present huge leaf for the folio whose head is `pfn`. @see mk_huge_pmd */
export function mkHugePmd(pfn: number, flags: number): number {
  return mkPte(pfn, flags | Pmd.PSE);
}

/** `addr & HPAGE_PMD_MASK`. */
export function pmdAlignDown(addr: number): number {
  return addr - (addr % PMD_SIZE);
}

function indexAt(va: number, shift: number): number {
  return Math.floor(va / 2 ** shift) % PTRS_PER_TABLE;
}

/** The PMD slot of `va`, or null if the PGD or PUD entry above it is missing. Lockless. */
export function pmdLookup(core: MmCore, mm: MmStruct, va: number): PmdSlot | null {
  const tables = core.phys.tables;
  const pgd = tables[mm.pgd];
  if (pgd === undefined) return null;
  const g = pgd[indexAt(va, 39)]!;
  if (g === PTE_NONE) return null;
  const pudPfn = ptePfn(g);
  const pud = tables[pudPfn];
  if (pud === undefined) return null;
  const u = pud[indexAt(va, 30)]!;
  if (u === PTE_NONE) return null;
  const pmdPfn = ptePfn(u);
  const table = tables[pmdPfn];
  if (table === undefined) return null;
  return { table, tablePfn: pmdPfn, index: indexAt(va, 21) };
}

/** The PMD entry of `va` (0 when there is none). */
export function pmdValue(core: MmCore, mm: MmStruct, va: number): number {
  const s = pmdLookup(core, mm, va);
  return s === null ? PTE_NONE : s.table[s.index]!;
}

/**
 * The PMD slot of `va`, allocating a missing PUD or PMD table (`__pud_alloc`, `__pmd_alloc`)
 * the way `PageTables.allocSlot` does: the page is allocated before `mm.pageTableLock` and
 * installed under it unless another task won. Returns null when memory is exhausted.
 */
export function* pmdAlloc(core: MmCore, mm: MmStruct, va: number): TaskGen<PmdSlot | null> {
  const tables = core.phys.tables;
  let pfn = mm.pgd;
  for (const shift of [39, 30]) {
    const t = tables[pfn]!;
    const i = indexAt(va, shift);
    if (t[i] === PTE_NONE) {
      core.kernel.mightAlloc(GFP_KERNEL, shift === 39 ? 'pud_alloc_one' : 'pmd_alloc_one');
      const fresh = yield* core.allocFrame('pagetable');
      if (fresh < 0) return null;
      yield* mm.pageTableLock.lock();
      if (t[i] === PTE_NONE) {
        t[i] = mkPte(fresh, TABLE_ENTRY);
        const bus = core.kernel.bus;
        if (bus.wants('mm.pt.alloc')) {
          const span = 2 ** shift;
          bus.emit('mm.pt.alloc', {
            mm: mm.id,
            pfn: fresh,
            level: shift === 39 ? 2 : 1,
            va: va - (va % span),
          });
        }
      } else core.phys.put(fresh);
      mm.pageTableLock.unlock();
    }
    pfn = ptePfn(t[i]!);
  }
  return { table: tables[pfn]!, tablePfn: pfn, index: indexAt(va, 21) };
}

/**
 * Writes a PMD entry that is or was a huge leaf (`set_pmd_at`), with the PMD lock
 * (`mm.pageTableLock` here) held, and records it as `mm.pmd.set`.
 */
export function setPmd(core: MmCore, mm: MmStruct, slot: PmdSlot, va: number, pmd: number): void {
  const old = slot.table[slot.index]!;
  slot.table[slot.index] = pmd;
  const bus = core.kernel.bus;
  if (bus.wants('mm.pmd.set'))
    bus.emit('mm.pmd.set', { mm: mm.id, va: pmdAlignDown(va), pmd, old });
}

/**
 * Links the PTE table in frame `tablePfn` under a PMD entry that is none or a leaf being split
 * (`pmd_populate`), recording the leaf's removal and the link (`mm.pmd.set`, `mm.pt.alloc`).
 */
export function pmdPopulate(
  core: MmCore,
  mm: MmStruct,
  slot: PmdSlot,
  va: number,
  tablePfn: number,
): void {
  const old = slot.table[slot.index]!;
  slot.table[slot.index] = mkPte(tablePfn, TABLE_ENTRY);
  const bus = core.kernel.bus;
  const haddr = pmdAlignDown(va);
  if (old !== PTE_NONE && bus.wants('mm.pmd.set'))
    bus.emit('mm.pmd.set', { mm: mm.id, va: haddr, pmd: PTE_NONE, old });
  if (bus.wants('mm.pt.alloc'))
    bus.emit('mm.pt.alloc', { mm: mm.id, pfn: tablePfn, level: 0, va: haddr });
}

/**
 * Zeroes a frame's content and records it (`clear_highpage`); the zeroing `mm.frame.alloc`
 * does is implied by that event.
 */
export function clearFrame(core: MmCore, pfn: number): void {
  core.phys.clear(pfn);
  const bus = core.kernel.bus;
  if (bus.wants('mm.frame.clear')) bus.emit('mm.frame.clear', { pfn });
}

/** A huge leaf's translation of `va`: the subpage frame, or -1 if `pmd` is not a present leaf. */
export function pmdLeafPfnAt(pmd: number, va: number): number {
  if (!pmdIsPresentLeaf(pmd)) return -1;
  return ptePfn(pmd) + Math.floor((va % PMD_SIZE) / PAGE_SIZE);
}
