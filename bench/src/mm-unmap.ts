import { Simulation } from '@mmnsim/core';
import { Map_, mmPlugin, MmService, PAGE_SIZE, Prot } from '@mmnsim/mm';
import type { Metric } from './metric.js';

/** Wall-clock milliseconds of the two phases of one run. */
interface Phases {
  touch: number;
  munmap: number;
}

/**
 * One simulation (no notifier subscribers, log off, lockdep on): map `pages` anonymous pages,
 * write one word in each (a write fault per page), then munmap the whole range. The phases are
 * timed separately from inside the task, so the munmap figure excludes the touch phase and the
 * simulation's setup.
 */
function touchThenMunmap(pages: number): Phases {
  const sim = Simulation.create({
    seed: 1,
    log: false,
    lockdep: true,
    maxSteps: 100_000_000,
    plugins: [mmPlugin({ totalFrames: pages + 4096 })],
  });
  const proc = sim.get(MmService).createProcess('bench');
  const out: Phases = { touch: 0, munmap: 0 };
  sim.spawn('bench', 0, function* () {
    const len = pages * PAGE_SIZE;
    const a = yield* proc.mmap(0, len, Prot.READ | Prot.WRITE, Map_.PRIVATE | Map_.ANONYMOUS);
    if (a < 0) throw new Error(`mmap failed: ${a}`);
    const t0 = performance.now();
    for (let i = 0; i < pages; i++) {
      const r = yield* proc.store(a + i * PAGE_SIZE, i);
      if (r !== 0) throw new Error(`store failed at page ${i}: ${r}`);
    }
    const t1 = performance.now();
    const r = yield* proc.munmap(a, len);
    const t2 = performance.now();
    if (r !== 0) throw new Error(`munmap failed: ${r}`);
    out.touch = t1 - t0;
    out.munmap = t2 - t1;
  });
  const r = sim.run();
  if (r.reason !== 'done') throw new Error(`munmap bench ended with ${r.reason}`);
  return out;
}

/**
 * `mm.munmap_pages_per_s`: munmap of a large touched anonymous range (zap, gather batches with
 * their forced flushes, page-table freeing, final flush), per page of munmap time only. Best of
 * five rounds after a warm-up, like `bestRate`.
 */
export function benchMunmap(): Metric[] {
  const pages = 131_072; // 512 MiB
  touchThenMunmap(pages);
  let munmap = Infinity;
  for (let i = 0; i < 5; i++) munmap = Math.min(munmap, touchThenMunmap(pages).munmap);
  // The fault rate of the touch phase is mm.fault_per_s (bench/src/mm.ts).
  return [
    { name: 'mm.munmap_pages_per_s', value: Math.round(pages / (munmap / 1000)), unit: 'pages/s' },
  ];
}
