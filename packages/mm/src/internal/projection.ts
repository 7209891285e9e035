import type { LoggedEvent, Projection, SimEventMap } from '@mmnsim/core';
import { PTRS_PER_TABLE } from './constants.js';
import type { MmCore } from './core.js';
import type { MmStruct } from './mm.js';
import { Frame } from './physmem.js';
import { pmdIsLeaf } from './huge/pmd.js';
import { PTE_NONE, ptePfn } from './pte.js';

/** A VMA as the `mm.vma.*` events describe it. */
export interface VmaView {
  /** First address. */
  readonly start: number;
  /** Exclusive end. */
  readonly end: number;
  /** `vm_flags`. */
  readonly flags: number;
  /** Backing file id, 0 for anonymous memory. */
  readonly file: number;
  /** Page offset of `start`. */
  readonly pgoff: number;
}

/** A page-table page below the top level, as `mm.pt.alloc` describes it. */
export interface TableView {
  /** 2 = PUD table, 1 = PMD table, 0 = PTE table. */
  readonly level: number;
  /** First address it maps. */
  readonly va: number;
}

/** One address space in an {@link MmView}. */
export interface MmSpaceView {
  /** The process name given at creation. */
  readonly name: string;
  /** Frame of the top-level table. */
  readonly pgd: number;
  /** Every non-empty leaf entry: address → PTE value (present, swap or migration entry). */
  readonly ptes: Map<number, number>;
  /** The VMAs by start address. */
  readonly vmas: Map<number, VmaView>;
  /** The linked page-table pages below the top level, by frame. */
  readonly tables: Map<number, TableView>;
  /** Every huge leaf (PMD entry mapping 2 MiB): 2 MiB-aligned address → PMD value. */
  readonly pmds: Map<number, number>;
}

/**
 * The memory model's state as the `mm.*` events describe it: what {@link mmProjection} folds
 * from a log and {@link liveView} reads from a live model. The two are equal at the end of every
 * run (ARCHITECTURE §4).
 */
export interface MmView {
  /** Address spaces by mm id. */
  readonly mms: Map<number, MmSpaceView>;
  /** Allocated frames (the zero page excluded) and their kind (`'anon'`, `'file'` …). */
  readonly frames: Map<number, string>;
  /**
   * Content of every frame with a non-zero word, allocated or not (a freed frame keeps its data
   * until its next allocation zeroes it): frame → word index → value.
   */
  readonly content: Map<number, Map<number, number>>;
}

function emptyView(): MmView {
  return { mms: new Map(), frames: new Map(), content: new Map() };
}

function space(view: MmView, mm: number): MmSpaceView {
  let s = view.mms.get(mm);
  if (s === undefined) {
    s = { name: '', pgd: -1, ptes: new Map(), vmas: new Map(), tables: new Map(), pmds: new Map() };
    view.mms.set(mm, s);
  }
  return s;
}

/**
 * The projection of the memory model: folds `mm.create`, `mm.pte.set`, `mm.pmd.set`,
 * `mm.vma.add`/`remove`, `mm.pt.alloc`/`unlink`, `mm.frame.alloc`/`free`/`write`/`copy`/`clear`
 * into an {@link MmView}. An
 * allocation zeroes the frame's content; a free keeps it. An mm leaves the view when its
 * top-level table frame is freed (`pgd_free` runs in `__mmdrop`, when the mm_struct goes), as
 * it leaves `core.mms`.
 *
 * ## Example
 * ```ts
 * const view = fold(mmProjection(), sim.log!.events);
 * expect(view).toEqual(liveView(sim.get(MmService).core));
 * ```
 *
 * @see struct mm_struct
 */
