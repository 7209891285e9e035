import { describe, expect, it } from '@jest/globals';
import { ContainerModule } from 'inversify';
import { z } from 'zod';
import {
  ConfigError,
  definePlugin,
  EventSinkContribution,
  OracleContribution,
  serviceId,
  Simulation,
} from '@mmnsim/core';
import type { AnySimEvent, Oracle, Plugin } from '@mmnsim/core';

interface CounterOptions {
  limit: number;
  mode: 'strict' | 'lenient';
}
const CounterOptions = serviceId<CounterOptions>('@test/counter:CounterOptions');
const Counter = serviceId<{ limit: number }>('@test/counter:Counter');

const counterPlugin = definePlugin({
  id: 'counter',
  schema: z.strictObject({
    limit: z.number().int().min(1).default(10),
    mode: z.enum(['strict', 'lenient']).default('strict'),
  }),
  token: CounterOptions,
  module: new ContainerModule(({ bind }) => {
    bind(Counter)
      .toResolvedValue((o: CounterOptions) => ({ limit: o.limit }), [CounterOptions])
      .inSingletonScope();
  }),
});

function plain(id: string, requires: string[], started: string[]): Plugin {
  return { id, requires, module: new ContainerModule(() => {}), start: () => started.push(id) };
}

describe('plugins and dependency injection (ARCHITECTURE §6)', () => {
  it('binds validated options (with defaults) under the plugin token for its module to use', () => {
    const sim = Simulation.create({ seed: 1, plugins: [counterPlugin({ limit: 3 })] });
    expect(sim.get(CounterOptions)).toEqual({ limit: 3, mode: 'strict' });
    expect(sim.get(Counter).limit).toBe(3);
  });

  it('a plugin whose required plugin is missing is an error naming both', () => {
    const started: string[] = [];
    expect(() => Simulation.create({ seed: 1, plugins: [plain('kvm', ['mm'], started)] })).toThrow(
      new ConfigError(
        'plugin "kvm" requires plugin "mm", which is not in the simulation (plugins: kvm)',
      ),
    );
  });

  it('a bad option is an error naming the plugin, the field and what is allowed', () => {
    expect(() => Simulation.create({ seed: 1, plugins: [counterPlugin({ limit: 0 })] })).toThrow(
      /plugin "counter": invalid options: "limit": .*>=1/,
    );
    expect(() =>
      Simulation.create({ seed: 1, plugins: [counterPlugin({ mode: 'sloppy' as never })] }),
    ).toThrow(/plugin "counter": invalid options: "mode": .*"strict"\|"lenient"/);
    expect(() =>
      Simulation.create({
        seed: 1,
        plugins: [counterPlugin({ limt: 3 } as unknown as { limit: number })],
      }),
    ).toThrow(/plugin "counter": invalid options: "limt": Unrecognized key/);
  });

  it('plugins start in dependency order, otherwise in the order given', () => {
    const started: string[] = [];
    Simulation.create({
      seed: 1,
      plugins: [
        plain('kvm', ['mm', 'tlb'], started),
        plain('tlb', ['mm'], started),
        plain('mm', [], started),
        plain('extra', [], started),
      ],
    });
    expect(started).toEqual(['mm', 'tlb', 'kvm', 'extra']);
  });

  it('a dependency cycle and a duplicate id are named errors', () => {
    const s: string[] = [];
    expect(() =>
      Simulation.create({ seed: 1, plugins: [plain('a', ['b'], s), plain('b', ['a'], s)] }),
    ).toThrow(/dependency cycle a -> b -> a/);
    expect(() =>
      Simulation.create({ seed: 1, plugins: [plain('a', [], s), plain('a', [], s)] }),
    ).toThrow(/plugin "a" is listed twice/);
  });

  it('invalid simulation options name the field and the allowed range', () => {
    expect(() => Simulation.create({ seed: -1 })).toThrow(/"seed": .*>=0/);
    expect(() => Simulation.create({ seed: 1, cpus: 0 })).toThrow(/"cpus": .*>=1/);
    expect(() => Simulation.create({ seed: 1, devices: ['NIC 0'] })).toThrow(
      /"devices.0": lower-case letters/,
    );
    expect(() => Simulation.create({ seed: 1, devices: ['cpu3'] })).toThrow(
      /may not be named like CPUs/,
    );
    expect(() => Simulation.create({ seed: 1, maxStep: 5 } as never)).toThrow(
      /"maxStep": Unrecognized key/,
    );
  });

  it('oracles contributed by a plugin are attached and their violations fail the run', () => {
    const spawnLimit: Oracle = {
      id: 'spawn-limit',
      attach(ctx) {
        let n = 0;
        ctx.bus.on('sched.spawn').subscribe((e) => {
          if (++n > 1)
            ctx.report({
              kind: 'too-many-tasks',
              message: `task ${e.data.name} is one too many`,
              evidence: [e.seq],
            });
        });
      },
    };
    const plugin: Plugin = {
      id: 'limits',
      requires: [],
      module: new ContainerModule(({ bind }) => {
        bind(OracleContribution).toConstantValue(spawnLimit);
      }),
    };
    const sim = Simulation.create({ seed: 1, cpus: 2, plugins: [plugin] });
    sim.spawn('one', 0, function* () {});
    sim.spawn('two', 1, function* () {});
    const r = sim.run();
    expect(r.ok).toBe(false);
    expect(r.violations).toHaveLength(1);
    expect(r.violations[0]).toMatchObject({
      kind: 'too-many-tasks',
      oracle: 'spawn-limit',
      message: 'task two is one too many',
    });
    expect(r.violations[0]!.evidence).toHaveLength(1);
  });

  it('event sinks contributed by a plugin receive the types they keep', () => {
    const seen: string[] = [];
    const plugin: Plugin = {
      id: 'exporter',
      requires: [],
      module: new ContainerModule(({ bind }) => {
        bind(EventSinkContribution).toConstantValue({
          keeps: (t: string) => t === 'sched.exit',
          record: (e: AnySimEvent) => seen.push(e.type),
        });
      }),
    };
    const sim = Simulation.create({ seed: 1, log: false, plugins: [plugin] });
    sim.spawn('t', 0, function* () {});
    sim.run();
    expect(seen).toEqual(['sched.exit']);
  });

  it('the log keeps what its prefix filter selects, and nothing else is built', () => {
    const sim = Simulation.create({
      seed: 1,
      log: { include: ['sched.'], exclude: ['sched.spawn'] },
    });
    sim.spawn('t', 0, function* () {
      yield* sim.scheduler.sleepFor(5000);
    });
    sim.run();
    expect(new Set(sim.log!.events.map((e) => e.type))).toEqual(
      new Set(['sched.sleep', 'sched.idle', 'sched.exit']),
    );
    expect(sim.bus.wants('sim.end')).toBe(false);
    expect(sim.bus.wants('sched.exit')).toBe(true);
  });
});
