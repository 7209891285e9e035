import { describe, expect, it } from '@jest/globals';
import {
  explore,
  KernelBug,
  PctStrategy,
  replay,
  ReplayDivergenceError,
  runScenario,
  Simulation,
} from '@mmnsim/core';
import type { Scenario } from '@mmnsim/core';

/**
 * A depth-2 ordering bug: `checker` fails only if its check (after 6 preemption points) falls
 * inside the one-step window `opener` holds open (its slice 2 opens it, slice 3 closes it). That
 * needs two ordering constraints: the check after the open, and before the close.
 * Round-robin alternates strictly, so the check lands long after the window closed.
 */
const windowBug: Scenario = {
  id: 'depth-2-window',
  options: () => ({ cpus: 2, log: false }),
  setup(sim) {
    let open = false;
    sim.spawn('opener', 0, function* () {
      yield* sim.scheduler.preempt();
      yield* sim.scheduler.preempt();
      open = true;
      yield* sim.scheduler.preempt();
      open = false;
    });
    sim.spawn('checker', 1, function* () {
      for (let i = 0; i < 6; i++) yield* sim.scheduler.preempt();
      if (open) throw new KernelBug('checker saw the window open');
    });
  },
};

describe('strategies (ARCHITECTURE §3.3)', () => {
  it('round-robin never finds the depth-2 window bug (one schedule per scenario)', () => {
    const report = explore(windowBug, { strategy: 'round-robin', iterations: 200 });
    expect(report.iterations).toBe(200);
    expect(report.failures).toHaveLength(0);
  });

  it.each([1, 100, 1000, 5000, 77777])(
    'PCT depth 2 finds the depth-2 window bug within 200 iterations (base seed %i)',
    (seed) => {
      const report = explore(windowBug, {
        strategy: { kind: 'pct', depth: 2 },
        iterations: 200,
        seed,
      });
      expect(report.failures).toHaveLength(1);
      expect(report.failures[0]!.violations[0]!.message).toContain('checker saw the window open');
      expect(report.iterations).toBeLessThanOrEqual(200);
    },
  );

  it('PCT with the same seed makes the same choices; different seeds differ', () => {
    const sched = (seed: number) =>
      runScenario(windowBug, seed, { kind: 'pct', depth: 3, steps: 12 }).result.schedule.join(',');
    expect(sched(9)).toBe(sched(9));
    const distinct = new Set([1, 2, 3, 4, 5, 6, 7, 8].map(sched));
    expect(distinct.size).toBeGreaterThan(1);
  });

  it('PCT rejects a depth below 1 naming the field', () => {
    expect(() => new PctStrategy({ depth: 0 })).toThrow(/depth \(0\) must be an integer >= 1/);
  });

  it('a bad strategy spec is a ConfigError listing the allowed strategies', () => {
    expect(() => Simulation.create({ seed: 1, strategy: 'fifo' as never })).toThrow(
      /'round-robin', 'random', 'pct'/,
    );
  });
});

describe('replay (ARCHITECTURE §4)', () => {
  const logged: Scenario = {
    ...windowBug,
    id: 'depth-2-window-logged',
    options: () => ({ cpus: 2 }),
  };

  it('replaying a recorded schedule with its seed gives the same final hash', () => {
    for (const seed of [3, 4, 5]) {
      const original = runScenario(logged, seed, 'random');
      const again = replay(logged, { seed, schedule: original.result.schedule });
      expect(again.result.schedule).toEqual(original.result.schedule);
      expect(again.sim.finalHash()).toBe(original.sim.finalHash());
      expect(again.sim.toNdjson()).toBe(original.sim.toNdjson());
    }
  });

  it('replaying a failing PCT run reproduces the violation', () => {
    const report = explore(windowBug, { strategy: { kind: 'pct', depth: 2 }, iterations: 200 });
    const f = report.failures[0]!;
    const again = replay(windowBug, f);
    expect(again.result.violations.map((v) => v.kind)).toEqual(f.violations.map((v) => v.kind));
    expect(again.result.steps).toBe(f.violations[0]!.step + 1);
  });

  it('a diverging replay says at which choice and step, instead of running something else', () => {
    const original = runScenario(logged, 3, 'random');
    const bad = [9, ...original.result.schedule.slice(1)];
    expect(() => replay(logged, { seed: 3, schedule: bad })).toThrow(ReplayDivergenceError);
    try {
      replay(logged, { seed: 3, schedule: bad });
    } catch (e) {
      expect((e as ReplayDivergenceError).choice).toBe(0);
      expect((e as Error).message).toMatch(
        /replay diverged at choice 0 \(step \d+\): recorded task 9 is not runnable; runnable tasks are \[0, 1\]/,
      );
    }
    expect(() =>
      replay(logged, { seed: 3, schedule: original.result.schedule.slice(0, 2) }),
    ).toThrow(/the recorded schedule has only 2 choices/);
  });
});
