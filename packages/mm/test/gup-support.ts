// Support for the GUP, HMM and property tests: simulations with the memory model, and probes
// that tell whether an mm operation still is a stub ('not implemented yet').
import { Simulation } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { Map_, mmPlugin, MmService, PAGE_SIZE, Prot } from '@mmnsim/mm';
import type { MmCore, Process } from '@mmnsim/mm';

/** Anonymous private read-write mapping flags. */
export const RW = Prot.READ | Prot.WRITE;
/** `MAP_PRIVATE | MAP_ANONYMOUS`. */
export const ANON = Map_.PRIVATE | Map_.ANONYMOUS;

/** A simulation with the memory model and one process; violations do not stop it unless asked. */
export function gupSim(
  options: {
    totalFrames?: number;
    stopOnViolation?: boolean;
    cpus?: number;
    seed?: number;
    strategy?: 'round-robin' | 'random' | 'pct';
    log?: boolean;
  } = {},
): { sim: Simulation; svc: MmService; core: MmCore; proc: Process } {
  const sim = Simulation.create({
    seed: options.seed ?? 1,
    cpus: options.cpus ?? 1,
    strategy: options.strategy ?? 'round-robin',
    log: options.log ?? true,
    stopOnViolation: options.stopOnViolation ?? true,
    plugins: [mmPlugin({ totalFrames: options.totalFrames ?? 1024 })],
  });
  const svc = sim.get(MmService);
  return { sim, svc, core: svc.core, proc: svc.createProcess('app') };
}

/** Runs `body` as one task and returns the run's result (it must end 'done' to be useful). */
export function runTask(sim: Simulation, body: () => TaskGen<void>): ReturnType<Simulation['run']> {
  sim.spawn('t', 0, body);
  return sim.run();
}

function isStub(e: unknown): boolean {
  return e instanceof Error && e.message.includes('not implemented yet');
}

/**
 * True unless `op` (run as a task on a fresh simulation with one process that has 4 touched
 * anonymous pages at `addr`) throws 'not implemented yet'.
 */
export function implemented(
  op: (ctx: { svc: MmService; proc: Process; addr: number }) => TaskGen<unknown>,
): boolean {
  const { sim, svc, proc } = gupSim({ stopOnViolation: false, log: false });
  let stub = false;
  sim.spawn('probe', 0, function* () {
    try {
      const addr = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, ANON);
      for (let i = 0; i < 4; i++) yield* proc.store(addr + i * PAGE_SIZE, i + 1);
      yield* op({ svc, proc, addr });
    } catch (e) {
      if (isStub(e)) stub = true;
      else throw e;
    }
  });
  sim.run();
  return !stub;
}
