// The lockless GUP walker (gup_fast) and the page-table freeing rule that protects it
// (MMU_GATHER_RCU_TABLE_FREE: a table page is freed only after every walker that may have seen
// it left its IRQs-off section), with the oracle that checks the rule. Its own file: it is the
// only lockless reader of the page tables, and the rule concerns the gather and khugepaged too.
import type { Oracle, OracleContext, Task, TaskGen } from '@mmnsim/core';
import { WaitQueue } from '@mmnsim/core';
import { PAGE_SIZE, PTRS_PER_TABLE } from './constants.js';
import type { MmCore } from './core.js';
import { pmdIsLeaf } from './huge/pmd.js';
import type { MmStruct } from './mm.js';
import { Frame } from './physmem.js';
import { Pte, PTE_NONE, ptePfn } from './pte.js';

declare module '@mmnsim/core' {
  interface SimEventMap {
    /** A gup_fast walk began (IRQs off on the walker's CPU). */
    'mm.gup_fast.begin': {
      /** The mm walked. */
      mm: number;
      /** First address. */
      start: number;
    };
    /**
     * The walker is about to read the table page `pfn` (level 2 = PUD table … 0 = PTE table),
     * whose generation was `gen` when the walker read the entry pointing at it.
     */
    'mm.gup_fast.read': {
      /** The mm walked. */
      mm: number;
      /** The address being translated. */
      va: number;
      /** Level of the table read. */
      level: number;
      /** The table page. */
      pfn: number;
      /** Its allocation generation when the parent entry was read. */
      gen: number;
    };
    /** A gup_fast walk ended (IRQs on again): `pages` references were taken. */
    'mm.gup_fast.end': {
      /** The mm walked. */
      mm: number;
      /** Pages grabbed. */
      pages: number;
    };
    /** Page-table pages queued until the lockless walkers in flight finish (`tlb_remove_table`). */
    'mm.pt.free_deferred': {
      /** The table pages. */
      pfns: number[];
      /** Walkers waited for. */
      walkers: number;
    };
  }
}

interface Pending {
  readonly pfns: number[];
  readonly waitFor: Set<Task>;
}

/**
 * The RCU-sched side of page-table freeing (`MMU_GATHER_RCU_TABLE_FREE`): gup_fast walks with
 * IRQs disabled, which is an RCU-sched read-side section, and page-table pages unlinked by a
 * gather are freed only after a grace period (`tlb_remove_table` → `tlb_remove_table_rcu`), so
 * no walker still reads them. Here the grace period ends when the last walker that was in
 * flight when the tables were queued leaves its section; with none in flight the pages are
 * freed at once (the grace period has nothing to wait for).
 *
 * `skipGracePeriod` plants the bug the rule prevents (the zoo's variant): tables are freed at
 * once even while walkers are in flight.
 *
 * @see tlb_remove_table
 * @see tlb_remove_table_sync_one
 */
export class TableRcu {
  /** Fault injection: free table pages without waiting for walkers (breaks the rule). */
  skipGracePeriod = false;
  /** Tasks inside a gup_fast IRQs-off section. */
  readonly walkers = new Set<Task>();
  private readonly pending: Pending[] = [];
  private readonly idle: WaitQueue;

  /** @param core the memory model. */
  constructor(private readonly core: MmCore) {
    this.idle = new WaitQueue(core.kernel.scheduler, 'tlb_remove_table_sync_one');
  }

  /** Table pages waiting for a grace period. */
  get pendingPages(): number {
    let n = 0;
    for (const p of this.pending) n += p.pfns.length;
    return n;
  }

  /**
   * `tlb_remove_table` for the tables a gather flushed: free them after the walkers in flight
   * now have left (the TLB flush is done; the pages are unlinked).
   */
  removeTables(pfns: readonly number[]): void {
    if (pfns.length === 0) return;
    if (this.walkers.size === 0 || this.skipGracePeriod) {
      for (const t of pfns) this.core.phys.put(t);
      return;
    }
    this.pending.push({ pfns: [...pfns], waitFor: new Set(this.walkers) });
    const bus = this.core.kernel.bus;
    if (bus.wants('mm.pt.free_deferred'))
      bus.emit('mm.pt.free_deferred', { pfns: [...pfns], walkers: this.walkers.size });
  }

  /** A walker entered its IRQs-off section (`local_irq_save` in `gup_fast`). */
  enter(t: Task): void {
    this.walkers.add(t);
  }

  /** A walker left its section: grace periods waiting only for it end (`tlb_remove_table_rcu`). */
  exit(t: Task): void {
    this.walkers.delete(t);
    for (let i = 0; i < this.pending.length;) {
      const p = this.pending[i]!;
      p.waitFor.delete(t);
      if (p.waitFor.size === 0) {
        this.pending.splice(i, 1);
        for (const pfn of p.pfns) this.core.phys.put(pfn);
      } else i++;
    }
    this.idle.wakeAll();
  }

  /**
   * `tlb_remove_table_sync_one`: an IPI to every CPU, which returns once each has IRQs enabled
   * again — every walker in flight now has left. Sleeps (the model's IPI wait).
   */
  *syncOne(): TaskGen<void> {
    if (this.walkers.size === 0 || this.skipGracePeriod) return;
    const wait = new Set(this.walkers);
    yield* this.idle.waitEvent(() => [...wait].every((t) => !this.walkers.has(t)));
  }
}

function indexAt(va: number, shift: number): number {
  return Math.floor(va / 2 ** shift) % PTRS_PER_TABLE;
}

