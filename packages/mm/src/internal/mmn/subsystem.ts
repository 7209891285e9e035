import { Errno, GFP_KERNEL, KernelBug, Mutex, SrcuDomain } from '@mmnsim/core';
import type { Kernel, RwSemaphore, SimEventMap, SimEventType, TaskGen } from '@mmnsim/core';
import { TASK_SIZE } from '../constants.js';
import type { MmCore } from '../core.js';
import type { MmStruct } from '../mm.js';
import { MmuNotifiers, NotifierRange } from '../notifier.js';
import { mmdrop, mmgrab } from '../unmap.js';
import { MmuNotifierSubscriptions } from './subscriptions.js';
import type { ItreeState } from './subscriptions.js';
import { isTaskGen } from './types.js';
import type { MmuIntervalNotifier, MmuNotifier } from './types.js';
import type { MaySleep, MmuIntervalNotifierOps, MmuNotifierOps } from './types.js';

/** One running interval callback, to check that it calls `setSeq`. */
interface Invocation {
  readonly sub: MmuIntervalNotifier;
  setSeq: boolean;
  /** Locks the task held when the callback was entered (the caller's, such as mmap_lock). */
  readonly held: number;
  /** The task running the callback. */
  readonly tid: number;
}

/** Nesting of notifier callbacks (and walks) in one task beyond which the kernel stack overflows. */
const MAX_CALLBACK_NESTING = 64;

/**
 * The MMU notifier subsystem of Linux 6.17 (`mm/mmu_notifier.c`), behind the entry points mm
 * operations call: classic subscriptions with get/put and SRCU-deferred freeing, interval
 * subscriptions with the collision-retry sequence, the exit-time release, and the kernel's
 * WARNs and BUGs as violations.
 *
 * Registration is exclusive against open invalidation windows the way the kernel makes it:
 * `__register` holds `mmap_lock` for write and takes every rmap lock of the mm
 * (`mm_take_all_locks`), and every window is opened under one of those locks.
 *
 * ## Example: an interval subscriber
 * ```ts
 * const mmn = sim.get(MmuNotifiersId) as MmuNotifierSubsystem;
 * const sub = new MmuIntervalNotifier({
 *   name: 'mydev',
 *   *invalidate(s, range, curSeq) {
 *     if (range.blockable) yield* lock.lock();
 *     else if (!lock.tryLock()) return false;
 *     mmn.setSeq(s, curSeq);
 *     deviceTable.clear(range.start, range.end);
 *     lock.unlock();
 *     return true;
 *   },
 * });
 * yield* mmn.intervalInsert(sub, proc.mm, start, length);
 * ```
 *
 * @see mm/mmu_notifier.c
 */
export class MmuNotifierSubsystem extends MmuNotifiers {
  /** The one SRCU domain all list walks use (`DEFINE_STATIC_SRCU(srcu)`). */
  readonly srcu: SrcuDomain;
  private readonly allLocksMutex: Mutex;
  private nextSubId = 1;
  private readonly callbackDepth: number[] = [];
  private readonly invocations: Invocation[][] = [];

  /** @param kernel the kernel services. */
  constructor(kernel: Kernel) {
    super(kernel);
    this.srcu = new SrcuDomain(kernel, 'mmu_notifier srcu');
    this.allLocksMutex = new Mutex(kernel, 'mm_all_locks_mutex');
  }

  /** The container of `mm`, or null before the first registration (`mm->notifier_subscriptions`). */
  subscriptions(mm: MmStruct): MmuNotifierSubscriptions | null {
    return mm.notifierSubscriptions as MmuNotifierSubscriptions | null;
  }

  // --- classic subscriptions: register, unregister, get/put, synchronize -------------------

  /**
   * `mmu_notifier_register`: takes `mmap_lock` for write and registers `sub` (which may
   * sleep). The caller must hold no mmap_lock and keep `mm_users` above zero.
   * Returns 0, -EINVAL (an ops with both start/end and `archInvalidateSecondaryTlbs`) or -ENOMEM.
   */
  *register(sub: MmuNotifier, mm: MmStruct): TaskGen<number> {
    yield* mm.mmapLock.downWrite();
    const r = yield* this.__register(sub, mm);
    mm.mmapLock.upWrite();
    return r;
  }

