import { Mutex, Simulation } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import {
  Map_,
  mmPlugin,
  MmService,
  MmuIntervalNotifier,
  MmuNotifier,
  MmuNotifierSubsystem,
  NotifierRange,
  PAGE_SIZE,
  Prot,
} from '@mmnsim/mm';
import type { MmuIntervalNotifierOps, MmuNotifierOps } from '@mmnsim/mm';
import type { Metric } from './metric.js';

/** Interval subscriptions of the invalidation bench. */
const INTERVAL_SUBS = 10_000;
/** Each one covers 64 KiB; they sit side by side from `BASE`. */
const SUB_BYTES = 16 * PAGE_SIZE;
const BASE = 0x1_0000_0000;
/** Classic subscriptions of the invalidation bench. */
const CLASSIC_SUBS = 10;
/** Start+end pairs per timed round. */
const PAIRS = 200_000;

/** A driver's interval op: set_seq under its mutex, as the pattern asks. */
function intervalOps(mmn: MmuNotifierSubsystem, lock: Mutex): MmuIntervalNotifierOps {
  return {
    name: 'bench-interval',
    *invalidate(sub, _range, curSeq) {
      yield* lock.lock();
      mmn.setSeq(sub, curSeq);
      lock.unlock();
      return true;
    },
  };
}

/**
 * A classic subscriber that counts its open windows, as KVM does. `sleeping` writes the callbacks
 * as generator functions (what a subscriber that may sleep must do); otherwise they are plain
 * functions, the minimal form for a subscriber that never sleeps.
 */
function classicOps(sleeping: boolean): MmuNotifierOps {
  const windows = { open: 0 };
  if (sleeping) {
    return {
      name: 'bench-classic-gen',
      *invalidateRangeStart() {
        windows.open++;
        return 0;
      },
      *invalidateRangeEnd() {
        windows.open--;
      },
    };
  }
  return {
    name: 'bench-classic',
    invalidateRangeStart() {
      windows.open++;
      return 0;
    },
    invalidateRangeEnd() {
      windows.open--;
    },
  };
}

function check(sim: Simulation, what: string): void {
  const r = sim.run();
  if (r.reason !== 'done' || r.violations.length > 0)
    throw new Error(`${what} ended with ${r.reason} ${r.violations.map((v) => v.kind).join(' ')}`);
}

/**
 * `mm.notifier.invalidate_per_s`: `mmu_notifier_invalidate_range_start` + `_end` pairs per
 * second, each over 16 pages at a pseudo-random page offset, against 10,000 interval
 * subscriptions of 64 KiB side by side (a range meets one or two of them) plus 10 classic
 * subscriptions; lockdep on, log off. Best of five timed rounds after a warm-up round, timed
 * inside one simulation so the 10,000 inserts are not counted.
 */
function invalidateRate(sleepingClassic: boolean): Metric {
  const sim = Simulation.create({
    seed: 1,
    log: false,
    lockdep: true,
    maxSteps: 100_000_000,
    plugins: [mmPlugin({ totalFrames: 4096 })],
  });
  const mmn = sim.get(MmuNotifierSubsystem);
  const proc = sim.get(MmService).createProcess('bench');
  const lock = new Mutex(sim.kernel, 'bench->mutex');
  const rounds: number[] = [];
  sim.spawn('bench', 0, function* (): TaskGen<void> {
    const mm = proc.mm;
    const iops = intervalOps(mmn, lock);
    for (let i = 0; i < INTERVAL_SUBS; i++) {
      const r = yield* mmn.intervalInsert(
        new MmuIntervalNotifier(iops),
        mm,
        BASE + i * SUB_BYTES,
        SUB_BYTES,
      );
      if (r !== 0) throw new Error(`insert failed: ${r}`);
    }
    for (let i = 0; i < CLASSIC_SUBS; i++) {
      const r = yield* mmn.register(new MmuNotifier(classicOps(sleepingClassic)), mm);
      if (r !== 0) throw new Error(`register failed: ${r}`);
    }
    const pages = (INTERVAL_SUBS * SUB_BYTES) / PAGE_SIZE - 16;
    for (let round = 0; round < 6; round++) {
      const t0 = performance.now();
      let x = round * 7919;
      for (let j = 0; j < PAIRS; j++) {
        x = (x * 1103515245 + 12345) % 2147483648;
        const start = BASE + (x % pages) * PAGE_SIZE;
        const range = new NotifierRange('CLEAR', mm, start, start + 16 * PAGE_SIZE);
        yield* mmn.invalidateRangeStart(range);
        yield* mmn.invalidateRangeEnd(range);
      }
      rounds.push(performance.now() - t0);
    }
  });
  check(sim, 'invalidate bench');
  const best = Math.min(...rounds.slice(1));
  return {
    name: sleepingClassic
      ? 'mm.notifier.invalidate_per_s_generator_callbacks'
      : 'mm.notifier.invalidate_per_s',
    value: Math.round(PAIRS / (best / 1000)),
    unit: 'start+end/s',
  };
}

