import { RwSemaphore, SpinLock } from '@mmnsim/core';
import type { Kernel } from '@mmnsim/core';
import { VmaList } from './vma.js';

/**
 * An address space (`struct mm_struct`): VMAs, a 4-level page table whose table pages are
 * frames, and the locks that protect them.
 *
 * Lifetime as in the kernel: `users` (`mm_users`) counts the threads and temporary users
 * (`mmget`); when it reaches zero the address space is torn down (`exit_mmap`). `count`
 * (`mm_count`) keeps the structure itself alive (`mmgrab`); notifier subscriptions hold such
 * references.
 *
 * Locks: `mmapLock` (an rwsem) protects the VMA list and the page-table layout; `pageTableLock`
 * (`mm->page_table_lock`) serialises populating upper-level tables; each PTE table has its own
 * split page-table lock (`ptlFor`).
 *
 * @see struct mm_struct
 */
export class MmStruct {
  /** `mm_users`. */
  users = 1;
  /** `mm_count`. */
  count = 1;
  /** The VMAs. */
  readonly vmas = new VmaList();
  /** `mmap_lock`. */
  readonly mmapLock: RwSemaphore;
  /** `page_table_lock`. */
  readonly pageTableLock: SpinLock;
  /** Start of the heap (`start_brk`), 0 until the first brk. */
  brkStart = 0;
  /** Current program break (`brk`). */
  brk = 0;
  /** True once `exit_mmap` has run: no more faults or GUP. */
  exited = false;
  /** True once the mm_struct itself was freed (`mmdrop` of the last `mm_count`). */
  freed = false;
  /**
   * `MMF_OOM_SKIP`: the OOM reaper has nothing (more) to do here — set by `exit_mmap` once the
   * pages are unmapped, and by the reaper when it gives up or finishes.
   */
  oomSkip = false;
  /** `tlb_flush_pending`: mmu_gathers in progress on this mm (for nested-flush detection). */
  tlbFlushPending = 0;
  /**
   * The MMU notifier subscriptions container (`mm->notifier_subscriptions`), owned by the
   * notifier subsystem; null until the first registration.
   */
  notifierSubscriptions: object | null = null;
  private readonly ptlocks = new Map<number, SpinLock>();

  /**
   * @param kernel the kernel services.
   * @param id unique mm id (used in events).
   * @param name readable name (the process's).
   * @param pgd pfn of the top-level table page.
   */
  constructor(
    private readonly kernel: Kernel,
    readonly id: number,
    readonly name: string,
    public pgd: number,
  ) {
    this.mmapLock = new RwSemaphore(kernel, 'mm->mmap_lock');
    this.pageTableLock = new SpinLock(kernel, 'mm->page_table_lock');
  }

  /** The split page-table lock of the PTE table in frame `tablePfn` (`pte_lockptr`). */
  ptl(tablePfn: number): SpinLock {
    let l = this.ptlocks.get(tablePfn);
    if (l === undefined) {
      l = new SpinLock(this.kernel, 'ptlock');
      this.ptlocks.set(tablePfn, l);
    }
    return l;
  }

  /** Forgets the lock of a freed PTE table. */
  dropPtl(tablePfn: number): void {
    this.ptlocks.delete(tablePfn);
  }

  /** `mm#id name`, for reports. */
  toString(): string {
    return `mm#${this.id} ${this.name}`;
  }
}
