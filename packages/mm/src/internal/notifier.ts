import { MMU_NOTIFIER_START_MAP } from '@mmnsim/core';
import type { Kernel, LockdepMap, TaskGen } from '@mmnsim/core';
import type { MmCore } from './core.js';
import type { MmStruct } from './mm.js';

/** `enum mmu_notifier_event`, in declaration order. */
export const MMU_NOTIFY_EVENTS = [
  'UNMAP',
  'CLEAR',
  'PROTECTION_VMA',
  'PROTECTION_PAGE',
  'SOFT_DIRTY',
  'RELEASE',
  'MIGRATE',
  'EXCLUSIVE',
] as const;

/** Why a range is invalidated (`enum mmu_notifier_event`); see notifier-core.md §1.5. */
export type MmuNotifierEvent = (typeof MMU_NOTIFY_EVENTS)[number];

/** `MMU_NOTIFIER_RANGE_BLOCKABLE`: the only range flag. */
export const MMU_NOTIFIER_RANGE_BLOCKABLE = 1;

/**
 * `struct mmu_notifier_range`: what an invalidation covers. `end` is exclusive. The start
 * wrapper sets or clears the blockable flag and the end wrapper reads it back, so the same object
 * must be passed to both.
 *
 * @see mmu_notifier_range_init
 */
export class NotifierRange {
  /** `MMU_NOTIFIER_RANGE_*` flags; set by the start wrapper. */
  flags = 0;
  /** Identity given at the first start (per simulation), to pair start and end in events; 0 before. */
  id = 0;

  /**
   * `mmu_notifier_range_init` (owner null) or `mmu_notifier_range_init_owner`.
   * @param event why the range is invalidated.
   * @param mm the mm being changed.
   * @param start first byte.
   * @param end exclusive end.
   * @param owner the owner cookie (MIGRATE: the pgmap owner; EXCLUSIVE: the caller's cookie).
   */
  constructor(
    readonly event: MmuNotifierEvent,
    readonly mm: MmStruct,
    readonly start: number,
    readonly end: number,
    readonly owner: unknown = null,
  ) {}

  /** `mmu_notifier_range_blockable`. */
  get blockable(): boolean {
    return (this.flags & MMU_NOTIFIER_RANGE_BLOCKABLE) !== 0;
  }
}

/**
 * The MMU notifier entry points that mm operations call (`include/linux/mmu_notifier.h`), at the
 * places notifier-core.md §7 lists. With no subscriptions on an mm every entry point is a no-op
 * (start returns 0, young ops return 0) — but the lockdep annotations and `might_sleep` checks
 * of the wrappers always run, as in the kernel.
 *
 * The subscriptions behind these calls (classic and interval notifiers) are the notifier
 * subsystem's; it plugs in by overriding the protected `__` methods.
 *
 * @see mmu_notifier_invalidate_range_start
 */
export class MmuNotifiers {
  private nextRangeId = 1;
  /** The memory model, once attached. */
  protected mmCore: MmCore | null = null;
  /** `__mmu_notifier_invalidate_range_start_map`, looked up once. */
  protected readonly startMap: LockdepMap;

  /** @param kernel the kernel services. */
  constructor(protected readonly kernel: Kernel) {
    this.startMap = kernel.lockdep.map(MMU_NOTIFIER_START_MAP);
  }

  /** Called once by the memory model when it starts. */
  attach(core: MmCore): void {
    this.mmCore = core;
  }

  /** `mm_has_notifiers`. */
  hasNotifiers(mm: MmStruct): boolean {
    return mm.notifierSubscriptions !== null;
  }

  /**
   * The blocking start wrapper: may sleep (checked), sets the blockable flag, and runs the
   * subscriptions inside the `mmu_notifier_invalidate_range_start` lockdep map. Always 0 for a
   * blockable range in 6.17.
   *
   * @see mmu_notifier_invalidate_range_start
   */
  *invalidateRangeStart(range: NotifierRange): TaskGen<number> {
    const k = this.kernel;
    k.mightSleep('mmu_notifier_invalidate_range_start');
    this.identify(range);
    range.flags |= MMU_NOTIFIER_RANGE_BLOCKABLE;
    const map = this.startMap;
    map.acquire();
    const r = this.hasNotifiers(range.mm) ? yield* this.__invalidateRangeStart(range) : 0;
    map.release();
    this.emitStart(range, r);
    return r;
  }

  /**
   * The non-blocking start wrapper (OOM reaper): clears the blockable flag; returns -EAGAIN if a
   * subscriber would have had to sleep, and then the caller must not call end.
   *
   * @see mmu_notifier_invalidate_range_start_nonblock
   */
  *invalidateRangeStartNonblock(range: NotifierRange): TaskGen<number> {
    this.identify(range);
    range.flags &= ~MMU_NOTIFIER_RANGE_BLOCKABLE;
    const map = this.startMap;
    map.acquire();
    const r = this.hasNotifiers(range.mm) ? yield* this.__invalidateRangeStart(range) : 0;
    map.release();
    this.emitStart(range, r);
    return r;
  }

