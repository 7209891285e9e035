/**
 * Transparent huge pages: how fast a PMD-leaf fault is, and what the model costs per mapped
 * page when the pages are huge. Its own suite (`pnpm bench thp`) next to the 4 KiB one of mm.ts.
 */
import { Simulation } from '@mmnsim/core';
import { MADV_HUGEPAGE, Map_, mmPlugin, MmService, PAGE_SIZE, PMD_SIZE, Prot } from '@mmnsim/mm';
import { bestRate, collector } from './metric.js';
import type { Metric } from './metric.js';

/**
 * One process maps `blocks` × 2 MiB with MADV_HUGEPAGE and stores into `perBlock` pages of each
 * block (the first store is the huge fault: a 512-frame folio, a deposited PTE table, the PMD
 * leaf; the others walk the leaf). Frames: the blocks, their tables and a margin. Log off.
 */
function touchHuge(blocks: number, perBlock: number): Simulation {
  const sim = Simulation.create({
    seed: 1,
    log: false,
    plugins: [mmPlugin({ totalFrames: (blocks + 2) * 512 + 2 * blocks + 64 })],
  });
  const proc = sim.get(MmService).createProcess('bench');
  sim.spawn('bench', 0, function* () {
    const len = blocks * PMD_SIZE;
    const a = yield* proc.mmap(
      0x40000000,
      len,
      Prot.READ | Prot.WRITE,
      Map_.PRIVATE | Map_.ANONYMOUS | Map_.FIXED,
    );
    yield* proc.madvise(a, len, MADV_HUGEPAGE);
    const step = 512 / perBlock;
    for (let b = 0; b < blocks; b++)
      for (let i = 0; i < perBlock; i++)
        yield* proc.store(a + b * PMD_SIZE + i * step * PAGE_SIZE, b + i);
  });
  return sim;
}

function run(sim: Simulation): void {
  const r = sim.run();
  if (r.reason !== 'done' || r.violations.length > 0)
    throw new Error(
      `thp bench ended with ${r.reason} ${r.violations.map((v) => v.kind).join(' ')}`,
    );
}

/** `mm.thp_fault_per_s`: huge-page write faults per second (1,024 blocks = 2 GiB, one store each). */
function thpFaultRate(): Metric {
  const blocks = 1024;
  const value = bestRate(blocks, () => run(touchHuge(blocks, 1)), 3);
  return { name: 'mm.thp_fault_per_s', value, unit: 'faults/s' };
}

/**
 * `mm.bytes_per_mapped_page` with huge pages in use: as mm.ts's figure (JS heap plus array
 * buffers grown per mapped, touched page), for 1 Mi pages mapped by 2,048 PMD leaves, every
 * page stored to once.
 */
function bytesPerHugePage(): Metric {
  const blocks = 2048;
  const gc = collector();
  const sim = touchHuge(blocks, 512);
  gc();
  gc();
  const m0 = process.memoryUsage();
  run(sim);
  gc();
  gc();
  const m1 = process.memoryUsage();
  const grown = m1.heapUsed - m0.heapUsed + (m1.arrayBuffers - m0.arrayBuffers);
  return {
    name: 'mm.bytes_per_mapped_page',
    value: Math.round((grown / (blocks * 512)) * 10) / 10,
    unit: 'bytes/page (huge pages)',
  };
}

/** Figures of transparent huge pages. */
export function benchThp(): Metric[] {
  return [thpFaultRate(), bytesPerHugePage()];
}
