import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from '@jest/globals';
import { ContainerModule } from 'inversify';
import { releaseKeptObjects, serviceId, Simulation } from '@mmnsim/core';
import type { Plugin } from '@mmnsim/core';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** A service the size of a small simulation's state, resolved through inversify's planner. */
const Big = serviceId<{ pages: number[] }>('@test/kept:Big');
const bigPlugin: Plugin = {
  id: 'big',
  requires: [],
  module: new ContainerModule(({ bind }) => {
    bind(Big)
      .toResolvedValue(() => ({ pages: new Array<number>(4096).fill(7) }))
      .inSingletonScope();
  }),
};

/** Builds one simulation, resolves its service and returns only a weak reference to it. */
function weaklyHeldService(): WeakRef<{ pages: number[] }> {
  const sim = Simulation.create({ seed: 1, plugins: [bigPlugin] });
  return new WeakRef(sim.get(Big));
}

describe('simulations created in one synchronous job are collectable (inversify WeakRef plans)', () => {
  it('without a release, the job keeps a dropped simulation alive (why the release exists)', () => {
    const ref = weaklyHeldService();
    gc();
    expect(ref.deref()).toBeDefined();
  });

  it('releaseKeptObjects lets the collector reclaim a dropped simulation in the same job', () => {
    const ref = weaklyHeldService();
    releaseKeptObjects();
    gc();
    expect(ref.deref()).toBeUndefined();
  });

  it('Simulation.create releases them itself, so a loop of simulations holds only live ones', () => {
    const refs: WeakRef<{ pages: number[] }>[] = [];
    for (let i = 0; i < 50; i++) refs.push(weaklyHeldService());
    gc();
    // Every simulation but the last was dropped before the next Simulation.create.
    expect(refs.filter((r) => r.deref() !== undefined).length).toBeLessThanOrEqual(1);
  });

  it('a simulation still referenced survives the release', () => {
    const sim = Simulation.create({ seed: 1, plugins: [bigPlugin] });
    const ref = new WeakRef(sim.get(Big));
    releaseKeptObjects();
    gc();
    expect(ref.deref()).toBe(sim.get(Big));
  });
});
