import { Simulation } from '@mmnsim/core';
import { Map_, mmPlugin, MmService, PAGE_SIZE, Prot } from '@mmnsim/mm';
import { bestRate, collector } from './metric.js';
import type { Metric } from './metric.js';

/**
 * A simulation with one process that maps `pages` anonymous pages and stores one word into each
 * (one write fault per page: a fresh zeroed frame, the PTE tables on the way). Frames: the
 * pages, their PTE tables (one per 512 pages) and a margin, so reclaim never runs. Log off.
 */
function touchPages(pages: number, lockdep: boolean): Simulation {
  const sim = Simulation.create({
    seed: 1,
    log: false,
    lockdep,
    plugins: [mmPlugin({ totalFrames: pages + Math.ceil(pages / 512) + 64 })],
  });
  const proc = sim.get(MmService).createProcess('bench');
  sim.spawn('bench', 0, function* () {
    const a = yield* proc.mmap(
      0,
      pages * PAGE_SIZE,
      Prot.READ | Prot.WRITE,
      Map_.PRIVATE | Map_.ANONYMOUS,
    );
    for (let i = 0; i < pages; i++) yield* proc.store(a + i * PAGE_SIZE, i);
  });
  return sim;
}

function run(sim: Simulation): void {
  const r = sim.run();
  if (r.reason !== 'done' || r.violations.length > 0)
    throw new Error(`mm bench ended with ${r.reason} ${r.violations.map((v) => v.kind).join(' ')}`);
}

/**
 * `mm.fault_per_s`: anonymous write faults handled per second — one task storing to each page
 * of a fresh 256 Ki-page mapping (1 GiB), lockdep on, log off. Each store is a TLB miss, a
 * `do_user_addr_fault` under `mmap_lock`, `do_anonymous_page` (allocation, PTE lock, PTE set,
 * LRU add) and the retried access.
 */
function faultRate(): Metric {
  const pages = 1 << 18;
  const value = bestRate(pages, () => run(touchPages(pages, true)), 3);
  return { name: 'mm.fault_per_s', value, unit: 'faults/s' };
}

/**
 * `mm.bytes_per_mapped_page`: memory the model needs per mapped, touched anonymous page — 1 Mi
 * pages mapped and stored to once in one process; the growth of the JS heap plus array buffers
 * (page-table pages are `Float64Array`s, outside the JS heap) between the empty simulation and
 * the end of the run, after full collections, divided by the pages. Physical memory's fixed
 * per-frame arrays are allocated when the simulation is created, so they are not counted.
 */
function bytesPerPage(): Metric {
  const pages = 1 << 20;
  const gc = collector();
  const sim = touchPages(pages, true);
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
    value: Math.round((grown / pages) * 10) / 10,
    unit: 'bytes/page',
  };
}

/** Figures of the memory model. */
export function benchMm(): Metric[] {
  return [faultRate(), bytesPerPage()];
}
