/**
 * The lock demo: two workers on two CPUs increment a shared counter under a mutex. A tiny
 * plugin provides the counter as a service and contributes an oracle that checks, at the end of
 * the run, that no increment was lost. The `broken` variant drops the mutex, so some
 * interleavings lose an update — the smallest race mmnsim can show.
 */
import { ContainerModule } from 'inversify';
import { Mutex, OracleContribution, serviceId } from '@mmnsim/core';
import type { Oracle, Plugin, Scenario, Simulation } from '@mmnsim/core';

/** The shared state the workers touch. */
export interface SharedCounter {
  value: number;
  expected: number;
}

/** Token of the shared counter service. */
export const SharedCounter = serviceId<SharedCounter>('@mmnsim/examples:SharedCounter');

/** Checks at the end of the run that every increment landed. */
function lostUpdateOracle(counter: SharedCounter): Oracle {
  return {
    id: 'lost-update',
    attach() {},
    finish(ctx) {
      if (counter.value !== counter.expected) {
        ctx.report({
          kind: 'lost-update',
          message: `counter is ${counter.value} after ${counter.expected} increments: an update was lost`,
          task: { id: -1, name: '-' },
        });
      }
    },
  };
}

/** The demo plugin: binds the shared counter and its oracle. */
export function counterPlugin(): Plugin {
  return {
    id: 'demo-counter',
    requires: [],
    module: new ContainerModule(({ bind }) => {
      bind(SharedCounter).toConstantValue({ value: 0, expected: 0 });
      bind(OracleContribution)
        .toResolvedValue((c: SharedCounter) => lostUpdateOracle(c), [SharedCounter])
        .inSingletonScope();
    }),
  };
}

/** Spawns the two workers; each does `rounds` read-modify-write increments. */
export function spawnWorkers(sim: Simulation, options: { rounds: number; broken: boolean }): void {
  const counter = sim.get(SharedCounter);
  const lock = new Mutex(sim.kernel, 'demo.lock');
  counter.expected = 2 * options.rounds;
  for (const cpu of [0, 1]) {
    sim.spawn(`worker${cpu}`, cpu, function* () {
      for (let i = 0; i < options.rounds; i++) {
        if (!options.broken) yield* lock.lock();
        const seen = counter.value;
        yield* sim.scheduler.preempt(); // the work between the read and the write
        counter.value = seen + 1;
        if (!options.broken) lock.unlock();
        yield* sim.scheduler.preempt();
      }
    });
  }
}

/** The demo scenario; `broken` drops the mutex. */
export function lockDemoScenario(
  options: { rounds?: number; broken?: boolean; log?: boolean } = {},
): Scenario {
  const rounds = options.rounds ?? 3;
  const broken = options.broken ?? false;
  return {
    id: broken ? 'lock-demo-broken' : 'lock-demo',
    options: () => ({ cpus: 2, plugins: [counterPlugin()], log: options.log ?? true }),
    setup: (sim) => spawnWorkers(sim, { rounds, broken }),
  };
}