  /**
   * `__mmu_notifier_register`: the caller holds `mmap_lock` for write. With `sub === null`,
   * switches the mm to interval mode (`has_itree`). New list entries go to the head.
   */
  *__register(sub: MmuNotifier | null, mm: MmStruct): TaskGen<number> {
    const k = this.kernel;
    this.assertMmapWrite(mm, '__mmu_notifier_register');
    if (mm.users <= 0)
      throw new KernelBug(`__mmu_notifier_register on ${mm.toString()} with mm_users ${mm.users}`);
    if (sub !== null) {
      const o = sub.ops;
      if (
        o.archInvalidateSecondaryTlbs !== undefined &&
        (o.invalidateRangeStart !== undefined || o.invalidateRangeEnd !== undefined)
      ) {
        k.report(
          'mmn-arch-hook-with-start-end',
          `WARN_ONCE: ${o.name} implements arch_invalidate_secondary_tlbs together with invalidate_range_start/end; registration refused with -EINVAL (invariant 4)`,
        );
        return -Errno.EINVAL;
      }
    }
    let subs = this.subscriptions(mm);
    const fresh = subs === null;
    if (subs === null) {
      k.mightAlloc(GFP_KERNEL, 'kzalloc(mmu_notifier_subscriptions)');
      subs = new MmuNotifierSubscriptions(k, mm);
    }
    const locked = yield* this.takeAllLocks(mm);
    if (fresh) mm.notifierSubscriptions = subs;
    if (sub !== null) {
      mmgrab(mm);
      sub.mm = mm;
      sub.users = 1;
      sub.id = this.nextSubId++;
      sub.hashed = true;
      subs.list = [sub, ...subs.list];
      this.emit('mmn.register', { mm: mm.id, sub: sub.id, name: sub.ops.name, kind: 'list' });
    } else if (!subs.hasItree) {
      subs.hasItree = true;
      this.emit('mmn.register', { mm: mm.id, sub: 0, name: 'itree', kind: 'itree' });
    }
    this.dropAllLocks(locked);
    return 0;
  }

  /**
   * `mm_take_all_locks`: `mm_all_locks_mutex`, then every file mapping's `i_mmap_rwsem`, then
   * every anon_vma's rwsem, all for write under `mmap_lock` (lockdep's nest lock). Every
   * invalidation window is opened under `mmap_lock` or one of these, so none is open while they
   * are held.
   */
  private *takeAllLocks(mm: MmStruct): TaskGen<RwSemaphore[]> {
    yield* this.allLocksMutex.lock();
    const locked: RwSemaphore[] = [];
    const seen = new Set<RwSemaphore>();
    for (const v of mm.vmas.all) {
      const l = v.file?.iMmapRwsem;
      if (l !== undefined && !seen.has(l)) {
        seen.add(l);
        yield* l.downWriteNestLock(mm.mmapLock);
        locked.push(l);
      }
    }
    for (const v of mm.vmas.all) {
      const l = v.anonVma?.lock;
      if (l !== undefined && !seen.has(l)) {
        seen.add(l);
        yield* l.downWriteNestLock(mm.mmapLock);
        locked.push(l);
      }
    }
    return locked;
  }

  private dropAllLocks(locked: RwSemaphore[]): void {
    for (let i = locked.length - 1; i >= 0; i--) locked[i]!.upWrite();
    this.allLocksMutex.unlock();
  }

  /**
   * `mmu_notifier_unregister`: if `sub` is still listed, call its `release` inside the SRCU
   * section and unlink it; then always wait for a grace period (so no op of `sub` is running or
   * will run) and drop the mm reference. Must not be called from a notifier callback or inside
   * the notifier SRCU section — that is reported (it would deadlock).
   */
  *unregister(sub: MmuNotifier, mm: MmStruct): TaskGen<void> {
    this.checkNotInCallback('mmu_notifier_unregister', 43);
    if (mm.count <= 0)
      throw new KernelBug(`mmu_notifier_unregister on ${mm.toString()} with mm_count ${mm.count}`);
    if (sub.hashed) {
      const idx = this.srcu.readLock();
      if (sub.ops.release !== undefined)
        yield* this.callList(sub, 'release', sub.ops.release(sub, mm));
      this.srcu.readUnlock(idx);
      this.unlink(sub);
    }
    yield* this.srcu.synchronize();
    this.emit('mmn.unregister', { mm: mm.id, sub: sub.id, name: sub.ops.name, kind: 'list' });
    mmdrop(this.core(), mm);
  }

  /** `mmu_notifier_get`: `mmap_lock` for write around {@link MmuNotifierSubsystem.getLocked}. */
  *get(ops: MmuNotifierOps, mm: MmStruct): TaskGen<MmuNotifier | number> {
    yield* mm.mmapLock.downWrite();
    const r = yield* this.getLocked(ops, mm);
    mm.mmapLock.upWrite();
    return r;
  }

