import { expect } from '@jest/globals';
import { Simulation } from '@mmnsim/core';
import type { SimEventMap, StrategySpec, TaskGen } from '@mmnsim/core';
import { IdealTlb, mmPlugin, MmService } from '@mmnsim/mm';
import type { MmStruct, Process } from '@mmnsim/mm';

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

/** An ideal TLB whose flushes take a scheduling point, as a shootdown waiting for IPIs does. */
export class IpiTlb extends IdealTlb {
  constructor(private readonly sim: Simulation) {
    super();
  }
  override *flushRange(mm: MmStruct, start: number, end: number, freed: boolean): TaskGen<void> {
    yield* this.sim.scheduler.preempt();
    yield* super.flushRange(mm, start, end, freed);
  }
  override *batchFlush(): TaskGen<void> {
    yield* this.sim.scheduler.preempt();
    yield* super.batchFlush();
  }
}

/** Runs the simulation and expects a clean end. */
export function runOk(sim: Simulation): void {
  const r = sim.run();
  expect(r.violations).toEqual([]);
  expect(r.reason).toBe('done');
}

/** The logged events of one type with their typed payloads. */
export function ofType<K extends keyof SimEventMap>(sim: Simulation, type: K) {
  return sim.log!.ofType(type).map(({ seq, task, data }) => ({ seq, task, data }));
}

/** A logged event with its payload as a plain record. */
export interface Ev {
  seq: number;
  time: number;
  type: string;
  d: Record<string, number | string | boolean | number[]>;
}

/** The logged events from index `from` on, payloads as plain records. */
export function eventList(sim: Simulation, from = 0): Ev[] {
  return sim
    .log!.events.slice(from)
    .map((e) => ({ seq: e.seq, time: e.time, type: e.type, d: e.data as Ev['d'] }));
}
