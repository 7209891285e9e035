/**
 * A secondary MMU whose hardware speculates on the pages it maps (an SGI GRU-like accelerator
 * with its own write-back cache, `drivers/misc/sgi-gru/grutlbpurge.c`): device stores leave
 * dirty lines in the device cache, which CPU cache maintenance does not reach, and the hardware
 * may prefetch any page it holds a translation of. The `->release` comment of
 * `include/linux/mmu_notifier.h` is about exactly this device. Bug flags make the zoo's broken
 * forms.
 */
import { definePlugin, Kernel, serviceId } from '@mmnsim/core';
import type { Plugin, TaskGen } from '@mmnsim/core';
import {
  CacheModelId,
  getUserPages,
  MmService,
  MmuNotifier,
  MmuNotifierSubsystem,
  PAGE_SIZE,
  putPage,
} from '@mmnsim/mm';
import type {
  CacheDomain,
  CacheModel,
  MmCore,
  MmStruct,
  MmuNotifierOps,
  NotifierRange,
  Process,
} from '@mmnsim/mm';
import { ContainerModule } from 'inversify';
import { z } from 'zod';

/**
 * The release bugs the zoo plants; `'none'` tears down and quiesces in `->release`:
 * - `skip-release`: no `->release` op, because every software access has stopped by exit — but
 *   the hardware's translations and dirty lines live on (mmu_notifier.h, `release`).
 * - `late-teardown`: `->release` queues the teardown to a worker and returns, so the mappings
 *   and dirty lines outlive the pages, which exit frees right after release returns.
 */
export const SPEC_MMU_BUGS = ['none', 'skip-release', 'late-teardown'] as const;

/** One of {@link SPEC_MMU_BUGS}. */
export type SpecMmuBug = (typeof SPEC_MMU_BUGS)[number];

/**
 * The speculating secondary MMU: a translation table `va → pfn` filled by GUP (no reference
 * kept, like KVM), its own cache domain, invalidation by an in-progress count plus a sequence
 * (like GRU's `ms_range_active`, with a sequence so a fault that raced an invalidation retries).
 */
export class SpecMmu {
  /** The device's write-back cache. */
  readonly cache: CacheDomain;
  /** Translations: page-aligned va → pfn. */
  readonly tlb = new Map<number, number>();
  /** The subscription. */
  readonly sub: MmuNotifier;
  private mm: MmStruct | null = null;
  private seq = 0;
  private active = 0;

  /**
   * @param kernel the kernel services.
   * @param core the memory model.
   * @param mmn the notifier subsystem.
   * @param caches the cache model.
   * @param name the device (and its execution context).
   * @param bug the planted bug.
   */
  constructor(
    private readonly kernel: Kernel,
    private readonly core: MmCore,
    private readonly mmn: MmuNotifierSubsystem,
    caches: CacheModel,
    readonly name: string,
    readonly bug: SpecMmuBug,
  ) {
    this.cache = caches.deviceDomain(name, name);
    const ops: MmuNotifierOps = {
      name,
      invalidateRangeStart: (_s, r) => this.start(r),
      invalidateRangeEnd: () => {
        this.active--;
      },
      ...(bug === 'skip-release' ? {} : { release: () => this.release() }),
    };
    this.sub = new MmuNotifier(ops);
  }

  /** Binds the device to `proc`'s mm. */
  *attach(proc: Process): TaskGen<number> {
    this.mm = proc.mm;
    return yield* this.mmn.register(this.sub, proc.mm);
  }

  private start(range: NotifierRange): number {
    this.active++;
    this.seq++;
    for (const [va, pfn] of [...this.tlb])
      if (va >= range.start && va < range.end) this.drop(va, pfn);
    return 0;
  }

  /** Drops one translation and quiesces the hardware on it: its lines written back and invalidated. */
  private drop(va: number, pfn: number): void {
    this.tlb.delete(va);
    this.cache.flushPfn(pfn, 'device-flush');
    this.cache.wbMap(pfn, -1);
  }

  /** Drops every translation (the teardown). */
  teardown(): void {
    for (const [va, pfn] of [...this.tlb]) this.drop(va, pfn);
  }

  private *release(): TaskGen<void> {
    if (this.bug === 'late-teardown') {
      // Queued to a worker on CPU 1; exit goes on and frees the pages meanwhile.
      const sched = this.kernel.scheduler;
      sched.spawn(`${this.name}:teardown work`, 1, () => this.lateTeardown());
      return;
    }
    this.teardown();
    yield* this.kernel.scheduler.preempt();
  }

  private *lateTeardown(): TaskGen<void> {
    yield* this.kernel.scheduler.preempt();
    this.teardown();
  }

  /** Translates `va`, faulting it in through GUP; returns the pfn or -1. */
  private *translate(va: number): TaskGen<number> {
    const page = va - (va % PAGE_SIZE);
    for (let tries = 0; tries < 8; tries++) {
      const hit = this.tlb.get(page);
      if (hit !== undefined) return hit;
      const mm = this.mm!;
      const snap = this.seq;
      yield* mm.mmapLock.downRead();
      const pages: number[] = [];
      const n = yield* getUserPages(this.core, mm, page, 1, 0x01, pages);
      mm.mmapLock.upRead();
      if (n !== 1) return -1;
      const pfn = pages[0]!;
      putPage(this.core, pfn);
      if (this.active > 0 || this.seq !== snap) continue; // raced an invalidation: retry
      this.tlb.set(page, pfn);
      this.cache.wbMap(pfn, 1);
      return pfn;
    }
    return -1;
  }

  /** A device store of `value` to word `word` of the page at `va` (a dirty line in the device cache). */
  *write(va: number, word: number, value: number): TaskGen<boolean> {
    const pfn = yield* this.translate(va);
    if (pfn < 0) return false;
    this.cache.store(pfn, word, value);
    return true;
  }
}

/** Token of the speculating secondary MMU. */
export const SpecMmuDevice = serviceId<SpecMmu>('@mmnsim/zoo:SpecMmu');
const SpecMmuOptions = serviceId<{ bug: SpecMmuBug; name: string }>('@mmnsim/zoo:SpecMmuOptions');

const factory = definePlugin({
  id: 'spec-mmu',
  requires: ['mm'],
  schema: z.strictObject({
    bug: z.enum(SPEC_MMU_BUGS).default('none'),
    name: z.string().min(1).default('gru0'),
  }),
  token: SpecMmuOptions,
  module: new ContainerModule(({ bind }) => {
    bind(SpecMmuDevice)
      .toResolvedValue(
        (
          o: { bug: SpecMmuBug; name: string },
          k: Kernel,
          s: MmService,
          n: MmuNotifierSubsystem,
          c: CacheModel,
        ) => new SpecMmu(k, s.core, n, c, o.name, o.bug),
        [SpecMmuOptions, Kernel, MmService, MmuNotifierSubsystem, CacheModelId],
      )
      .inSingletonScope();
  }),
});

/**
 * The speculating secondary MMU as a plugin; `bug` plants one of {@link SPEC_MMU_BUGS}; `name`
 * is the device (a simulation device context).
 * @param options `{ bug, name }` (defaults `'none'`, `'gru0'`).
 */
export function specMmuPlugin(options?: { bug?: SpecMmuBug; name?: string }): Plugin {
  return factory(options);
}
