import { describe, expect, it } from '@jest/globals';
import { explore, replay, runScenario } from '@mmnsim/core';
import { lockDemoScenario } from '../src/lock-demo/scenario.js';

describe('the lock-demo scenario (examples/src/lock-demo)', () => {
  it('the mutex-protected counter loses no update in 300 PCT schedules', () => {
    const report = explore(lockDemoScenario({ log: false }), {
      strategy: { kind: 'pct', depth: 2 },
      iterations: 300,
    });
    expect(report.failures).toHaveLength(0);
    expect(report.iterations).toBe(300);
  });

  it('the broken variant (no mutex) is found by PCT and its replay reproduces the lost update', () => {
    const report = explore(lockDemoScenario({ broken: true, log: false }), {
      strategy: { kind: 'pct', depth: 2 },
      iterations: 300,
    });
    expect(report.failures).toHaveLength(1);
    const f = report.failures[0]!;
    expect(f.violations[0]!.kind).toBe('lost-update');
    const again = replay(lockDemoScenario({ broken: true }), f);
    expect(again.result.violations[0]!.kind).toBe('lost-update');
  });

  it('a logged run shows both workers contending for the lock', () => {
    const { sim, result } = runScenario(lockDemoScenario(), 1, 'random');
    expect(result.ok).toBe(true);
    const acquired = sim.log!.events.filter((e) => e.type === 'lock.acquired');
    expect(acquired).toHaveLength(6);
    expect(new Set(acquired.map((e) => e.ctx))).toEqual(new Set(['cpu0', 'cpu1']));
  });
});
