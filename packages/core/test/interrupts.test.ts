import { describe, expect, it } from '@jest/globals';
import { Simulation, SpinLock, WaitQueue } from '@mmnsim/core';
import type { Strategy } from '@mmnsim/core';

/** Always runs the newest task: here, the interrupt as soon as it is raised. */
const newestFirst: Strategy = {
  name: 'newest-first',
  pick: (c) => c.reduce((a, b) => (b.id > a.id ? b : a)),
  describe: () => ({ kind: 'newest-first' }),
};

describe('interrupt work (hardirq handlers, IPIs)', () => {
  it('runs on a CPU whose task holds a spinlock (preemption off, interrupts on), then that task resumes', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1, strategy: newestFirst });
    const lock = new SpinLock(sim.kernel, 'l');
    const order: string[] = [];
    sim.spawn('holder', 0, function* () {
      yield* lock.lock();
      sim.spawn(
        'irq',
        0,
        function* () {
          order.push('handler');
        },
        { interrupt: true },
      );
      order.push('holder:1');
      yield* sim.scheduler.preempt();
      order.push('holder:2');
      lock.unlock();
    });
    expect(sim.run().reason).toBe('done');
    expect(order).toEqual(['holder:1', 'handler', 'holder:2']);
  });

  it('does not run while the CPU has interrupts disabled (local_irq_save), and runs after restore', () => {
    const sim = Simulation.create({
      seed: 1,
      cpus: 1,
      strategy: { kind: 'pct', depth: 1, steps: 10 },
    });
    const order: string[] = [];
    sim.spawn('t', 0, function* () {
      sim.kernel.localIrqSave();
      sim.spawn(
        'irq',
        0,
        function* () {
          order.push('handler');
        },
        { interrupt: true },
      );
      for (let i = 0; i < 3; i++) {
        order.push(`masked ${i}`);
        yield* sim.scheduler.preempt();
      }
      sim.kernel.localIrqRestore();
      yield* sim.scheduler.preempt();
      order.push('after');
    });
    expect(sim.run().reason).toBe('done');
    expect(order.indexOf('handler')).toBeGreaterThan(order.indexOf('masked 2'));
    expect(order.indexOf('handler')).toBeLessThan(order.indexOf('after'));
  });

  it('reaches a CPU spin-waiting on a lock, so an IPI-and-wait under that lock does not deadlock', () => {
    // cpu0 holds L and sends an IPI to cpu1, waiting for the ack; cpu1 spins on L with
    // interrupts enabled: the IPI handler runs on cpu1 and acks (as smp_call_function_many).
    for (let seed = 1; seed <= 20; seed++) {
      const sim = Simulation.create({ seed, cpus: 2, strategy: 'random' });
      const lock = new SpinLock(sim.kernel, 'L');
      const ack = new WaitQueue(sim.scheduler, 'ipi ack');
      let acked = false;
      sim.spawn('flusher', 0, function* () {
        yield* lock.lock();
        yield* sim.scheduler.preempt();
        sim.spawn(
          'ipi',
          1,
          function* () {
            acked = true;
            ack.wakeAll();
          },
          { interrupt: true },
        );
        yield* ack.waitEvent(() => acked, { spin: true });
        lock.unlock();
      });
      sim.spawn('spinner', 1, function* () {
        yield* lock.lock();
        lock.unlock();
      });
      const r = sim.run();
      expect(r.reason).toBe('done');
      expect(acked).toBe(true);
    }
  });

  it('a handler that sleeps is reported as sleeping in atomic context (hardirq)', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1 });
    sim.spawn(
      'irq',
      0,
      function* () {
        yield* sim.scheduler.sleepFor(10);
      },
      { interrupt: true },
    );
    const r = sim.run();
    expect(r.violations[0]!.kind).toBe('sleep-in-atomic');
    expect(r.violations[0]!.message).toContain('hardirq');
  });
});