  /**
   * `mmu_notifier_get_locked`: the listed subscription with the same ops (users + 1), or a new
   * one from `ops.allocNotifier` registered now. Caller holds `mmap_lock` for write.
   */
  *getLocked(ops: MmuNotifierOps, mm: MmStruct): TaskGen<MmuNotifier | number> {
    this.assertMmapWrite(mm, 'mmu_notifier_get_locked');
    const subs = this.subscriptions(mm);
    if (subs !== null) {
      const found = subs.list.find((s) => s.ops === ops);
      if (found !== undefined) {
        if (found.users >= 0xffffffff) return -Errno.EOVERFLOW;
        found.users++;
        this.emit('mmn.get', { mm: mm.id, sub: found.id, users: found.users });
        return found;
      }
    }
    if (ops.allocNotifier === undefined) {
      this.kernel.report(
        'mmn-no-alloc-notifier',
        `mmu_notifier_get with ops ${ops.name} that has no alloc_notifier`,
      );
      return -Errno.EINVAL;
    }
    const sub = ops.allocNotifier(mm);
    if (typeof sub === 'number') return sub;
    sub.ops = ops;
    const r = yield* this.__register(sub, mm);
    if (r !== 0) {
      ops.freeNotifier?.(sub);
      return r;
    }
    return sub;
  }

  /**
   * `mmu_notifier_put`: drop a get reference; the last one unlinks the subscription and queues
   * (call_srcu) `freeNotifier` and the mm reference drop after a grace period. Never calls
   * `release`. May be called from `release`. A put with no users left WARNs.
   */
  put(sub: MmuNotifier): void {
    if (sub.users === 0) {
      this.kernel.report(
        'mmn-put-zero-users',
        `WARN_ON: mmu_notifier_put on ${sub.ops.name} with users == 0 (invariant 44)`,
      );
      return;
    }
    sub.users--;
    this.emit('mmn.put', { mm: sub.mm?.id ?? 0, sub: sub.id, users: sub.users });
    if (sub.users > 0) return;
    if (sub.hashed) this.unlink(sub);
    const mm = sub.mm!;
    this.srcu.callSrcu(() => {
      if (sub.ops.freeNotifier !== undefined) {
        this.kernel.scheduler.enterNoSleep('free_notifier (SRCU callback)');
        sub.ops.freeNotifier(sub);
        this.kernel.scheduler.leaveNoSleep();
      }
      this.emit('mmn.free', { mm: mm.id, sub: sub.id, name: sub.ops.name });
      mmdrop(this.core(), mm);
    });
  }

  /**
   * `mmu_notifier_synchronize`: waits for a grace period and for every SRCU callback queued
   * before it (modelled as grace period plus callback flush, which is what module-exit users
   * rely on; notifier-core.md §3.3). Must not be called inside the notifier SRCU section.
   */
  *synchronize(): TaskGen<void> {
    this.checkNotInCallback('mmu_notifier_synchronize', 43);
    yield* this.srcu.synchronize();
    yield* this.srcu.barrier();
  }

  private unlink(sub: MmuNotifier): void {
    const subs = this.subscriptions(sub.mm!);
    if (subs === null || !sub.hashed) return;
    subs.list = subs.list.filter((s) => s !== sub);
    sub.hashed = false;
  }

  // --- interval subscriptions --------------------------------------------------------------

  /**
   * `mmu_interval_notifier_insert`: subscribe `sub` to `[start, start + length - 1]` of `mm`,
   * switching the mm to interval mode first if needed (which takes `mmap_lock`, so the caller
   * must not hold it). The caller keeps `mm_users` above zero. Returns 0, -EOVERFLOW (length 0
   * or overflow) or -EINVAL (no users). The subscription may not be in the tree yet on return;
   * create mappings only through `readBegin`/`readRetry`.
   */
  *intervalInsert(
    sub: MmuIntervalNotifier,
    mm: MmStruct,
    start: number,
    length: number,
    ops?: MmuIntervalNotifierOps,
  ): TaskGen<number> {
    if (this.kernel.lockdep.enabled && mm.mmapLock.heldByCurrent()) {
      // might_lock(&mm->mmap_lock): lockdep flags it even when the lock is not needed.
      this.kernel.report(
        'mmn-insert-mmap-locked',
        `might_lock: mmu_interval_notifier_insert on ${mm.toString()} with mmap_lock already held; use mmu_interval_notifier_insert_locked (invariant 41)`,
      );
    }
    const subs = this.subscriptions(mm);
    if (subs === null || !subs.hasItree) {
      yield* mm.mmapLock.downWrite();
      const r = yield* this.__register(null, mm);
      mm.mmapLock.upWrite();
      if (r !== 0) return r;
    }
    return this.insertCommon(sub, mm, start, length, ops);
  }

  /** `mmu_interval_notifier_insert_locked`: as {@link MmuNotifierSubsystem.intervalInsert} with `mmap_lock` held for write. */
  *intervalInsertLocked(
    sub: MmuIntervalNotifier,
    mm: MmStruct,
    start: number,
    length: number,
    ops?: MmuIntervalNotifierOps,
  ): TaskGen<number> {
    this.assertMmapWrite(mm, 'mmu_interval_notifier_insert_locked');
    const subs = this.subscriptions(mm);
    if (subs === null || !subs.hasItree) {
      const r = yield* this.__register(null, mm);
      if (r !== 0) return r;
    }
    return this.insertCommon(sub, mm, start, length, ops);
  }

