import type { IntervalNode, TaskGen } from '@mmnsim/core';
import type { MmStruct } from '../mm.js';
import type { NotifierRange } from '../notifier.js';

/**
 * What a callback that may sleep returns: a generator (`function*`, which may `yield*` into
 * locks and waits), or — for a callback that never sleeps — the plain result, which spares the
 * generator machinery on the hot path.
 */
export type MaySleep<R> = TaskGen<R> | R;

/**
 * The callbacks of a classic subscription (`struct mmu_notifier_ops`, Linux 6.17). Every op is
 * optional. The invalidate, release and young ops run inside the notifier SRCU read section;
 * `invalidateRangeStart`/`End` and `release` may sleep when the range is blockable (release
 * always may): write them as generator functions, or as plain functions when they never sleep.
 * The young ops and `archInvalidateSecondaryTlbs` run under the page-table lock and are plain
 * functions — they cannot sleep.
 *
 * @see struct mmu_notifier_ops
 */
export interface MmuNotifierOps {
  /** Name for events and reports. */
  readonly name: string;
  /**
   * The mm is going away (exit) or the subscription is being unregistered: tear down every
   * secondary mapping. May run concurrently with other ops and, in an exit/unregister race,
   * twice — it must be idempotent. Must not call `unregister` or `synchronize`.
   * @see mmu_notifier_ops.release
   */
  release?(sub: MmuNotifier, mm: MmStruct): MaySleep<void>;
  /** Test-and-clear the secondary accessed bits of `[start, end)` and flush. @see mmu_notifier_ops.clear_flush_young */
  clearFlushYoung?(sub: MmuNotifier, mm: MmStruct, start: number, end: number): number;
  /** Test-and-clear the secondary accessed bits without flushing. @see mmu_notifier_ops.clear_young */
  clearYoung?(sub: MmuNotifier, mm: MmStruct, start: number, end: number): number;
  /** Test the secondary accessed bit without changing anything. @see mmu_notifier_ops.test_young */
  testYoung?(sub: MmuNotifier, mm: MmStruct, address: number): number;
  /**
   * PTEs in `range` are about to change: stop using secondary translations of the range before
   * returning. Return 0, or -EAGAIN when the range is not blockable and the op would have to
   * sleep (then it must not have an end op).
   * @see mmu_notifier_ops.invalidate_range_start
   */
  invalidateRangeStart?(sub: MmuNotifier, range: NotifierRange): MaySleep<number>;
  /** The PTE changes of `range` are done; mappings may be established again. @see mmu_notifier_ops.invalidate_range_end */
  invalidateRangeEnd?(sub: MmuNotifier, range: NotifierRange): MaySleep<void>;
  /**
   * The CPU TLB of `mm` was invalidated for `[start, end)`: invalidate the secondary TLB that walks
   * the CPU page tables (IOMMU SVA). Exclusive with start/end. Cannot sleep, but may spin-wait
   * for its hardware (`qi_submit_sync` polls the wait descriptor with interrupts off): then it
   * returns a generator that only blocks with `{ spin: true }`.
   * @see mmu_notifier_ops.arch_invalidate_secondary_tlbs
   */
  archInvalidateSecondaryTlbs?(
    sub: MmuNotifier,
    mm: MmStruct,
    start: number,
    end: number,
  ): TaskGen<void> | void;
  /** Allocates the subscription for `mmu_notifier_get` (a subscription, or a negated errno). */
  allocNotifier?(mm: MmStruct): MmuNotifier | number;
  /** Frees a subscription after the last `mmu_notifier_put` and a grace period. Cannot sleep. */
  freeNotifier?(sub: MmuNotifier): void;
}

/**
 * A classic subscription (`struct mmu_notifier`): an entry on an mm's notifier list, called for
 * every invalidation of that mm.
 *
 * @see struct mmu_notifier
 */
export class MmuNotifier {
  /** The mm it is registered with (null before registration). */
  mm: MmStruct | null = null;
  /** get/put reference count (`users`). */
  users = 0;
  /** True while on the mm's list (`!hlist_unhashed`). */
  hashed = false;
  /** Identity for events (assigned at registration). */
  id = 0;

  /** @param ops the callbacks; their identity is what `mmu_notifier_get` matches on. */
  constructor(public ops: MmuNotifierOps) {}
}

/**
 * The op of an interval subscription (`struct mmu_interval_notifier_ops`).
 *
 * `invalidate` is called with no core lock held, for every invalidation intersecting the
 * subscription's interval. It must take the driver lock (trylock when the range is not
 * blockable, returning false if that fails), call `setSeq(sub, curSeq)` unconditionally, tear
 * down device mappings of the intersection and finish the device-side invalidation, then return
 * true.
 *
 * @see struct mmu_interval_notifier_ops
 */
export interface MmuIntervalNotifierOps {
  /** Name for events and reports. */
  readonly name: string;
  /** See the interface doc. @see mmu_interval_notifier_ops.invalidate */
  invalidate(sub: MmuIntervalNotifier, range: NotifierRange, curSeq: number): MaySleep<boolean>;
}

/**
 * An interval subscription (`struct mmu_interval_notifier`): one driver object covering
 * `[start, last]` of an mm, with its own copy of the collision sequence. `seq` is always odd
 * after insert.
 *
 * @see struct mmu_interval_notifier
 */
export class MmuIntervalNotifier {
  /** The mm (set by insert). */
  mm: MmStruct | null = null;
  /** First address covered. */
  start = 0;
  /** Last address covered (inclusive). */
  last = 0;
  /** The subscription's copy of `invalidate_seq` (`mmu_interval_set_seq` writes it). */
  seq = 0;
  /** Its node in the interval tree, or null while not in the tree. */
  node: IntervalNode<MmuIntervalNotifier> | null = null;
  /** True while it sits on the deferred list (a pending insert or remove). */
  deferred = false;
  /** Identity for events (assigned at insert). */
  id = 0;
  /** True once `readBegin` was used: the driver follows the collision-retry protocol. */
  usesRetry = false;
  /**
   * The locks the driver held at its last `setSeq` (lockdep on): `readRetry` must hold one of
   * them. Maintained by the subsystem.
   */
  seqLocks: object[] | undefined = undefined;

  /** @param ops the invalidate callback. */
  constructor(public ops: MmuIntervalNotifierOps) {}

  /** True while in the interval tree. */
  get inTree(): boolean {
    return this.node !== null;
  }
}

/** True if a callback returned a generator (it may sleep) rather than its plain result. */
export function isTaskGen<R>(x: MaySleep<R>): x is TaskGen<R> {
  return (
    typeof x === 'object' && x !== null && typeof (x as { next?: unknown }).next === 'function'
  );
}