  /**
   * The end wrapper: `might_sleep` only for a blockable range; the subscriptions' end pass runs
   * inside the lockdep map (taken by `__mmu_notifier_invalidate_range_end`).
   * @see mmu_notifier_invalidate_range_end
   */
  *invalidateRangeEnd(range: NotifierRange): TaskGen<void> {
    const k = this.kernel;
    if (range.blockable) k.mightSleep('mmu_notifier_invalidate_range_end');
    if (this.hasNotifiers(range.mm)) yield* this.__invalidateRangeEnd(range);
    const bus = k.bus;
    if (bus.wants('mmn.invalidate_end')) {
      bus.emit('mmn.invalidate_end', {
        mm: range.mm.id,
        start: range.start,
        end: range.end,
        event: range.event,
        range: range.id,
      });
    }
  }

  /** `mmu_notifier_clear_flush_young`: the OR over subscribers; under the PT lock (no sleeping). */
  clearFlushYoung(mm: MmStruct, start: number, end: number): number {
    const r = this.hasNotifiers(mm) ? this.__young('clear_flush_young', mm, start, end) : 0;
    this.emitYoung('clear_flush_young', mm, start, end, r);
    return r;
  }

  /** `mmu_notifier_clear_young`: the OR over subscribers, no secondary flush. */
  clearYoung(mm: MmStruct, start: number, end: number): number {
    const r = this.hasNotifiers(mm) ? this.__young('clear_young', mm, start, end) : 0;
    this.emitYoung('clear_young', mm, start, end, r);
    return r;
  }

  /** `mmu_notifier_test_young`: the first non-zero subscriber result. */
  testYoung(mm: MmStruct, address: number): number {
    const r = this.hasNotifiers(mm) ? this.__young('test_young', mm, address, address + 4096) : 0;
    this.emitYoung('test_young', mm, address, address + 4096, r);
    return r;
  }

  /**
   * `mmu_notifier_release`: the first thing `exit_mmap` does, before any page is unmapped.
   * @see __mmu_notifier_release
   */
  *release(mm: MmStruct): TaskGen<void> {
    if (this.hasNotifiers(mm)) yield* this.__release(mm);
    const bus = this.kernel.bus;
    if (bus.wants('mmn.release')) bus.emit('mmn.release', { mm: mm.id });
  }

  /**
   * `mmu_notifier_arch_invalidate_secondary_tlbs`: called by the CPU TLB flush path (the TLB
   * provider) with the flushed range, before the flush returns; never sleeps. When a hook has to
   * spin-wait for its hardware to complete the invalidation (an IOMMU's `qi_submit_sync`), a
   * generator is returned that the caller must run with `yield*` before it goes on (it only
   * spin-waits, so atomic context is fine); otherwise nothing is returned.
   *
   * ## Example
   * ```ts
   * const spin = core.notifiers.archInvalidateSecondaryTlbs(mm, start, end);
   * if (spin !== undefined) yield* spin;
   * ```
   */
  archInvalidateSecondaryTlbs(mm: MmStruct, start: number, end: number): TaskGen<void> | undefined {
    const spin = this.hasNotifiers(mm)
      ? this.__archInvalidateSecondaryTlbs(mm, start, end)
      : undefined;
    if (spin !== undefined) return this.archInvalidateThenEmit(spin, mm, start, end);
    this.emitSecondaryTlbs(mm, start, end);
    return undefined;
  }

  private *archInvalidateThenEmit(
    spin: TaskGen<void>,
    mm: MmStruct,
    start: number,
    end: number,
  ): TaskGen<void> {
    yield* spin;
    this.emitSecondaryTlbs(mm, start, end);
  }

  private emitSecondaryTlbs(mm: MmStruct, start: number, end: number): void {
    const bus = this.kernel.bus;
    if (bus.wants('mmn.secondary_tlbs')) bus.emit('mmn.secondary_tlbs', { mm: mm.id, start, end });
  }

  // --- what the subsystem provides (no subscriptions: nothing to do) ----------------------

  /** `__mmu_notifier_invalidate_range_start`: the interval pass, then the list pass. */
  protected *__invalidateRangeStart(_range: NotifierRange): TaskGen<number> {
    return 0;
  }

  /** `__mmu_notifier_invalidate_range_end`. */
  protected *__invalidateRangeEnd(_range: NotifierRange): TaskGen<void> {}

  /** The young ops over the list. */
  protected __young(
    _op: 'clear_flush_young' | 'clear_young' | 'test_young',
    _mm: MmStruct,
    _start: number,
    _end: number,
  ): number {
    return 0;
  }

  /** `__mmu_notifier_release`. */
  protected *__release(_mm: MmStruct): TaskGen<void> {}

  /** `__mmu_notifier_arch_invalidate_secondary_tlbs`; a generator when a hook spin-waits. */
  protected __archInvalidateSecondaryTlbs(
    _mm: MmStruct,
    _start: number,
    _end: number,
  ): TaskGen<void> | undefined {
    return undefined;
  }

  /** Gives `range` its identity before any callback sees it, so callback events pair with the window. */
  private identify(range: NotifierRange): void {
    if (range.id === 0) range.id = this.nextRangeId++;
  }

  private emitStart(range: NotifierRange, result: number): void {
    const bus = this.kernel.bus;
    if (bus.wants('mmn.invalidate_start')) {
      bus.emit('mmn.invalidate_start', {
        mm: range.mm.id,
        start: range.start,
        end: range.end,
        event: range.event,
        blockable: range.blockable,
        result,
        range: range.id,
      });
    }
  }

  private emitYoung(op: string, mm: MmStruct, start: number, end: number, result: number): void {
    const bus = this.kernel.bus;
    if (bus.wants('mmn.young')) bus.emit('mmn.young', { op, mm: mm.id, start, end, result });
  }
}