  private insertCommon(
    sub: MmuIntervalNotifier,
    mm: MmStruct,
    start: number,
    length: number,
    ops?: MmuIntervalNotifierOps,
  ): number {
    if (ops !== undefined) sub.ops = ops;
    sub.mm = mm;
    sub.node = null;
    if (!Number.isInteger(length) || length <= 0 || start + length - 1 > Number.MAX_SAFE_INTEGER)
      return -Errno.EOVERFLOW;
    if (mm.users <= 0) {
      this.kernel.report(
        'mmn-insert-no-users',
        `WARN_ON: mmu_interval_notifier_insert on ${mm.toString()} with mm_users 0 (invariant 41)`,
      );
      return -Errno.EINVAL;
    }
    mmgrab(mm);
    sub.start = start;
    sub.last = start + length - 1;
    sub.id = this.nextSubId++;
    const subs = this.subscriptions(mm)!;
    let deferred = false;
    if (subs.activeInvalidateRanges > 0) {
      if (subs.invalidating) {
        sub.deferred = true;
        subs.deferredList.unshift(sub);
        deferred = true;
      } else {
        subs.invalidateSeq |= 1; // Partial -> Full: the in-flight windows may cover the new range
        sub.node = subs.itree.insert(sub.start, sub.last, sub);
        this.emitState(subs);
      }
      sub.seq = subs.invalidateSeq;
    } else {
      if (subs.invalidating)
        this.kernel.report(
          'mmn-seq-odd-when-idle',
          `WARN_ON: ${mm.toString()} invalidate_seq is odd with no invalidation in flight`,
        );
      sub.seq = subs.invalidateSeq - 1;
      sub.node = subs.itree.insert(sub.start, sub.last, sub);
    }
    this.emit('mmn.interval.insert', {
      mm: mm.id,
      sub: sub.id,
      name: sub.ops.name,
      start: sub.start,
      last: sub.last,
      seq: sub.seq,
      deferred,
    });
    return 0;
  }

  /**
   * `mmu_interval_notifier_remove`: after it returns, `invalidate` of `sub` is not running and
   * will not be called again. While Full, the removal is deferred (the sub stays in the tree)
   * and this waits for the Full period to end; a still-pending insert is simply cancelled. May
   * sleep; must not be called from a notifier callback (reported: it would wait for its own
   * window).
   */
  *intervalRemove(sub: MmuIntervalNotifier): TaskGen<void> {
    const mm = sub.mm;
    if (mm === null)
      throw new KernelBug('mmu_interval_notifier_remove of a subscription that was never inserted');
    const subs = this.subscriptions(mm)!;
    if (this.checkNotInCallback('mmu_interval_notifier_remove', 42)) return;
    this.kernel.mightSleep('mmu_interval_notifier_remove');
    let waitSeq = 0;
    if (subs.invalidating) {
      if (!sub.inTree) {
        const i = subs.deferredList.indexOf(sub);
        if (i >= 0) subs.deferredList.splice(i, 1);
        sub.deferred = false;
      } else {
        sub.deferred = true;
        subs.deferredList.unshift(sub);
        waitSeq = subs.invalidateSeq;
      }
    } else {
      if (!sub.inTree)
        this.kernel.report(
          'mmn-remove-not-in-tree',
          `WARN_ON: removing interval subscription ${sub.ops.name} that is not in the tree`,
        );
      else {
        subs.itree.remove(sub.node!);
        sub.node = null;
      }
    }
    this.emit('mmn.interval.remove', {
      mm: mm.id,
      sub: sub.id,
      name: sub.ops.name,
      deferred: waitSeq !== 0,
    });
    this.startMap.touch();
    if (waitSeq !== 0) {
      this.emit('mmn.wait', { mm: mm.id, sub: sub.id, seq: waitSeq, why: 'remove' });
      yield* subs.wq.waitEvent(() => subs.invalidateSeq !== waitSeq);
    }
    mmdrop(this.core(), mm);
  }

  /**
   * `mmu_interval_read_begin`: the sequence to pass to `readRetry`. Sleeps while an
   * invalidation that already called this subscription is in its Full period; never loops, so
   * the result may already be stale.
   */
  *readBegin(sub: MmuIntervalNotifier): TaskGen<number> {
    const subs = this.subscriptions(sub.mm!)!;
    sub.usesRetry = true;
    const seq = sub.seq;
    const busy = seq === subs.invalidateSeq;
    this.startMap.touch();
    if (busy) {
      this.kernel.mightSleep('mmu_interval_read_begin');
      this.emit('mmn.wait', { mm: sub.mm!.id, sub: sub.id, seq, why: 'read_begin' });
      yield* subs.wq.waitEvent(() => subs.invalidateSeq !== seq);
    }
    this.emit('mmn.read_begin', { mm: sub.mm!.id, sub: sub.id, seq, waited: busy });
    return seq;
  }

