import { Simulation } from '@mmnsim/core';
import { bestRate } from './metric.js';
import type { Metric } from './metric.js';

/** `core.bus.emit_per_s`: events emitted and delivered to one typed subscriber, no log. */
function busEmit(): Metric {
  const sim = Simulation.create({ seed: 1, log: false });
  let seen = 0;
  sim.bus.on('sched.wake').subscribe(() => {
    seen++;
  });
  const n = 2_000_000;
  const payload = { id: 1, on: 'bench' };
  const value = bestRate(n, () => {
    for (let i = 0; i < n; i++) sim.bus.emit('sched.wake', payload);
  });
  if (seen === 0) throw new Error('bus bench: the subscriber saw nothing');
  return { name: 'core.bus.emit_per_s', value, unit: 'events/s' };
}

/**
 * `core.sched.steps_per_s`: two tasks on two CPUs ping-ponging at preemption points under
 * round-robin (every step is a real choice between the two), no log.
 */
function schedSteps(): Metric {
  const perTask = 500_000;
  const run = (): number => {
    const sim = Simulation.create({ seed: 1, cpus: 2, log: false, maxSteps: 4 * perTask });
    for (const cpu of [0, 1]) {
      sim.spawn(`pingpong${cpu}`, cpu, function* () {
        for (let i = 0; i < perTask; i++) yield* sim.scheduler.preempt();
      });
    }
    const r = sim.run();
    if (r.reason !== 'done') throw new Error(`sched bench ended with ${r.reason}`);
    return r.steps;
  };
  const steps = run();
  return { name: 'core.sched.steps_per_s', value: bestRate(steps, run, 3), unit: 'steps/s' };
}

/** The core kernel's figures. */
export function benchCore(): Metric[] {
  return [busEmit(), schedSteps()];
}
