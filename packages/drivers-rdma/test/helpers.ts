// Shared set-up of the rdma tests: a simulation with the memory model, the rdma plugin, one NIC
// on a device engine, one process, and the notifier oracles watching the NIC.
import { expect } from '@jest/globals';
import { Simulation } from '@mmnsim/core';
import type { SimEventMap, StrategySpec, Strategy, Task } from '@mmnsim/core';
import { mmPlugin, MmService, notifierOracles } from '@mmnsim/mm';
import type { Process } from '@mmnsim/mm';
import { rdmaPlugin, RdmaService } from '@mmnsim/drivers-rdma';
import type { RdmaBug, RdmaDevice, QueuePair } from '@mmnsim/drivers-rdma';

/** Options of {@link rdmaSim}. */
export interface RdmaSimOptions {
  seed?: number;
  cpus?: number;
  totalFrames?: number;
  strategy?: StrategySpec | Strategy;
  log?: boolean;
  stopOnViolation?: boolean;
  bugs?: RdmaBug[];
  memlockLimitPages?: number;
  odpFaultTimeoutNs?: number;
  oracles?: boolean;
  maxSteps?: number;
}

/** A simulation with mm + rdma, a NIC `mlx5_0` on engine `nic0`, a process and one QP. */
export function rdmaSim(o: RdmaSimOptions = {}): {
  sim: Simulation;
  mm: MmService;
  rdma: RdmaService;
  nic: RdmaDevice;
  proc: Process;
  qp: QueuePair;
} {
  const sim = Simulation.create({
    seed: o.seed ?? 1,
    cpus: o.cpus ?? 2,
    devices: ['nic0'],
    strategy: o.strategy ?? 'round-robin',
    log: o.log ?? true,
    stopOnViolation: o.stopOnViolation ?? true,
    ...(o.maxSteps !== undefined ? { maxSteps: o.maxSteps } : {}),
    plugins: [
      mmPlugin({ totalFrames: o.totalFrames ?? 1024 }),
      rdmaPlugin({
        ...(o.memlockLimitPages !== undefined ? { memlockLimitPages: o.memlockLimitPages } : {}),
        ...(o.odpFaultTimeoutNs !== undefined ? { odpFaultTimeoutNs: o.odpFaultTimeoutNs } : {}),
      }),
    ],
  });
  const mm = sim.get(MmService);
  const rdma = sim.get(RdmaService);
  const nic = rdma.createDevice('mlx5_0', { engine: 'nic0', bugs: o.bugs ?? [] });
  if (o.oracles ?? true)
    for (const x of notifierOracles(sim, rdma.oracleOptions())) sim.addOracle(x);
  return { sim, mm, rdma, nic, proc: mm.createProcess('app'), qp: nic.createQp() };
}

/** Runs the simulation and expects a clean end. */
export function runOk(sim: Simulation): void {
  const r = sim.run();
  expect(r.violations.map((v) => `${v.kind}: ${v.message}`)).toEqual([]);
  expect(r.reason).toBe('done');
}

/** The logged events of one type with their typed payloads. */
export function ofType<K extends keyof SimEventMap>(sim: Simulation, type: K) {
  return sim.log!.ofType(type).map(({ seq, task, data }) => ({ seq, task, data }));
}

/**
 * A strategy for scripted interleavings: at each choice it runs the first task of the candidates
 * whose name is listed in `prefer()` (in that order), else the lowest id. The test changes what
 * `prefer()` returns as the run goes (usually from a bus subscription).
 */
export function scripted(prefer: () => readonly string[]): Strategy {
  return {
    name: 'scripted',
    pick(candidates: readonly Task[]): Task {
      for (const name of prefer()) {
        const t = candidates.find((c) => c.name === name);
        if (t !== undefined) return t;
      }
      return candidates.reduce((a, b) => (b.id < a.id ? b : a));
    },
    describe: () => ({ kind: 'scripted' }),
  };
}