  /**
   * `mmu_interval_read_retry`: true if an invalidation collided since `readBegin` returned
   * `seq`. Must be called with the driver lock held — the lock `invalidate` holds around
   * `setSeq`; calling it without that lock is reported (invariant 40).
   */
  readRetry(sub: MmuIntervalNotifier, seq: number): boolean {
    const locks = sub.seqLocks;
    if (
      locks !== undefined &&
      this.kernel.lockdep.enabled &&
      !locks.some((l) => this.kernel.lockdep.isHeld(l))
    ) {
      this.kernel.report(
        'mmn-read-retry-unlocked',
        `mmu_interval_read_retry(${sub.ops.name}) without the driver lock that invalidate holds around mmu_interval_set_seq (invariant 40)`,
      );
    }
    const retry = sub.seq !== seq;
    this.emit('mmn.read_retry', { mm: sub.mm?.id ?? 0, sub: sub.id, seq, retry });
    return retry;
  }

  /** `mmu_interval_check_retry`: the lockless variant; only a true result is reliable. */
  checkRetry(sub: MmuIntervalNotifier, seq: number): boolean {
    return sub.seq !== seq;
  }

  /**
   * `mmu_interval_set_seq`: record `curSeq` in the subscription. Must be called unconditionally
   * in `invalidate`, under the driver lock that guards `readRetry` (invariant 39).
   */
  setSeq(sub: MmuIntervalNotifier, curSeq: number): void {
    const stack = this.invocations[this.kernel.scheduler.current.id];
    const inv = stack?.[stack.length - 1];
    const mine = inv !== undefined && inv.sub === sub;
    if (mine) inv.setSeq = true;
    if (this.kernel.lockdep.enabled) {
      // Only locks the callback took count: the caller's (mmap_lock, rmap locks) guard nothing
      // the driver's read_retry could hold.
      const all = this.kernel.lockdep.held();
      const from = mine ? inv.held : 0;
      if (all.length <= from) {
        this.kernel.report(
          'mmn-set-seq-unlocked',
          `mmu_interval_set_seq(${sub.ops.name}) with no lock of the driver held: it must be under the driver lock that guards read_retry (invariant 39)`,
        );
      } else {
        const prev = sub.seqLocks;
        let same = prev !== undefined && prev.length === all.length - from;
        for (let i = from; same && i < all.length; i++) same = prev![i - from] === all[i]!.instance;
        if (!same) sub.seqLocks = all.slice(from).map((h) => h.instance);
      }
    }
    sub.seq = curSeq;
    const bus = this.kernel.bus;
    if (bus.wants('mmn.set_seq'))
      bus.emit('mmn.set_seq', { mm: sub.mm?.id ?? 0, sub: sub.id, seq: curSeq });
  }

  // --- the passes behind the entry points ---------------------------------------------------

  /** `__mmu_notifier_invalidate_range_start`: interval pass first, then the list pass. */
  protected override *__invalidateRangeStart(range: NotifierRange): TaskGen<number> {
    const subs = this.subscriptions(range.mm)!;
    if (subs.hasItree) {
      const r = yield* this.itreeInvalidate(subs, range);
      if (r !== 0) return r;
    }
    if (subs.list.length > 0) {
      const r = yield* this.listStart(subs, range);
      // Only a non-blockable start leaves the interval part behind: after a blockable one the
      // caller ignores the result and calls end as usual (the WARN above is all there is).
      if (r !== 0 && subs.hasItree && !range.blockable) {
        this.kernel.report(
          'mmn-asymmetric-failure',
          `the list pass of a non-blockable start on ${range.mm.toString()} failed with ${r} after the interval pass succeeded: nothing undoes the interval part, active_invalidate_ranges stays ${subs.activeInvalidateRanges} and state ${subs.state} (notifier-core.md §4.6)`,
          { details: { active: subs.activeInvalidateRanges, seq: subs.invalidateSeq } },
        );
      }
      return r;
    }
    return 0;
  }

  /** `__mmu_notifier_invalidate_range_end`, inside the lockdep map. */
  protected override *__invalidateRangeEnd(range: NotifierRange): TaskGen<void> {
    const subs = this.subscriptions(range.mm)!;
    const map = this.startMap;
    map.acquire();
    if (subs.hasItree) this.invEnd(subs);
    if (subs.list.length > 0) {
      const idx = this.srcu.readLock();
      const walk = subs.list;
      const tell = this.kernel.bus.wants('mmn.callback');
      const nonBlock = !range.blockable;
      const tid = this.enterWalk();
      for (let i = 0; i < walk.length; i++) {
        const sub = walk[i]!;
        const ops = sub.ops;
        if (ops.invalidateRangeEnd === undefined) continue;
        if (nonBlock)
          this.kernel.nonBlockStart(`non-blockable invalidate_range_end of ${sub.ops.name}`);
        const g = ops.invalidateRangeEnd(sub, range);
        if (isTaskGen(g)) yield* g;
        if (nonBlock) this.kernel.nonBlockEnd();
        if (tell) this.emitCallback(sub, 'invalidate_range_end', range, 0, 0);
      }
      this.leaveWalk(tid);
      this.srcu.readUnlock(idx);
    }
    map.release();
  }

