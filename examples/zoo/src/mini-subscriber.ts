/**
 * A minimal classic MMU-notifier subscriber (a device that drops its translations in
 * `invalidate_range_start`) with the lifecycle and context mistakes drivers make: sleeping in a
 * non-blockable start, a failing start that also has an end, unregistering from release, and a
 * release that is not idempotent. (Holding a callback lock across a reclaiming allocation is the
 * ODP driver's variant: in a list callback the lock is taken inside the notifier SRCU read
 * section, a recursive-read acquisition, so lockdep — the model's as the kernel's — sees the
 * inversion through interval callbacks, which run outside SRCU.)
 */
import { definePlugin, Errno, Kernel, KernelBug, Mutex, serviceId } from '@mmnsim/core';
import type { Plugin, TaskGen } from '@mmnsim/core';
import { MmuNotifier, MmuNotifierSubsystem } from '@mmnsim/mm';
import type { MmStruct, MmuNotifierOps, NotifierRange, Process } from '@mmnsim/mm';
import { ContainerModule } from 'inversify';
import { z } from 'zod';

/**
 * The lifecycle and context bugs the zoo plants with a classic list subscriber. Each broken form
 * has a correct counterpart (the same scenario with the rule kept):
 * - `sleep-in-nonblock`: sleeps on its mutex in `invalidate_range_start` even when the range is
 *   not blockable, instead of trylock or `-EAGAIN` (notifier-core.md §2.5, §4.6, §5.1).
 * - `failing-start-with-end`: an `invalidate_range_start` that can return `-EAGAIN` together with
 *   an `invalidate_range_end`, whose pairing the kernel cannot keep (§2.5, invariant 16).
 * - `unregister-from-release`: calls `mmu_notifier_unregister` from `release`, inside the
 *   notifier SRCU read section, which deadlocks in `synchronize_srcu` (§2.1, §3.2, invariant
 *   43).
 * - `release-not-idempotent`: checks that its device context is live before tearing it down
 *   and frees it after, so when exit races unregister both releases pass the check and the
 *   second frees it again (§2.1, invariant 11); the correct form re-checks after the teardown.
 */
export const SUBSCRIBER_BUGS = [
  'none',
  'sleep-in-nonblock',
  'failing-start-with-end',
  'unregister-from-release',
  'release-not-idempotent',
] as const;

/** One of {@link SUBSCRIBER_BUGS}. */
export type SubscriberBug = (typeof SUBSCRIBER_BUGS)[number];

/** The mini subscriber: a lock, a count of invalidations, and state that release frees. */
export class MiniSubscriber {
  /** The driver's lock, taken in start and by its ioctl path. */
  readonly lock: Mutex;
  /** Invalidations seen. */
  invalidations = 0;
  /** Set once release freed the driver's state. */
  freed = false;
  /** The subscription. */
  readonly sub: MmuNotifier;
  private mm: MmStruct | null = null;

  /**
   * @param kernel the kernel services.
   * @param mmn the notifier subsystem.
   * @param bug the planted bug (`'none'`: the correct driver).
   */
  constructor(
    private readonly kernel: Kernel,
    private readonly mmn: MmuNotifierSubsystem,
    readonly bug: SubscriberBug,
  ) {
    this.lock = new Mutex(kernel, 'minidev->lock');
    const ops: MmuNotifierOps = {
      name: 'mini-subscriber',
      invalidateRangeStart: (_s, r) => this.start(r),
      release: (s, mm) => this.release(s, mm),
      // A subscriber whose start can fail must not have an end op (nobody tells it its start
      // failed); the buggy variant has one anyway.
      ...(bug === 'failing-start-with-end' ? { invalidateRangeEnd: () => undefined } : {}),
    };
    this.sub = new MmuNotifier(ops);
  }

  /** Registers on `proc`'s mm. */
  *attach(proc: Process): TaskGen<number> {
    this.mm = proc.mm;
    return yield* this.mmn.register(this.sub, proc.mm);
  }

  /** Unregisters (the driver's close path). */
  *detach(): TaskGen<void> {
    yield* this.mmn.unregister(this.sub, this.mm!);
  }

  private *start(range: NotifierRange): TaskGen<number> {
    if (!range.blockable) {
      if (this.bug === 'failing-start-with-end') return -Errno.EAGAIN; // cannot work without sleeping
      if (this.bug !== 'sleep-in-nonblock') {
        if (!this.lock.tryLock()) return -Errno.EAGAIN;
        this.invalidations++;
        this.lock.unlock();
        return 0;
      }
    }
    yield* this.lock.lock(); // sleeps: only allowed in a blockable range
    this.invalidations++;
    this.lock.unlock();
    return 0;
  }

  private *release(_s: MmuNotifier, mm: MmStruct): TaskGen<void> {
    if (this.bug === 'unregister-from-release') {
      yield* this.mmn.unregister(this.sub, mm);
      return;
    }
    if (this.freed) return;
    yield* this.kernel.scheduler.preempt(); // tearing down the device takes a while
    if (this.freed) {
      // Another release (exit racing unregister) freed the context meanwhile.
      if (this.bug === 'release-not-idempotent')
        throw new KernelBug('mini-subscriber release: double free of the device context');
      return; // idempotent: release may run twice, concurrently
    }
    this.freed = true;
  }
}

/** Token of the mini subscriber. */
export const MiniSubscriberDevice = serviceId<MiniSubscriber>('@mmnsim/zoo:MiniSubscriber');
const MiniSubscriberOptions = serviceId<{ bug: SubscriberBug }>(
  '@mmnsim/zoo:MiniSubscriberOptions',
);

const factory = definePlugin({
  id: 'mini-subscriber',
  requires: ['mm'],
  schema: z.strictObject({ bug: z.enum(SUBSCRIBER_BUGS).default('none') }),
  token: MiniSubscriberOptions,
  module: new ContainerModule(({ bind }) => {
    bind(MiniSubscriberDevice)
      .toResolvedValue(
        (o: { bug: SubscriberBug }, k: Kernel, n: MmuNotifierSubsystem) =>
          new MiniSubscriber(k, n, o.bug),
        [MiniSubscriberOptions, Kernel, MmuNotifierSubsystem],
      )
      .inSingletonScope();
  }),
});

/**
 * The mini subscriber as a plugin; `bug` plants one of {@link SUBSCRIBER_BUGS}.
 * @param options `{ bug }` (default `'none'`).
 */
export function miniSubscriberPlugin(options?: { bug?: SubscriberBug }): Plugin {
  return factory(options);
}
