import { IntervalTree, KernelBug, WaitQueue } from '@mmnsim/core';
import type { Kernel } from '@mmnsim/core';
import type { MmStruct } from '../mm.js';
import type { MmuIntervalNotifier, MmuNotifier } from './types.js';

/**
 * The interval machinery's state (notifier-core.md §4.1): `idle` (no invalidation in flight),
 * `partial` (invalidations in flight, none intersected a subscription: the tree may change),
 * `full` (one intersected: the tree is frozen, inserts and removes are deferred, `read_begin`
 * on a subscription carrying the current sequence sleeps).
 */
export type ItreeState = 'idle' | 'partial' | 'full';

/**
 * The per-mm container (`struct mmu_notifier_subscriptions`), created by the first
 * registration on an mm and kept until the mm_struct is freed.
 *
 * Its fields are what spec §1.1 lists; every change happens in one scheduler step, standing in
 * for the kernel's `subscriptions->lock` spinlock.
 *
 * @see struct mmu_notifier_subscriptions
 */
export class MmuNotifierSubscriptions {
  /**
   * Classic subscriptions, newest first (`hlist_add_head`). Copy-on-write: changes replace the
   * array, so a walk keeps iterating the array it started with, as an RCU list walk does.
   */
  list: readonly MmuNotifier[] = [];
  /** Set by the first interval registration; never cleared. */
  hasItree = false;
  /** The collision sequence S: starts at 2, odd while Full. */
  invalidateSeq = 2;
  /** A: invalidation windows in flight that the interval code counted. */
  activeInvalidateRanges = 0;
  /** Interval subscriptions keyed by `[start, last]`. */
  readonly itree = new IntervalTree<MmuIntervalNotifier>();
  /** Pending inserts and removes while Full, newest first (`hlist_add_head`). */
  readonly deferredList: MmuIntervalNotifier[] = [];
  /** Sleepers in `read_begin` and `remove`; woken (all) when Full ends. */
  readonly wq: WaitQueue;

  /**
   * @param kernel the kernel services.
   * @param mm the owning mm.
   */
  constructor(
    kernel: Kernel,
    readonly mm: MmStruct,
  ) {
    this.wq = new WaitQueue(kernel.scheduler, `mmu_notifier_subscriptions(${mm.toString()})->wq`);
  }

  /** The state of the interval machinery (asserting the combinations the kernel never leaves behind). */
  get state(): ItreeState {
    const a = this.activeInvalidateRanges;
    const odd = (this.invalidateSeq & 1) === 1;
    if (a < 0)
      throw new KernelBug(`${this.mm.toString()}: active_invalidate_ranges went negative (${a})`);
    if (a === 0) {
      if (odd)
        throw new KernelBug(
          `${this.mm.toString()}: invalidate_seq ${this.invalidateSeq} is odd with no invalidation in flight`,
        );
      return 'idle';
    }
    return odd ? 'full' : 'partial';
  }

  /** `mn_itree_is_invalidating`: S is odd. */
  get invalidating(): boolean {
    return (this.invalidateSeq & 1) === 1;
  }
}
