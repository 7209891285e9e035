/**
 * `pnpm bench iommu`: the IOMMU model's hot paths — strict DMA map/unmap of 4 KiB pages, SVA DMA
 * on ATC hits, and page request → response round trips.
 */
import { Simulation } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { iommuPlugin, IommuService } from '@mmnsim/hw-iommu';
import { Map_, mmPlugin, MmService, PAGE_SIZE, Prot } from '@mmnsim/mm';
import type { Metric } from './metric.js';

function sim(frames: number): Simulation {
  return Simulation.create({
    seed: 1,
    cpus: 2,
    devices: ['dmar0', 'accel0'],
    log: false,
    maxSteps: 1_000_000_000,
    plugins: [mmPlugin({ totalFrames: frames }), iommuPlugin()],
  });
}

function runClean(s: Simulation, what: string): void {
  const r = s.run();
  if (r.reason !== 'done' || r.violations.length > 0)
    throw new Error(`${what} ended with ${r.reason} ${r.violations.map((v) => v.kind).join(' ')}`);
}

/**
 * `iommu.dma_map_unmap_per_s`: `dma_map_page` + strict `dma_unmap_page` pairs of one 4 KiB page
 * per second — IOVA allocation (rcache), I/O PTE set and clear, the IOTLB invalidation queued
 * with a wait descriptor, the queue engine executing both and the CPU spinning until it did,
 * the IOVA freed. Best of five rounds of 100,000 after a warm-up round, in one simulation.
 */
function mapUnmapRate(): Metric {
  const s = sim(1024);
  const iommu = s.get(IommuService);
  iommu.attach('nic0', { ats: false });
  const agent = iommu.agent;
  const core = s.get(MmService).core;
  const n = 100_000;
  const times: number[] = [];
  s.spawn('bench', 0, function* (): TaskGen<void> {
    const p = yield* core.allocFrame('anon');
    for (let round = 0; round < 6; round++) {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        const dma = agent.mapPage('nic0', p, 'bidirectional');
        yield* agent.unmapPage('nic0', dma, 'bidirectional');
      }
      times.push(performance.now() - t0);
    }
  });
  runClean(s, 'map/unmap bench');
  const best = Math.min(...times.slice(1));
  return {
    name: 'iommu.dma_map_unmap_per_s',
    value: Math.round(n / (best / 1000)),
    unit: 'pairs/s',
  };
}

/**
 * `iommu.sva_dma_page_per_s`: SVA DMA accesses per second that hit the device's ATC — a 4-byte
 * read with PASID of one of 64 populated pages of a bound process, each access a scheduling
 * point of the device. Best of five rounds of 200,000 after a warm-up round.
 */
function svaDmaRate(): Metric {
  const s = sim(1024);
  const iommu = s.get(IommuService);
  const dev = iommu.createDevice('accel0');
  const proc = s.get(MmService).createProcess('bench');
  const n = 200_000;
  const times: number[] = [];
  s.spawn('app', 0, function* (): TaskGen<void> {
    const a = yield* proc.mmap(
      0,
      64 * PAGE_SIZE,
      Prot.READ | Prot.WRITE,
      Map_.PRIVATE | Map_.ANONYMOUS,
    );
    for (let i = 0; i < 64; i++) yield* proc.store(a + i * PAGE_SIZE, i);
    const pasid = yield* iommu.bind('accel0', proc.mm);
    const t = s.spawn('accel', 'accel0', function* () {
      for (let round = 0; round < 6; round++) {
        const t0 = performance.now();
        for (let i = 0; i < n; i++) yield* dev.dma(pasid, a + (i & 63) * PAGE_SIZE, false);
        times.push(performance.now() - t0);
      }
    });
    yield* s.scheduler.join(t);
    yield* iommu.unbind('accel0', proc.mm);
  });
  runClean(s, 'sva bench');
  const best = Math.min(...times.slice(1));
  return {
    name: 'iommu.sva_dma_page_per_s',
    value: Math.round(n / (best / 1000)),
    unit: 'accesses/s',
  };
}

/**
 * `iommu.prq_fault_per_s`: page request → response round trips per second — a device write to
 * a page of a bound process that is not populated: the failed translation, the page request,
 * the page-request thread, the I/O page-fault kworker's `handle_mm_fault`, the SUCCESS response,
 * the retried translation and the ATC fill. 20,000 pages per round, best of three after a
 * warm-up round, each round in a fresh mapping.
 */
function prqRate(): Metric {
  const pages = 20_000;
  const s = sim(pages + 2048);
  const iommu = s.get(IommuService);
  const dev = iommu.createDevice('accel0');
  const proc = s.get(MmService).createProcess('bench');
  const times: number[] = [];
  s.spawn('app', 0, function* (): TaskGen<void> {
    const len = pages * PAGE_SIZE;
    const pasid = yield* iommu.bind('accel0', proc.mm);
    for (let round = 0; round < 4; round++) {
      const a = yield* proc.mmap(0, len, Prot.READ | Prot.WRITE, Map_.PRIVATE | Map_.ANONYMOUS);
      const t = s.spawn('accel', 'accel0', function* () {
        const t0 = performance.now();
        for (let i = 0; i < pages; i++) yield* dev.dma(pasid, a + i * PAGE_SIZE, true, i);
        times.push(performance.now() - t0);
      });
      yield* s.scheduler.join(t);
      yield* proc.munmap(a, len);
    }
    yield* iommu.unbind('accel0', proc.mm);
  });
  runClean(s, 'prq bench');
  if (dev.stats.pageRequests < 4 * pages) throw new Error('prq bench: the pages did not fault');
  const best = Math.min(...times.slice(1));
  return {
    name: 'iommu.prq_fault_per_s',
    value: Math.round(pages / (best / 1000)),
    unit: 'faults/s',
  };
}

/** The IOMMU suite. */
export function benchIommu(): Metric[] {
  return [mapUnmapRate(), svaDmaRate(), prqRate()];
}
