import { Mutex, OracleContribution, Simulation } from '@mmnsim/core';
import type { Oracle, Plugin } from '@mmnsim/core';
import { ContainerModule } from 'inversify';

// A plugin contributes an oracle: here, "no task may hold demo.lock for more than 3 steps".
const holdTime: Oracle = {
  id: 'hold-time',
  attach(ctx) {
    let since = -1;
    ctx.bus.on('lock.acquired').subscribe((e) => (since = e.step));
    ctx.bus.on('lock.released').subscribe((e) => {
      if (e.step - since > 3)
        ctx.report({ kind: 'long-hold', message: `held for ${e.step - since} steps` });
    });
  },
};
const holdTimePlugin: Plugin = {
  id: 'hold-time',
  requires: [],
  module: new ContainerModule(({ bind }) => {
    bind(OracleContribution).toConstantValue(holdTime);
  }),
};

export function readmeExample(seed: number) {
  const sim = Simulation.create({ seed, cpus: 2, strategy: 'pct', plugins: [holdTimePlugin] });
  const lock = new Mutex(sim.kernel, 'demo.lock');
  let counter = 0;
  for (const cpu of [0, 1]) {
    sim.spawn(`worker${cpu}`, cpu, function* () {
      for (let i = 0; i < 3; i++) {
        yield* lock.lock(); // may sleep: the other CPU's worker runs meanwhile
        counter++;
        yield* sim.scheduler.preempt(); // a scheduling point inside the critical section
        lock.unlock();
      }
    });
  }
  const result = sim.run();
  // result.reason === 'done', counter === 6, result.schedule replays this exact run
  return { result, counter, log: sim.toNdjson() };
}