  /** `mn_itree_invalidate`: `inv_start_range`, then every intersecting subscription in order. */
  private *itreeInvalidate(subs: MmuNotifierSubscriptions, range: NotifierRange): TaskGen<number> {
    subs.activeInvalidateRanges++;
    const last = range.end - 1;
    let node = subs.itree.iterFirst(range.start, last);
    if (node !== undefined) subs.invalidateSeq |= 1;
    const curSeq = subs.invalidateSeq;
    this.emitState(subs);
    for (; node !== undefined; node = subs.itree.iterNext(node, range.start, last)) {
      const sub = node.value;
      // The callback runs with no core lock held; set_seq and remove look at `inv`.
      const inv = this.enterInterval(sub);
      const g = sub.ops.invalidate(sub, range, curSeq);
      const ok = isTaskGen(g) ? yield* g : g;
      this.leaveInterval(inv);
      this.emitCallback(sub, 'invalidate', range, curSeq, ok ? 1 : 0);
      if (ok && sub.usesRetry && !inv.setSeq) {
        this.kernel.report(
          'mmn-set-seq-missing',
          `${sub.ops.name} invalidate returned without calling mmu_interval_set_seq, yet the driver uses read_begin/read_retry (invariant 39)`,
        );
      }
      if (!ok) {
        if (range.blockable) {
          this.kernel.report(
            'mmn-interval-false-blockable',
            `WARN_ON: ${sub.ops.name} invalidate returned false for a blockable range (notifier-core.md §2.9)`,
          );
          continue;
        }
        this.invEnd(subs);
        return -Errno.EAGAIN;
      }
    }
    return 0;
  }

  /** Enters an interval callback of the running task (for set_seq and the from-callback checks). */
  private enterInterval(sub: MmuIntervalNotifier): Invocation {
    const tid = this.kernel.scheduler.current.id;
    const stack = (this.invocations[tid] ??= []);
    const ld = this.kernel.lockdep;
    const inv: Invocation = { sub, setSeq: false, held: ld.enabled ? ld.held().length : 0, tid };
    stack.push(inv);
    this.callbackDepth[tid] = (this.callbackDepth[tid] ?? 0) + 1;
    return inv;
  }

  /** Leaves the interval callback entered by `enterInterval`. */
  private leaveInterval(inv: Invocation): void {
    this.callbackDepth[inv.tid]!--;
    this.invocations[inv.tid]!.pop();
  }

  /** `mn_itree_inv_end`: A--, and at the end of the Full period S++, the deferred list, wake-all. */
  private invEnd(subs: MmuNotifierSubscriptions): void {
    subs.activeInvalidateRanges--;
    if (subs.activeInvalidateRanges !== 0 || !subs.invalidating) {
      this.emitState(subs);
      return;
    }
    subs.invalidateSeq++;
    const mm = subs.mm;
    for (const sub of subs.deferredList.splice(0)) {
      sub.deferred = false;
      if (!sub.inTree) {
        sub.node = subs.itree.insert(sub.start, sub.last, sub);
        this.emit('mmn.deferred.apply', { mm: mm.id, sub: sub.id, op: 'insert' });
      } else {
        subs.itree.remove(sub.node!);
        sub.node = null;
        this.emit('mmn.deferred.apply', { mm: mm.id, sub: sub.id, op: 'remove' });
      }
    }
    this.emitState(subs);
    const woken = subs.wq.wakeAll();
    if (woken > 0) this.emit('mmn.wake', { mm: mm.id, seq: subs.invalidateSeq, woken });
  }

