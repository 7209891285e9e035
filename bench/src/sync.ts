import { Simulation, SpinLock } from '@mmnsim/core';
import { bestRate } from './metric.js';
import type { Metric } from './metric.js';

/** Runs `n` lock/unlock pairs of one uncontended spinlock inside a single task. */
function spinPairs(n: number, lockdep: boolean): () => void {
  return () => {
    const sim = Simulation.create({ seed: 1, log: false, lockdep });
    const lock = new SpinLock(sim.kernel, 'bench.lock');
    sim.spawn('bench', 0, function* () {
      for (let i = 0; i < n; i++) {
        yield* lock.lock();
        lock.unlock();
      }
    });
    const r = sim.run();
    if (r.reason !== 'done') throw new Error(`spinlock bench ended with ${r.reason}`);
  };
}

/**
 * `core.lockdep.acquire_per_s`: acquisitions validated by lockdep, each taken while holding
 * another lock (so every acquisition looks up a dependency edge), lockdep on.
 */
function lockdepAcquire(n: number): () => void {
  return () => {
    const sim = Simulation.create({ seed: 1, log: false, lockdep: true });
    const outer = new SpinLock(sim.kernel, 'bench.outer');
    const inner = new SpinLock(sim.kernel, 'bench.inner');
    sim.spawn('bench', 0, function* () {
      yield* outer.lock();
      for (let i = 0; i < n; i++) {
        yield* inner.lock();
        inner.unlock();
      }
      outer.unlock();
    });
    const r = sim.run();
    if (r.reason !== 'done') throw new Error(`lockdep bench ended with ${r.reason}`);
  };
}

/** Figures of the synchronisation primitives. */
export function benchSync(): Metric[] {
  const n = 1_000_000;
  return [
    {
      name: 'core.spinlock.uncontended_per_s',
      value: bestRate(n, spinPairs(n, false)),
      unit: 'lock+unlock/s',
    },
    {
      name: 'core.spinlock.uncontended_lockdep_per_s',
      value: bestRate(n, spinPairs(n, true)),
      unit: 'lock+unlock/s',
    },
    {
      name: 'core.lockdep.acquire_per_s',
      value: bestRate(n, lockdepAcquire(n)),
      unit: 'acquisitions/s',
    },
  ];
}
