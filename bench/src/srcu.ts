import { Simulation, SrcuDomain } from '@mmnsim/core';
import { bestRate } from './metric.js';
import type { Metric } from './metric.js';

/**
 * `core.srcu.read_section_per_s`: one task doing `readLock()` + `readUnlock()` pairs in a tight
 * loop inside a single task step, lockdep on (every section is a recursive-read acquisition and
 * release), no log and no observer.
 */
function readSections(): Metric {
  const n = 2_000_000;
  const run = (): void => {
    const sim = Simulation.create({ seed: 1, cpus: 1, log: false, lockdep: true });
    const srcu = new SrcuDomain(sim.kernel, 'bench_srcu');
    sim.spawn('reader', 0, function* () {
      for (let i = 0; i < n; i++) {
        const idx = srcu.readLock();
        srcu.readUnlock(idx);
      }
      yield* sim.scheduler.preempt();
    });
    const r = sim.run();
    if (r.reason !== 'done' || srcu.readers() !== 0)
      throw new Error(`srcu bench ended with ${r.reason}, ${srcu.readers()} readers left`);
  };
  return { name: 'core.srcu.read_section_per_s', value: bestRate(n, run), unit: 'sections/s' };
}

/** The SRCU figures. */
export function benchSrcu(): Metric[] {
  return [readSections()];
}
