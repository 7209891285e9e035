import { KernelBug } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { GFP_KERNEL } from '@mmnsim/core';
import { PAGE_SIZE, PTRS_PER_TABLE } from './constants.js';
import type { MmCore } from './core.js';
import type { MmuGather } from './gather.js';
import type { MmStruct } from './mm.js';
import { mkPte, Pte, PTE_NONE, ptePfn } from './pte.js';

/** Where one PTE lives: its table page and index. */
export interface PteSlot {
  /** The PTE table's entries. */
  readonly table: Float64Array;
  /** The PTE table's frame (its split lock is `mm.ptl(tablePfn)`). */
  readonly tablePfn: number;
  /** Index of the PTE in the table. */
  readonly index: number;
}

/** Address shift of each level: 0 = PTE table … 3 = PGD. */
const SHIFT = [12, 21, 30, 39] as const;
const SPAN = SHIFT.map((s) => 2 ** s);
const TABLE_ENTRY = Pte.PRESENT | Pte.WRITE | Pte.USER;

function indexAt(va: number, level: number): number {
  return Math.floor(va / SPAN[level]!) % PTRS_PER_TABLE;
}

/**
 * 4-level page tables whose table pages are frames (`pgd → pud → pmd → pte`, 512 entries each).
 * Upper-level entries point at the next table's frame; leaf entries are {@link Pte} values.
 *
 * Locking: populating an upper level happens under `mm.pageTableLock`; leaf entries change under
 * the PTE table's split lock (`mm.ptl(tablePfn)`); lookups are lockless, like the hardware walk.
 */
export class PageTables {
  /** @param core the memory model. */
  constructor(private readonly core: MmCore) {}

  /** Allocates a new top-level table for a new mm (`pgd_alloc`); -1 when out of memory. */
  newPgd(): number {
    return this.core.phys.alloc('pagetable');
  }

  /** The slot of `va`'s PTE, or null if a level above it is missing. Lockless. */
  lookup(mm: MmStruct, va: number): PteSlot | null {
    const tables = this.core.phys.tables;
    let pfn = mm.pgd;
    for (let level = 3; level >= 1; level--) {
      const t = tables[pfn];
      if (t === undefined) return null;
      const e = t[indexAt(va, level)]!;
      if (e === PTE_NONE) return null;
      pfn = ptePfn(e);
    }
    const table = tables[pfn];
    if (table === undefined) return null;
    return { table, tablePfn: pfn, index: indexAt(va, 0) };
  }

  /** The PTE of `va`, or {@link PTE_NONE} if there is none. */
  pte(mm: MmStruct, va: number): number {
    const s = this.lookup(mm, va);
    return s === null ? PTE_NONE : s.table[s.index]!;
  }

  /**
   * The slot of `va`'s PTE, allocating missing tables (`__pte_alloc` and friends). A table page
   * is allocated before taking `mm.pageTableLock` (allocation may sleep) and installed under it
   * unless another task installed one meanwhile. Returns null when memory is exhausted.
   */
  *allocSlot(mm: MmStruct, va: number): TaskGen<PteSlot | null> {
    const core = this.core;
    const tables = core.phys.tables;
    let pfn = mm.pgd;
    for (let level = 3; level >= 1; level--) {
      const t = tables[pfn]!;
      const i = indexAt(va, level);
      if (t[i] === PTE_NONE) {
        core.kernel.mightAlloc(GFP_KERNEL, 'pte_alloc_one');
        const fresh = yield* core.allocFrame('pagetable');
        if (fresh < 0) return null;
        yield* mm.pageTableLock.lock();
        if (t[i] === PTE_NONE) {
          t[i] = mkPte(fresh, TABLE_ENTRY);
          const bus = core.kernel.bus;
          if (bus.wants('mm.pt.alloc')) {
            const base = va - (va % SPAN[level]!);
            bus.emit('mm.pt.alloc', { mm: mm.id, pfn: fresh, level: level - 1, va: base });
          }
        } else {
          core.phys.put(fresh);
        }
        mm.pageTableLock.unlock();
      }
      pfn = ptePfn(t[i]!);
    }
    return { table: tables[pfn]!, tablePfn: pfn, index: indexAt(va, 0) };
  }

