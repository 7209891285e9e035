// Exploration acceptance of the SVA model (drivers/iommu/intel/svm.c, iommu-sva.c): an ATS+PRI
// accelerator reads and writes a process's pages while the process unmaps and re-maps them,
// changes their protection, forks (COW), kswapd reclaims, and the process exits with the device
// still bound. 2,000 PCT schedules with the notifier oracles and the iommu oracle find nothing.
import { describe, expect, it } from '@jest/globals';
import { explore } from '@mmnsim/core';
import type { Scenario, TaskGen } from '@mmnsim/core';
import { iommuPlugin, IommuService } from '@mmnsim/hw-iommu';
import { Map_, mmPlugin, MmService, notifierOracles, PAGE_SIZE, Prot } from '@mmnsim/mm';

const RW = Prot.READ | Prot.WRITE;
const ANON = Map_.PRIVATE | Map_.ANONYMOUS | Map_.FIXED;
const BASE = 0x40000000;
const PAGES = 3;

const totals = { runs: 0, dma: 0, atcHits: 0, pageRequests: 0, atsInvalidations: 0, faults: 0 };

const scenario: Scenario = {
  id: 'sva-correct-composed',
  options: () => ({
    cpus: 2,
    devices: ['dmar0', 'accel0'],
    log: false,
    plugins: [mmPlugin({ totalFrames: 64, reclaimBatch: 2 }), iommuPlugin()],
  }),
  setup(sim) {
    const iommu = sim.get(IommuService);
    const dev = iommu.createDevice('accel0');
    for (const o of notifierOracles(sim, { mmus: iommu.secondaryMmus() })) sim.addOracle(o);
    const svc = sim.get(MmService);
    const proc = svc.createProcess('app');
    sim.spawn('app', 0, function* (): TaskGen<void> {
      yield* proc.mmap(BASE, PAGES * PAGE_SIZE, RW, ANON);
      for (let p = 0; p < PAGES; p++) yield* proc.store(BASE + p * PAGE_SIZE, p + 1);
      const pasid = yield* iommu.bind('accel0', proc.mm);
      const accel = sim.spawn('accel', 'accel0', function* () {
        for (let i = 0; i < 8; i++)
          yield* dev.dma(pasid, BASE + (i % PAGES) * PAGE_SIZE, i % 3 === 2, i);
      });
      const kswapd = sim.spawn('kswapd', 1, function* () {
        yield* svc.reclaim(2);
      });
      yield* proc.munmap(BASE + PAGE_SIZE, PAGE_SIZE);
      yield* proc.mmap(BASE + PAGE_SIZE, PAGE_SIZE, RW, ANON);
      yield* proc.mprotect(BASE, PAGES * PAGE_SIZE, Prot.READ);
      yield* proc.mprotect(BASE, PAGES * PAGE_SIZE, RW);
      const child = yield* proc.fork('child');
      if (typeof child !== 'number') yield* child.exit();
      yield* proc.store(BASE, 200); // COW break in the parent
      yield* sim.scheduler.join(kswapd);
      yield* proc.exit(); // with the device still bound: release tears the PASID down
      yield* sim.scheduler.join(accel);
      if ((yield* iommu.unbind('accel0', proc.mm)) !== 0) throw new Error('unbind failed');
      totals.runs++;
      totals.dma += dev.stats.dma;
      totals.atcHits += dev.stats.atcHits;
      totals.pageRequests += dev.stats.pageRequests;
      totals.atsInvalidations += dev.stats.atsInvalidations;
      totals.faults += dev.stats.faults;
    });
  },
};

describe('exploration: the correct SVA device composed with munmap, mprotect, fork/COW, reclaim and exit', () => {
  it('2,000 PCT(depth 3) schedules find no violation, and the traffic exercised ATC hits, page requests and ATS invalidations', () => {
    const report = explore(scenario, {
      strategy: { kind: 'pct', depth: 3 },
      iterations: 2000,
      seed: 1,
    });
    expect(report.failures.map((f) => f.violations.map((v) => `${v.kind}: ${v.message}`))).toEqual(
      [],
    );
    expect(report.iterations).toBe(2000);
    expect(totals.runs).toBeGreaterThanOrEqual(2000);
    expect(totals.atcHits).toBeGreaterThan(0);
    expect(totals.pageRequests).toBeGreaterThan(0);
    expect(totals.atsInvalidations).toBeGreaterThan(0);
    expect(totals.faults).toBeGreaterThan(0); // DMA after exit faults
  });
});
