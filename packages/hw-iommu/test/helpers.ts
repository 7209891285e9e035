// Shared set-up of the hw-iommu tests: a simulation with the memory model, the iommu plugin
// (its hardware on device context dmar0), one SVA accelerator on accel0, a process, and the
// notifier oracles watching the IOTLB and the ATC.
import { expect } from '@jest/globals';
import { Simulation } from '@mmnsim/core';
import type { SimEventMap, StrategySpec } from '@mmnsim/core';
import { mmPlugin, MmService, notifierOracles } from '@mmnsim/mm';
import type { Process } from '@mmnsim/mm';
import { iommuPlugin, IommuService } from '@mmnsim/hw-iommu';
import type { IommuBug, SvaDevice } from '@mmnsim/hw-iommu';

/** Options of {@link iommuSim}. */
export interface IommuSimOptions {
  seed?: number;
  cpus?: number;
  strategy?: StrategySpec;
  log?: boolean;
  bugs?: IommuBug[];
  strict?: boolean;
  flavour?: 'vt-d' | 'smmuv3';
  btm?: boolean;
  ats?: boolean;
  totalFrames?: number;
}

/** mm + iommu with an accelerator `accel0` and a process `app`. */
export function iommuSim(o: IommuSimOptions = {}): {
  sim: Simulation;
  mm: MmService;
  iommu: IommuService;
  dev: SvaDevice;
  proc: Process;
} {
  const sim = Simulation.create({
    seed: o.seed ?? 1,
    cpus: o.cpus ?? 2,
    devices: ['dmar0', 'accel0'],
    strategy: o.strategy ?? 'round-robin',
    log: o.log ?? true,
    plugins: [
      mmPlugin({ totalFrames: o.totalFrames ?? 256 }),
      iommuPlugin({
        bugs: o.bugs ?? [],
        strict: o.strict ?? true,
        flavour: o.flavour ?? 'vt-d',
        btm: o.btm ?? false,
      }),
    ],
  });
  const mm = sim.get(MmService);
  const iommu = sim.get(IommuService);
  const dev = iommu.createDevice('accel0', { ats: o.ats ?? true });
  for (const x of notifierOracles(sim, { mmus: iommu.secondaryMmus() })) sim.addOracle(x);
  return { sim, mm, iommu, dev, proc: mm.createProcess('app') };
}

/** Runs the simulation and expects a clean end. */
export function runOk(sim: Simulation): void {
  const r = sim.run();
  expect(r.violations.map((v) => `${v.kind}: ${v.message}`)).toEqual([]);
  expect(r.reason).toBe('done');
}

/** The logged events of one type. */
export function ofType<K extends keyof SimEventMap>(sim: Simulation, type: K) {
  return sim.log!.ofType(type).map(({ seq, task, data }) => ({ seq, task, data }));
}

/** The logged events as `type` strings with their seq, filtered by `keep`. */
export function trace(
  sim: Simulation,
  keep: (type: string) => boolean,
): { seq: number; type: string; data: unknown }[] {
  return sim
    .log!.events.filter((e) => keep(e.type))
    .map((e) => ({ seq: e.seq, type: e.type, data: e.data }));
}