  /** `mn_hlist_invalidate_range_start`: all subscribers, then end for those with an end if any failed. */
  private *listStart(subs: MmuNotifierSubscriptions, range: NotifierRange): TaskGen<number> {
    const idx = this.srcu.readLock();
    let ret = 0;
    const walk = subs.list;
    const tell = this.kernel.bus.wants('mmn.callback');
    const nonBlock = !range.blockable;
    const tid = this.enterWalk();
    for (let i = 0; i < walk.length; i++) {
      const sub = walk[i]!;
      const ops = sub.ops;
      if (ops.invalidateRangeStart === undefined) continue;
      if (nonBlock)
        this.kernel.nonBlockStart(`non-blockable invalidate_range_start of ${sub.ops.name}`);
      const g = ops.invalidateRangeStart(sub, range);
      const r = isTaskGen(g) ? yield* g : g;
      if (nonBlock) this.kernel.nonBlockEnd();
      if (tell) this.emitCallback(sub, 'invalidate_range_start', range, 0, r);
      if (r !== 0) {
        if (range.blockable || r !== -Errno.EAGAIN) {
          this.kernel.report(
            'mmn-start-failure-warn',
            `WARN_ON: ${sub.ops.name} invalidate_range_start returned ${r} for a ${range.blockable ? 'blockable' : 'non-blockable'} range: only -EAGAIN in a non-blockable range is allowed (invariant 16)`,
          );
        }
        if (sub.ops.invalidateRangeEnd !== undefined) {
          this.kernel.report(
            'mmn-failing-start-has-end',
            `WARN_ON: ${sub.ops.name} failed invalidate_range_start but implements invalidate_range_end (invariant 16)`,
          );
        }
        ret = r;
      }
    }
    this.leaveWalk(tid);
    if (ret !== 0) {
      for (const sub of walk) {
        if (sub.ops.invalidateRangeEnd === undefined) continue;
        yield* this.callList(
          sub,
          'invalidate_range_end',
          sub.ops.invalidateRangeEnd(sub, range),
          range,
        );
      }
    }
    this.srcu.readUnlock(idx);
    return ret;
  }

  /** Runs one list callback, inside `non_block_start/end` when the range is not blockable. */
  private *callList<R>(
    sub: MmuNotifier,
    op: string,
    call: MaySleep<R>,
    range?: NotifierRange,
  ): TaskGen<R> {
    const tid = this.enterList(sub, op, range);
    const r = isTaskGen(call) ? yield* call : call;
    this.leaveList(tid, range);
    this.emitCallback(sub, op, range, 0, typeof r === 'number' ? r : 0);
    return r;
  }

  /** Enters a list callback: counted for the from-callback checks, `non_block_start` if needed. */
  private enterList(sub: MmuNotifier, op: string, range?: NotifierRange): number {
    const tid = this.kernel.scheduler.current.id;
    const depth = (this.callbackDepth[tid] ?? 0) + 1;
    // A callback that re-enters the notifier that called it (->release calling
    // mmu_notifier_unregister, which calls ->release again) recurses until the kernel stack
    // overflows. Stop it at a fixed depth, so the run's log never depends on the JavaScript
    // stack's size.
    if (depth > MAX_CALLBACK_NESTING)
      throw new KernelBug(
        `kernel stack overflow: MMU notifier callbacks nested ${MAX_CALLBACK_NESTING} deep (${op} of ${sub.ops.name} re-enters the notifier that called it)`,
      );
    this.callbackDepth[tid] = depth;
    if (range !== undefined && !range.blockable)
      this.kernel.nonBlockStart(`non-blockable ${op} of ${sub.ops.name}`);
    return tid;
  }

  /** Marks the running task as inside notifier callbacks for a whole list walk. */
  private enterWalk(): number {
    const tid = this.kernel.scheduler.current.id;
    this.callbackDepth[tid] = (this.callbackDepth[tid] ?? 0) + 1;
    return tid;
  }

  /** Leaves the walk entered by `enterWalk`. */
  private leaveWalk(tid: number): void {
    this.callbackDepth[tid]!--;
  }

  /** Leaves the list callback entered by `enterList`. */
  private leaveList(tid: number, range?: NotifierRange): void {
    if (range !== undefined && !range.blockable) this.kernel.nonBlockEnd();
    this.callbackDepth[tid]!--;
  }

  /** `mmn.callback`, built only when someone listens. */
  private emitCallback(
    sub: MmuNotifier | MmuIntervalNotifier,
    op: string,
    range: NotifierRange | undefined,
    seq: number,
    result: number,
  ): void {
    const bus = this.kernel.bus;
    if (!bus.wants('mmn.callback')) return;
    bus.emit('mmn.callback', {
      mm: sub.mm?.id ?? 0,
      sub: sub.id,
      name: sub.ops.name,
      op,
      range: range?.id ?? 0,
      seq,
      result,
    });
  }

  /** The young ops: OR over the list, or the first non-zero result for `test_young`. */
  protected override __young(
    op: 'clear_flush_young' | 'clear_young' | 'test_young',
    mm: MmStruct,
    start: number,
    end: number,
  ): number {
    const subs = this.subscriptions(mm)!;
    if (subs.list.length === 0) return 0;
    const idx = this.srcu.readLock();
    let young = 0;
    for (const sub of subs.list) {
      const o = sub.ops;
      if (op === 'clear_flush_young' && o.clearFlushYoung !== undefined)
        young |= o.clearFlushYoung(sub, mm, start, end);
      else if (op === 'clear_young' && o.clearYoung !== undefined)
        young |= o.clearYoung(sub, mm, start, end);
      else if (op === 'test_young' && o.testYoung !== undefined) {
        young = o.testYoung(sub, mm, start);
        if (young !== 0) break;
      }
    }
    this.srcu.readUnlock(idx);
    return young;
  }

