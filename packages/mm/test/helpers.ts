import { Simulation } from '@mmnsim/core';
import type { StrategySpec } from '@mmnsim/core';
import { mmPlugin, MmService } from '@mmnsim/mm';
import type { Process } from '@mmnsim/mm';

/** A simulation with the memory model, its service and one process. */
export function mmSim(
  options: {
    seed?: number;
    cpus?: number;
    totalFrames?: number;
    gatherMaxPages?: number;
    strategy?: StrategySpec;
    log?: boolean;
  } = {},
): { sim: Simulation; svc: MmService; proc: Process } {
  const sim = Simulation.create({
    seed: options.seed ?? 1,
    cpus: options.cpus ?? 1,
    strategy: options.strategy ?? 'round-robin',
    log: options.log ?? true,
    plugins: [
      mmPlugin({
        totalFrames: options.totalFrames ?? 1024,
        ...(options.gatherMaxPages !== undefined ? { gatherMaxPages: options.gatherMaxPages } : {}),
      }),
    ],
  });
  const svc = sim.get(MmService);
  return { sim, svc, proc: svc.createProcess('app') };
}