export function mmProjection(): Projection<MmView> {
  return {
    name: 'mm',
    init: emptyView,
    apply(view: MmView, event: LoggedEvent): MmView {
      switch (event.type) {
        case 'mm.create': {
          const d = event.data as SimEventMap['mm.create'];
          view.mms.set(d.mm, {
            name: d.name,
            pgd: d.pgd,
            ptes: new Map(),
            vmas: new Map(),
            tables: new Map(),
            pmds: new Map(),
          });
          break;
        }
        case 'mm.pte.set': {
          const d = event.data as SimEventMap['mm.pte.set'];
          const s = space(view, d.mm);
          if (d.pte === PTE_NONE) s.ptes.delete(d.va);
          else s.ptes.set(d.va, d.pte);
          break;
        }
        case 'mm.pmd.set': {
          const d = event.data as SimEventMap['mm.pmd.set'];
          const s = space(view, d.mm);
          if (d.pmd === PTE_NONE) s.pmds.delete(d.va);
          else s.pmds.set(d.va, d.pmd);
          break;
        }
        case 'mm.frame.clear': {
          const d = event.data as SimEventMap['mm.frame.clear'];
          view.content.delete(d.pfn);
          break;
        }
        case 'mm.vma.add': {
          const d = event.data as SimEventMap['mm.vma.add'];
          space(view, d.mm).vmas.set(d.start, {
            start: d.start,
            end: d.end,
            flags: d.flags,
            file: d.file,
            pgoff: d.pgoff,
          });
          break;
        }
        case 'mm.vma.remove': {
          const d = event.data as SimEventMap['mm.vma.remove'];
          space(view, d.mm).vmas.delete(d.start);
          break;
        }
        case 'mm.pt.alloc': {
          const d = event.data as SimEventMap['mm.pt.alloc'];
          space(view, d.mm).tables.set(d.pfn, { level: d.level, va: d.va });
          break;
        }
        case 'mm.pt.unlink': {
          const d = event.data as SimEventMap['mm.pt.unlink'];
          space(view, d.mm).tables.delete(d.pfn);
          break;
        }
        case 'mm.frame.alloc': {
          const d = event.data as SimEventMap['mm.frame.alloc'];
          view.frames.set(d.pfn, d.kind);
          view.content.delete(d.pfn);
          break;
        }
        case 'mm.frame.free': {
          const d = event.data as SimEventMap['mm.frame.free'];
          view.frames.delete(d.pfn);
          // pgd_free happens in __mmdrop, with the mm_struct: the mm is gone.
          for (const [id, s] of view.mms) if (s.pgd === d.pfn) view.mms.delete(id);
          break;
        }
        case 'mm.frame.write': {
          const d = event.data as SimEventMap['mm.frame.write'];
          let c = view.content.get(d.pfn);
          if (d.value === 0) {
            if (c !== undefined) {
              c.delete(d.word);
              if (c.size === 0) view.content.delete(d.pfn);
            }
          } else {
            if (c === undefined) {
              c = new Map();
              view.content.set(d.pfn, c);
            }
            c.set(d.word, d.value);
          }
          break;
        }
        case 'mm.frame.copy': {
          const d = event.data as SimEventMap['mm.frame.copy'];
          const c = view.content.get(d.from);
          if (c === undefined) view.content.delete(d.to);
          else view.content.set(d.to, new Map(c));
          break;
        }
        default:
          break;
      }
      return view;
    },
  };
}

/** The kind string `mm.frame.alloc` reports for a frame's {@link Frame} bits. */
function kindOf(flags: number): string {
  if ((flags & Frame.DEVICE) !== 0) return 'device';
  if ((flags & Frame.ANON) !== 0) return 'anon';
  if ((flags & Frame.FILE) !== 0) return 'file';
  if ((flags & Frame.PAGETABLE) !== 0) return 'pagetable';
  if ((flags & Frame.KERNEL) !== 0) return 'kernel';
  return `flags 0x${flags.toString(16)}`;
}

/** Adds the linked tables below `pfn` (at `level`, mapping from `base`) and their leaf entries. */
function walkTables(core: MmCore, s: MmSpaceView, pfn: number, level: number, base: number): void {
  const table = core.phys.tables[pfn];
  if (table === undefined) return;
  const span = 2 ** (12 + 9 * level);
  for (let i = 0; i < PTRS_PER_TABLE; i++) {
    const e = table[i]!;
    if (e === PTE_NONE) continue;
    const va = base + i * span;
    if (level === 0) {
      s.ptes.set(va, e);
    } else if (level === 1 && pmdIsLeaf(e)) {
      s.pmds.set(va, e);
    } else {
      const child = ptePfn(e);
      s.tables.set(child, { level: level - 1, va });
      walkTables(core, s, child, level - 1, va);
    }
  }
}

function liveSpace(core: MmCore, mm: MmStruct): MmSpaceView {
  const s: MmSpaceView = {
    name: mm.name,
    pgd: mm.pgd,
    ptes: new Map(),
    vmas: new Map(),
    tables: new Map(),
    pmds: new Map(),
  };
  // A freed mm's top-level frame may belong to someone else by now.
  if (!mm.freed && mm.pgd >= 0 && mm.pgd < core.phys.total) walkTables(core, s, mm.pgd, 3, 0);
  for (const v of mm.vmas.all) {
    s.vmas.set(v.start, {
      start: v.start,
      end: v.end,
      flags: v.flags,
      file: v.file?.id ?? 0,
      pgoff: v.pgoff,
    });
  }
  return s;
}

/**
 * The live model's state in the shape of {@link MmView}: every mm of `core.mms` (page tables
 * walked from the top-level frame, VMAs), every allocated frame's kind from its flags, and every
 * frame's content. Equal to `fold(mmProjection(), log.events)` when the log describes every
 * change (ARCHITECTURE §4). Walks all of physical memory: meant for tests and tools.
 *
 * Context: any; reads only.
 *
 * @see struct mm_struct
 */
export function liveView(core: MmCore): MmView {
  const view = emptyView();
  for (const mm of core.mms.values()) view.mms.set(mm.id, liveSpace(core, mm));
  const phys = core.phys;
  for (let pfn = 1; pfn < phys.total; pfn++) {
    const f = phys.flags[pfn]!;
    if ((f & Frame.FREE) === 0) view.frames.set(pfn, kindOf(f));
  }
  for (let pfn = 0; pfn < phys.total; pfn++) {
    const words = phys.snapshot(pfn);
    if (words.length === 0) continue;
    const c = new Map<number, number>();
    for (let i = 0; i < words.length; i += 2) c.set(words[i]!, words[i + 1]!);
    view.content.set(pfn, c);
  }
  return view;
}
