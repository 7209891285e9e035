/**
 * The cache model and the GART (issue 14): `cache.access_per_s` (kernel loads that hit lines
 * through the write-back direct map), `gart.map_per_s` (`gart_map_page` + `gart_unmap_page`
 * pairs, full flush policy: one GATT write, one flush per map), and the cost of the cache model
 * on `explore.schedules_per_s`: the bench's ODP fault-vs-munmap campaign with the cache model
 * attached (its oracles too) vs not, and their ratio.
 */
import { explore, Simulation } from '@mmnsim/core';
import type { Scenario } from '@mmnsim/core';
import { GartId, iommuPlugin } from '@mmnsim/hw-iommu';
import { CacheModel, cacheOracles, mmPlugin, MmService, WORDS_PER_PAGE } from '@mmnsim/mm';
import { odpFaultVsMunmap } from './explore.js';
import { bestRate } from './metric.js';
import type { Metric } from './metric.js';

function cacheAccessRate(): number {
  const sim = Simulation.create({
    seed: 1,
    cpus: 1,
    devices: ['cache'],
    log: false,
    plugins: [mmPlugin({ totalFrames: 64 })],
  });
  const caches = sim.get(CacheModel);
  caches.configure({ context: 'cache' });
  const phys = sim.get(MmService).core.phys;
  const pfns = [phys.alloc('kernel'), phys.alloc('kernel')];
  for (const p of pfns) for (let w = 0; w < WORDS_PER_PAGE; w++) caches.kload(p, w); // all lines in
  const N = 1_000_000;
  let sink = 0;
  const rate = bestRate(N, () => {
    for (let i = 0; i < N; i++) sink += caches.kload(pfns[i & 1]!, (i * 17) & 1023);
  });
  if (sink < 0) throw new Error('unreachable');
  return rate;
}

function gartMapRate(): number {
  const sim = Simulation.create({
    seed: 1,
    cpus: 1,
    devices: ['cache'],
    log: false,
    plugins: [mmPlugin({ totalFrames: 1024 }), iommuPlugin({ gart: { aperturePages: 512 } })],
  });
  const gart = sim.get(GartId);
  const init = gart.iommu.init();
  for (let r = init.next(); r.done !== true; r = init.next());
  const pfn = sim.get(MmService).core.phys.alloc('anon');
  const N = 200_000;
  return bestRate(N, () => {
    for (let i = 0; i < N; i++) gart.iommu.unmapPage(gart.iommu.mapPage(pfn));
  });
}

/** The bench scenario with the cache model attached (a `cache` device, its oracles). */
function withCache(base: Scenario): Scenario {
  return {
    id: `${base.id}-with-cache`,
    options: () => {
      const o = base.options();
      return { ...o, devices: [...(o.devices ?? []), 'cache'] };
    },
    setup(sim) {
      const caches = sim.get(CacheModel);
      caches.configure({ context: 'cache' });
      for (const o of cacheOracles(caches)) sim.addOracle(o);
      base.setup(sim);
    },
  };
}

/** Best schedules/s of each scenario, rounds alternating so machine load hits both alike. */
function schedulesPerSecond(scenarios: readonly Scenario[]): number[] {
  const best = scenarios.map(() => 0);
  for (const s of scenarios)
    explore(s, { strategy: { kind: 'pct', depth: 3 }, iterations: 200, seed: 7 });
  for (let round = 0; round < 4; round++) {
    scenarios.forEach((s, i) => {
      const t0 = performance.now();
      const r = explore(s, {
        strategy: { kind: 'pct', depth: 3 },
        iterations: 1000,
        seed: round + 1,
      });
      const secs = (performance.now() - t0) / 1000;
      if (r.failures.length > 0)
        throw new Error(`bench scenario failed: ${r.failures[0]!.violations[0]!.kind}`);
      best[i] = Math.max(best[i]!, r.iterations / secs);
    });
  }
  return best;
}

/** The figures listed in the file comment. */
export function benchGart(): Metric[] {
  const [without, attached] = schedulesPerSecond([
    odpFaultVsMunmap(),
    withCache(odpFaultVsMunmap()),
  ]) as [number, number];
  return [
    { name: 'cache.access_per_s', value: cacheAccessRate(), unit: 'accesses/s' },
    { name: 'gart.map_per_s', value: gartMapRate(), unit: 'maps/s' },
    { name: 'explore.schedules_per_s.no_cache', value: Math.round(without), unit: 'schedules/s' },
    { name: 'explore.schedules_per_s.cache', value: Math.round(attached), unit: 'schedules/s' },
    {
      name: 'explore.cache_model_ratio',
      value: Math.round((attached / without) * 1000) / 1000,
      unit: 'attached/not',
    },
  ];
}