  /**
   * `__mmu_notifier_arch_invalidate_secondary_tlbs`: every list subscriber's hook; cannot sleep.
   * A hook that spin-waits for its hardware (an IOMMU's `qi_submit_sync`) returns a generator:
   * from that hook on the walk continues as a generator the caller runs, still inside the SRCU
   * read section and the no-sleep section; otherwise nothing is returned.
   */
  protected override __archInvalidateSecondaryTlbs(
    mm: MmStruct,
    start: number,
    end: number,
  ): TaskGen<void> | undefined {
    const subs = this.subscriptions(mm)!;
    if (subs.list.length === 0) return undefined;
    const idx = this.srcu.readLock();
    const sched = this.kernel.scheduler;
    sched.enterNoSleep('arch_invalidate_secondary_tlbs');
    const list = subs.list;
    for (let i = 0; i < list.length; i++) {
      const sub = list[i]!;
      const r = sub.ops.archInvalidateSecondaryTlbs?.(sub, mm, start, end);
      if (r !== undefined && isTaskGen(r))
        return this.archInvalidateSpin(r, list.slice(i + 1), mm, start, end, idx);
    }
    sched.leaveNoSleep();
    this.srcu.readUnlock(idx);
    return undefined;
  }

  /** The rest of {@link __archInvalidateSecondaryTlbs} once a hook spin-waits. */
  private *archInvalidateSpin(
    first: TaskGen<void>,
    rest: readonly MmuNotifier[],
    mm: MmStruct,
    start: number,
    end: number,
    idx: number,
  ): TaskGen<void> {
    yield* first;
    for (const sub of rest) {
      const r = sub.ops.archInvalidateSecondaryTlbs?.(sub, mm, start, end);
      if (r !== undefined && isTaskGen(r)) yield* r;
    }
    this.kernel.scheduler.leaveNoSleep();
    this.srcu.readUnlock(idx);
  }

  /**
   * `__mmu_notifier_release` (exit): the interval RELEASE pass over [0, TASK_SIZE) (interval
   * subscriptions stay in the tree), then `release` of every list subscriber and their removal
   * from the list, then a grace period so a concurrent unregister's release has finished before
   * exit_mmap unmaps anything.
   */
  protected override *__release(mm: MmStruct): TaskGen<void> {
    const subs = this.subscriptions(mm)!;
    if (subs.hasItree) {
      const range = new NotifierRange('RELEASE', mm, 0, TASK_SIZE);
      range.flags = 1;
      const ok = yield* this.itreeInvalidate(subs, range);
      if (ok !== 0)
        this.kernel.report(
          'mmn-release-failed',
          `interval RELEASE pass on ${mm.toString()} failed with ${ok}`,
        );
      this.invEnd(subs);
    }
    if (subs.list.length > 0) {
      const idx = this.srcu.readLock();
      for (const sub of subs.list) {
        if (sub.ops.release !== undefined)
          yield* this.callList(sub, 'release', sub.ops.release(sub, mm));
      }
      for (const sub of subs.list) sub.hashed = false;
      subs.list = [];
      this.srcu.readUnlock(idx);
      yield* this.srcu.synchronize();
    }
  }

  // --- helpers -------------------------------------------------------------------------------

  private core(): MmCore {
    if (this.mmCore === null)
      throw new Error('MmuNotifierSubsystem: not attached to the memory model');
    return this.mmCore;
  }

  private assertMmapWrite(mm: MmStruct, what: string): void {
    if (!mm.mmapLock.heldByCurrent('write')) {
      this.kernel.report(
        'mmap-lock-not-held',
        `${what} on ${mm.toString()} without mmap_lock held for write (mmap_assert_write_locked)`,
      );
    }
  }

  /** Reports a call that must not be made from a notifier callback; true if it was. */
  private checkNotInCallback(what: string, invariant: number): boolean {
    const t = this.kernel.scheduler.currentOrNull;
    if (t === null || (this.callbackDepth[t.id] ?? 0) === 0) return false;
    this.kernel.report(
      'mmn-call-from-callback',
      `${what} called from inside an MMU notifier callback: it would wait for its own callback to finish (deadlock; invariant ${invariant})`,
    );
    return true;
  }

  private emitState(subs: MmuNotifierSubscriptions): void {
    const bus = this.kernel.bus;
    if (!bus.wants('mmn.itree.state')) return;
    const state: ItreeState = subs.state;
    bus.emit('mmn.itree.state', {
      mm: subs.mm.id,
      seq: subs.invalidateSeq,
      active: subs.activeInvalidateRanges,
      state,
    });
  }

  private emit<K extends SimEventType & `mmn.${string}`>(type: K, data: SimEventMap[K]): void {
    const bus = this.kernel.bus;
    if (bus.wants(type)) bus.emit(type, data);
  }
}