  /**
   * Writes a leaf entry (the caller holds the PTE table's lock) and records the change. `va` may
   * be any address inside the page; the event carries the page's address.
   */
  set(mm: MmStruct, slot: PteSlot, va: number, pte: number): void {
    const old = slot.table[slot.index]!;
    slot.table[slot.index] = pte;
    const bus = this.core.kernel.bus;
    if (bus.wants('mm.pte.set'))
      bus.emit('mm.pte.set', { mm: mm.id, va: va - (va % PAGE_SIZE), pte, old });
  }

  /**
   * Calls `fn` for each existing PTE table intersecting `[start, end)`, with the index range
   * that falls inside, skipping missing upper levels. `base` is the address of entry 0.
   */
  forEachTable(
    mm: MmStruct,
    start: number,
    end: number,
    fn: (table: Float64Array, tablePfn: number, base: number, from: number, to: number) => void,
  ): void {
    this.walkLevel(mm.pgd, 3, 0, start, end, fn);
  }

  private walkLevel(
    pfn: number,
    level: number,
    base: number,
    start: number,
    end: number,
    fn: (table: Float64Array, tablePfn: number, base: number, from: number, to: number) => void,
  ): void {
    const table = this.core.phys.tables[pfn];
    if (table === undefined) return;
    const span = SPAN[level]!;
    const first = Math.max(0, Math.floor((start - base) / span));
    const last = Math.min(PTRS_PER_TABLE - 1, Math.floor((end - 1 - base) / span));
    if (level === 0) {
      if (first <= last) fn(table, pfn, base, first, last + 1);
      return;
    }
    for (let i = first; i <= last; i++) {
      const e = table[i]!;
      if (e === PTE_NONE) continue;
      this.walkLevel(ptePfn(e), level - 1, base + i * span, start, end, fn);
    }
  }

  /**
   * Unlinks every table page whose whole span lies in `[floor, ceiling)` and hands it to the
   * gather, which frees it after the TLB flush (`free_pgtables`). The tables must be empty (their
   * range was zapped); a present entry left behind is a kernel BUG.
   */
  freeTables(mm: MmStruct, floor: number, ceiling: number, tlb: MmuGather): void {
    this.freeLevel(mm, mm.pgd, 3, 0, floor, ceiling, tlb);
  }

  /** Frees the top-level table of a dead mm (`pgd_free`); every lower table must be gone. */
  freePgd(mm: MmStruct): void {
    const t = this.core.phys.tables[mm.pgd];
    if (t !== undefined && t.some((e) => e !== PTE_NONE)) {
      throw new KernelBug(`pgd_free of ${mm.toString()} with page tables still linked`);
    }
    this.core.phys.put(mm.pgd);
  }

  private freeLevel(
    mm: MmStruct,
    pfn: number,
    level: number,
    base: number,
    floor: number,
    ceiling: number,
    tlb: MmuGather,
  ): boolean {
    const table = this.core.phys.tables[pfn]!;
    const span = SPAN[level]!;
    let empty = true;
    for (let i = 0; i < PTRS_PER_TABLE; i++) {
      const e = table[i]!;
      if (e === PTE_NONE) continue;
      const childBase = base + i * span;
      if (level === 0) {
        empty = false;
        continue;
      }
      if (this.core.phys.tables[ptePfn(e)] === undefined) {
        empty = false; // a PMD leaf (huge page) is not a table to free
        continue;
      }
      const inside = childBase >= floor && childBase + span <= ceiling;
      const childEmpty = this.freeLevel(mm, ptePfn(e), level - 1, childBase, floor, ceiling, tlb);
      if (inside && childEmpty) {
        table[i] = PTE_NONE;
        if (level - 1 === 0) mm.dropPtl(ptePfn(e));
        tlb.freeTable(ptePfn(e), level - 1, childBase, span);
      } else empty = false;
    }
    if (level === 0 && !empty) {
      for (let i = 0; i < PTRS_PER_TABLE; i++) {
        const childBase = base + i * span;
        if (table[i] !== PTE_NONE && childBase >= floor && childBase + span <= ceiling) {
          throw new KernelBug(
            `free_pgtables: ${mm.toString()} still maps 0x${childBase.toString(16)} in a range being freed`,
          );
        }
      }
    }
    return empty;
  }
}