/**
 * `gup_fast` (FOLL_GET): with IRQs disabled and without `mmap_lock`, walk `mm`'s page tables
 * for `[start, start + nrPages pages)` and take a reference on each present, user-accessible
 * page (writable if `write`), stopping at the first page it cannot take (not present, a PMD
 * leaf — left to the slow path here —, a special PTE). After grabbing a page it re-reads the
 * PMD and PTE (`gup_fast_pte_range`'s recheck) and gives the page back if either changed.
 * Between two table levels other CPUs run: the tables it is about to read are protected only
 * by the freeing rule ({@link TableRcu}), which the {@link GupFastOracle} checks.
 *
 * Returns the frames grabbed (each holds one reference; drop it with `putPage`).
 *
 * Context: any task on a CPU; must not hold `mmap_lock` for it to matter; never sleeps.
 *
 * @see gup_fast
 * @see gup_fast_pte_range
 */
export function* gupFast(
  core: MmCore,
  mm: MmStruct,
  start: number,
  nrPages: number,
  write: boolean,
): TaskGen<number[]> {
  const k = core.kernel;
  const sched = k.scheduler;
  const phys = core.phys;
  const bus = k.bus;
  const rcu = core.tableRcu;
  const out: number[] = [];
  const me = sched.current;
  k.localIrqSave();
  rcu.enter(me);
  if (bus.wants('mm.gup_fast.begin')) bus.emit('mm.gup_fast.begin', { mm: mm.id, start });
  outer: for (let p = 0; p < nrPages; p++) {
    const va = start + p * PAGE_SIZE;
    let tablePfn = mm.pgd;
    let pmdTable: Float64Array | null = null;
    let pmdIndex = 0;
    let pmdVal = PTE_NONE;
    for (const [shift, level] of [
      [39, 3],
      [30, 2],
      [21, 1],
      [12, 0],
    ] as const) {
      const gen = phys.generation[tablePfn]!;
      if (level < 3) {
        // Another CPU may unlink and free the table between the parent's read and this one.
        yield* sched.preempt();
        if (bus.wants('mm.gup_fast.read'))
          bus.emit('mm.gup_fast.read', { mm: mm.id, va, level, pfn: tablePfn, gen });
        if ((phys.flags[tablePfn]! & Frame.PAGETABLE) === 0) break outer;
      }
      const table = phys.tables[tablePfn];
      if (table === undefined) break outer;
      const i = indexAt(va, shift);
      const e = table[i]!;
      if (level === 1) {
        pmdTable = table;
        pmdIndex = i;
        pmdVal = e;
        if (e === PTE_NONE || pmdIsLeaf(e)) break outer;
      }
      if (level === 0) {
        const f = e % PAGE_SIZE;
        if ((f & (Pte.PRESENT | Pte.USER)) !== (Pte.PRESENT | Pte.USER)) break outer;
        if ((f & Pte.SPECIAL) !== 0) break outer;
        if (write && (f & Pte.WRITE) === 0) break outer;
        const pfn = ptePfn(e);
        if ((phys.flags[pfn]! & Frame.FREE) !== 0) break outer;
        phys.get(pfn); // try_grab_folio
        if (pmdTable![pmdIndex] !== pmdVal || table[i] !== e) {
          phys.put(pfn);
          break outer;
        }
        out.push(pfn);
        break;
      }
      if (e === PTE_NONE) break outer;
      tablePfn = ptePfn(e);
    }
  }
  // The walk is over before the section ends: tables waiting for this walker go now.
  if (bus.wants('mm.gup_fast.end')) bus.emit('mm.gup_fast.end', { mm: mm.id, pages: out.length });
  rcu.exit(me);
  k.localIrqRestore();
  return out;
}

/**
 * Checks the freeing rule of lockless page-table walkers: no page-table page is freed while a
 * gup_fast walker may still read it, and no walker reads a table page that was freed or reused
 * since it read the entry pointing at it. Reported as `gup-fast-table-freed` (at the free) and
 * `gup-fast-table-use-after-free` (at the read).
 *
 * ## Example
 * ```ts
 * sim.addOracle(new GupFastOracle(sim.get(MmService).core));
 * ```
 *
 * @see tlb_remove_table
 */
export class GupFastOracle implements Oracle {
  /** See {@link Oracle.id}. */
  readonly id = 'gup-fast';

  /** @param core the memory model whose frames are checked. */
  constructor(private readonly core: MmCore) {}

  /** See {@link Oracle.attach}. */
  attach(ctx: OracleContext): void {
    const phys = this.core.phys;
    // Tables each walker has read an entry of and not finished with, by task id.
    const held = new Map<number, Map<number, number>>();
    ctx.bus.on('mm.gup_fast.begin').subscribe((e) => held.set(e.task, new Map()));
    ctx.bus.on('mm.gup_fast.end').subscribe((e) => held.delete(e.task));
    ctx.bus.on('mm.gup_fast.read').subscribe((e) => {
      const d = e.data;
      held.get(e.task)?.set(d.pfn, e.seq);
      if ((phys.flags[d.pfn]! & Frame.PAGETABLE) === 0 || phys.generation[d.pfn] !== d.gen) {
        ctx.report({
          kind: 'gup-fast-table-use-after-free',
          message: `gup_fast read page-table page ${d.pfn} (level ${d.level}) for 0x${d.va.toString(16)} after it was freed: tlb_remove_table must wait for IRQs-off walkers`,
          evidence: [e.seq],
        });
      }
    });
    ctx.bus.on('mm.frame.free').subscribe((e) => {
      for (const [task, tables] of held) {
        const seq = tables.get(e.data.pfn);
        if (seq === undefined) continue;
        ctx.report({
          kind: 'gup-fast-table-freed',
          message: `page-table page ${e.data.pfn} freed while gup_fast (task ${task}) may still walk it`,
          evidence: [seq, e.seq],
        });
      }
    });
  }
}