/**
 * One simulation (log off, lockdep on): map `pages` anonymous pages, subscribe one classic and
 * one interval subscriber over the range, write one word in each page, then munmap the whole
 * range; returns the wall-clock milliseconds of the munmap alone, timed from inside the task.
 */
function subscribedMunmap(pages: number): number {
  const sim = Simulation.create({
    seed: 1,
    log: false,
    lockdep: true,
    maxSteps: 100_000_000,
    plugins: [mmPlugin({ totalFrames: pages + 4096 })],
  });
  const mmn = sim.get(MmuNotifierSubsystem);
  const proc = sim.get(MmService).createProcess('bench');
  const lock = new Mutex(sim.kernel, 'bench->mutex');
  let ms = 0;
  sim.spawn('bench', 0, function* (): TaskGen<void> {
    const len = pages * PAGE_SIZE;
    const a = yield* proc.mmap(0, len, Prot.READ | Prot.WRITE, Map_.PRIVATE | Map_.ANONYMOUS);
    if (a < 0) throw new Error(`mmap failed: ${a}`);
    if ((yield* mmn.register(new MmuNotifier(classicOps(true)), proc.mm)) !== 0)
      throw new Error('register failed');
    const sub = new MmuIntervalNotifier(intervalOps(mmn, lock));
    if ((yield* mmn.intervalInsert(sub, proc.mm, a, len)) !== 0) throw new Error('insert failed');
    for (let i = 0; i < pages; i++) {
      const r = yield* proc.store(a + i * PAGE_SIZE, i);
      if (r !== 0) throw new Error(`store failed at page ${i}: ${r}`);
    }
    const t0 = performance.now();
    const r = yield* proc.munmap(a, len);
    ms = performance.now() - t0;
    if (r !== 0) throw new Error(`munmap failed: ${r}`);
  });
  check(sim, 'subscribed munmap bench');
  return ms;
}

/**
 * `mm.munmap_pages_per_s_subscribed`: munmap of a touched 512 MiB anonymous range with one
 * classic and one interval subscriber covering it — one UNMAP window around the zap, gather
 * flushes (each calling the secondary-TLB hook over the list), page-table freeing, final flush —
 * per page of munmap time only. Best of five rounds after a warm-up, as `mm.munmap_pages_per_s`
 * (bench/src/mm-unmap.ts) without subscribers.
 */
function munmapSubscribedRate(): Metric {
  const pages = 131_072;
  subscribedMunmap(pages);
  let best = Infinity;
  for (let i = 0; i < 5; i++) best = Math.min(best, subscribedMunmap(pages));
  return {
    name: 'mm.munmap_pages_per_s_subscribed',
    value: Math.round(pages / (best / 1000)),
    unit: 'pages/s',
  };
}

/** The notifier subsystem's figures: invalidation pairs per second and subscribed munmap. */
export function benchMmn(): Metric[] {
  return [invalidateRate(false), invalidateRate(true), munmapSubscribedRate()];
}
