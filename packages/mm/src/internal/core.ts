import { RwSemaphore } from '@mmnsim/core';
import type { Kernel, TaskGen } from '@mmnsim/core';
import { SimFile } from './file.js';
import { MmStruct } from './mm.js';
import type { MmuNotifiers } from './notifier.js';
import { PageTables } from './pagetable.js';
import { PhysMem } from './physmem.js';
import type { FrameKind } from './physmem.js';
import { Frame } from './physmem.js';
import { TableRcu } from './gup-fast.js';
import { HugetlbPool } from './huge/hugetlb.js';
import { HugeState } from './huge/thp.js';
import type { ThpMode } from './huge/thp.js';
import { SwapDevice } from './swap.js';
import type { TlbFlushProvider } from './tlb.js';
import { AnonVma } from './vma.js';
import type { Vma } from './vma.js';

/** The memory model's tunables (validated by the `mm` plugin's schema). */
export interface MmConfig {
  /** Physical memory size in frames. */
  readonly totalFrames: number;
  /** Pages one mmu_gather may hold before it must flush (`MAX_GATHER_BATCH_COUNT * MAX_GATHER_BATCH`). */
  readonly gatherMaxPages: number;
  /** Pages direct reclaim tries to free when an allocation fails (`SWAP_CLUSTER_MAX`). */
  readonly reclaimBatch: number;
  /** `transparent_hugepage/enabled` (default `'madvise'`). */
  readonly thp?: ThpMode;
  /** `transparent_hugepage/use_zero_page` (default true). */
  readonly thpZeroPage?: boolean;
  /** 2 MiB folios in the hugetlb pool (`nr_hugepages`, default 0). */
  readonly hugetlbPages?: number;
}

/** Reclaim rounds an allocation tries before giving up (`MAX_RECLAIM_RETRIES`). */
export const MAX_RECLAIM_RETRIES = 16;

/** A direct-reclaim hook: try to free `nr` frames; returns how many were freed. */
export type Reclaimer = (core: MmCore, nr: number) => TaskGen<number>;

/**
 * The memory model's shared state and services: physical memory, page tables, the TLB
 * provider, the MMU notifier entry points, swap, files, anon_vmas and the LRU. Every mm
 * operation takes it as its first argument; plugins reach it as the `MmService`.
 */
export class MmCore {
  /** Physical memory. */
  readonly phys: PhysMem;
  /** Page-table helpers. */
  readonly pt: PageTables;
  /** The swap device. */
  readonly swap = new SwapDevice();
  /** Live mms by id. */
  readonly mms = new Map<number, MmStruct>();
  /** Files by id. */
  readonly files = new Map<number, SimFile>();
  /** anon_vmas by id. */
  readonly anonVmas = new Map<number, AnonVma>();
  /** Reclaim candidates in LRU order (oldest first); stale entries are skipped. */
  readonly lru: number[] = [];
  /** Direct reclaim, installed by the reclaim module. */
  reclaimer: Reclaimer | null = null;
  /** Transparent-huge-page state (mode, huge zero folio, deposited tables). */
  readonly huge: HugeState;
  /** The hugetlb pool. */
  readonly hugetlb: HugetlbPool;
  /** The page-table freeing rule for lockless walkers (`tlb_remove_table`). */
  readonly tableRcu: TableRcu;
  private nextMm = 1;
  private nextFile = 1;
  private nextAnon = 1;

  /**
   * @param kernel the kernel services.
   * @param options the tunables.
   * @param tlb the TLB provider (attached here).
   * @param notifiers the MMU notifier entry points.
   */
  constructor(
    readonly kernel: Kernel,
    readonly options: MmConfig,
    readonly tlb: TlbFlushProvider,
    readonly notifiers: MmuNotifiers,
  ) {
    this.phys = new PhysMem(kernel, options.totalFrames);
    this.pt = new PageTables(this);
    this.huge = new HugeState(options.thp ?? 'madvise', options.thpZeroPage ?? true);
    this.hugetlb = new HugetlbPool(this, options.hugetlbPages ?? 0);
    this.tableRcu = new TableRcu(this);
    tlb.attach(this);
    notifiers.attach(this);
  }

  /** Creates an empty mm (`mm_alloc`): no VMAs, a fresh top-level table. */
  newMm(name: string): MmStruct {
    const pgd = this.pt.newPgd();
    if (pgd < 0) throw new Error(`mm_alloc(${name}): out of memory for the page-table root`);
    const mm = new MmStruct(this.kernel, this.nextMm++, name, pgd);
    this.mms.set(mm.id, mm);
    const bus = this.kernel.bus;
    if (bus.wants('mm.create')) bus.emit('mm.create', { mm: mm.id, name, pgd });
    return mm;
  }

  /** Creates a file of `sizePages` pages whose content is `content` (page offset → [word, value] pairs). */
  newFile(
    name: string,
    sizePages: number,
    content?: ReadonlyMap<number, readonly number[]>,
  ): SimFile {
    const f = new SimFile(
      this.nextFile++,
      name,
      sizePages,
      new RwSemaphore(this.kernel, 'mapping->i_mmap_rwsem'),
    );
    if (content !== undefined) for (const [pg, words] of content) f.backing.set(pg, [...words]);
    this.files.set(f.id, f);
    return f;
  }

  /** `anon_vma_prepare`: gives `vma` an anon_vma if it has none. */
  anonVmaPrepare(vma: Vma): AnonVma {
    if (vma.anonVma === null) {
      const av = new AnonVma(this.nextAnon++, new RwSemaphore(this.kernel, 'anon_vma->rwsem'));
      this.anonVmas.set(av.id, av);
      av.vmas.add(vma);
      vma.anonVma = av;
    }
    return vma.anonVma;
  }

  /** Puts a frame on the LRU (a reclaim candidate). */
  lruAdd(pfn: number): void {
    if ((this.phys.flags[pfn]! & Frame.LRU) !== 0) return;
    this.phys.flags[pfn]! |= Frame.LRU;
    this.lru.push(pfn);
  }

  /**
   * Allocates a frame, entering direct reclaim when memory is exhausted (`__alloc_pages` slow
   * path). Returns -1 if reclaim could not free anything (the caller reports -ENOMEM / OOM).
   * Sleeps only when it reclaims.
   */
  *allocFrame(kind: FrameKind): TaskGen<number> {
    let pfn = this.phys.alloc(kind);
    if (pfn >= 0 || this.reclaimer === null) return pfn;
    // The slow path retries reclaim while it makes progress (`should_reclaim_retry`): a round
    // can free nothing because the pages it found are held by a gather or a contended lock.
    let idle = 0;
    for (let round = 0; round < MAX_RECLAIM_RETRIES && idle < 3; round++) {
      const freed = yield* this.reclaimer(this, this.options.reclaimBatch);
      pfn = this.phys.alloc(kind);
      if (pfn >= 0) return pfn;
      if (freed > 0) idle = 0;
      else {
        idle++;
        yield* this.kernel.scheduler.preempt();
      }
    }
    return -1;
  }
}
