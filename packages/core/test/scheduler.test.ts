import { describe, expect, it } from '@jest/globals';
import { KernelBug, Mutex, Simulation, WaitQueue } from '@mmnsim/core';
import type { Strategy, Task } from '@mmnsim/core';

/** A strategy that always picks the candidate with the highest id (to force preemption). */
const highestId: Strategy = {
  name: 'highest-id',
  pick: (c) => c.reduce((a, b) => (b.id > a.id ? b : a)),
  describe: () => ({ kind: 'highest-id' }),
};

describe('scheduler: tasks, contexts and scheduling points (ARCHITECTURE §3.1-3.3)', () => {
  it('code between two yields runs atomically: another task never observes the middle', () => {
    const sim = Simulation.create({ seed: 3, cpus: 2, strategy: 'random' });
    let a = 0;
    let b = 0;
    let torn = 0;
    sim.spawn('writer', 0, function* () {
      for (let i = 0; i < 50; i++) {
        a++;
        b++;
        yield* sim.scheduler.preempt();
      }
    });
    sim.spawn('reader', 1, function* () {
      for (let i = 0; i < 50; i++) {
        if (a !== b) torn++;
        yield* sim.scheduler.preempt();
      }
    });
    expect(sim.run().reason).toBe('done');
    expect(torn).toBe(0);
  });

  it('inside one CPU, a task with preemption disabled is not preempted at a preemption point', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1, strategy: highestId });
    const order: string[] = [];
    sim.spawn('low', 0, function* () {
      sim.spawn('high', 0, function* () {
        order.push('high');
      });
      sim.scheduler.preemptDisable('spinlock test.lock');
      yield* sim.scheduler.preempt();
      order.push('low:atomic');
      sim.scheduler.preemptEnable();
      yield* sim.scheduler.preempt();
      order.push('low:after');
    });
    expect(sim.run().reason).toBe('done');
    // `high` could not run while `low` was atomic; at the first preemptible point it could.
    expect(order).toEqual(['low:atomic', 'high', 'low:after']);
  });

  it('tasks on different CPUs interleave at every scheduling point, even with preemption disabled', () => {
    const sim = Simulation.create({ seed: 1, cpus: 2, strategy: 'round-robin' });
    const order: string[] = [];
    sim.spawn('a', 0, function* () {
      sim.scheduler.preemptDisable('preempt_disable');
      for (let i = 0; i < 3; i++) {
        order.push(`a${i}`);
        yield* sim.scheduler.preempt();
      }
      sim.scheduler.preemptEnable();
    });
    sim.spawn('b', 1, function* () {
      for (let i = 0; i < 3; i++) {
        order.push(`b${i}`);
        yield* sim.scheduler.preempt();
      }
    });
    sim.run();
    expect(order).toEqual(['a0', 'b0', 'a1', 'b1', 'a2', 'b2']);
  });

  it('sleeping in atomic context is reported naming the task and what made it atomic', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1 });
    const wq = new WaitQueue(sim.scheduler, 'wq');
    sim.spawn('culprit', 0, function* () {
      sim.scheduler.preemptDisable('spinlock mm->page_table_lock');
      yield* wq.wait();
    });
    const r = sim.run();
    expect(r.violations[0]!.kind).toBe('sleep-in-atomic');
    expect(r.violations[0]!.message).toContain('culprit#0');
    expect(r.violations[0]!.message).toContain('spinlock mm->page_table_lock');
  });

  it('a no-sleep section (non_block_start) forbids sleeping but not preemption', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1 });
    sim.spawn('nb', 0, function* () {
      sim.scheduler.enterNoSleep('non-blockable invalidate_range_start');
      yield* sim.scheduler.preempt();
      yield* sim.scheduler.sleepFor(10);
    });
    const r = sim.run();
    expect(r.violations.map((v) => v.kind)).toEqual(['sleep-in-atomic']);
    expect(r.violations[0]!.message).toContain('non-blockable invalidate_range_start');
  });

  it('a spin-wait keeps its CPU: other tasks of that CPU cannot run until it is woken', () => {
    const sim = Simulation.create({ seed: 1, cpus: 2, strategy: 'round-robin' });
    const wq = new WaitQueue(sim.scheduler, 'spin');
    const order: string[] = [];
    sim.spawn('spinner', 0, function* () {
      sim.spawn('same-cpu', 0, function* () {
        order.push('same-cpu');
      });
      yield* wq.wait({ spin: true });
      order.push('spinner-woke');
    });
    sim.spawn('waker', 1, function* () {
      yield* sim.scheduler.preempt();
      yield* sim.scheduler.preempt();
      order.push('wake');
      wq.wakeAll();
    });
    expect(sim.run().reason).toBe('done');
    expect(order.indexOf('same-cpu')).toBeGreaterThan(order.indexOf('wake'));
  });

  it('a plain wait releases the CPU to the next task of that CPU', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1, strategy: 'round-robin' });
    const wq = new WaitQueue(sim.scheduler, 'wq');
    const order: string[] = [];
    sim.spawn('waiter', 0, function* () {
      yield* wq.wait();
      order.push('waiter');
    });
    sim.spawn('waker', 0, function* () {
      order.push('waker');
      wq.wakeOne();
    });
    expect(sim.run().reason).toBe('done');
    expect(order).toEqual(['waker', 'waiter']);
  });

  it('wakeUp wakes all non-exclusive waiters and one exclusive waiter', () => {
    const sim = Simulation.create({ seed: 1, cpus: 4, strategy: 'round-robin' });
    const wq = new WaitQueue(sim.scheduler, 'wq');
    const woke: string[] = [];
    for (const [name, exclusive] of [
      ['n1', false],
      ['x1', true],
      ['x2', true],
    ] as const) {
      sim.spawn(
        name,
        name === 'n1' ? 0 : name === 'x1' ? 1 : 2,
        function* () {
          yield* wq.wait({ exclusive });
          woke.push(name);
        },
        { daemon: true },
      );
    }
    let count = -1;
    sim.spawn('waker', 3, function* () {
      yield* sim.scheduler.preempt();
      count = wq.wakeUp();
    });
    sim.run();
    expect(count).toBe(2);
    expect(woke.sort()).toEqual(['n1', 'x1']);
    expect(wq.length).toBe(1);
  });

  it('waitEvent re-checks its condition after every wake-up', () => {
    const sim = Simulation.create({ seed: 1, cpus: 2, strategy: 'round-robin' });
    const wq = new WaitQueue(sim.scheduler, 'cond');
    let value = 0;
    let seen = -1;
    sim.spawn('waiter', 0, function* () {
      yield* wq.waitEvent(() => value >= 3);
      seen = value;
    });
    sim.spawn('bumper', 1, function* () {
      for (let i = 0; i < 3; i++) {
        value++;
        wq.wakeAll();
        yield* sim.scheduler.preempt();
      }
    });
    expect(sim.run().reason).toBe('done');
    expect(seen).toBe(3);
  });

  it('join returns the exited task result', () => {
    const sim = Simulation.create({ seed: 1, cpus: 2 });
    let got: unknown;
    const child = sim.spawn('child', 1, function* () {
      yield* sim.scheduler.sleepFor(1000);
      return 42;
    });
    sim.spawn('parent', 0, function* () {
      got = yield* sim.scheduler.join(child);
    });
    expect(sim.run().reason).toBe('done');
    expect(got).toBe(42);
  });

  it('a task that throws becomes a violation and the run keeps its log', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1 });
    sim.spawn('oops', 0, function* () {
      yield* sim.scheduler.preempt();
      throw new KernelBug('page still mapped');
    });
    const r = sim.run();
    expect(r.reason).toBe('violation');
    expect(r.violations[0]!.kind).toBe('bug');
    expect(r.violations[0]!.message).toContain('page still mapped');
    expect(sim.log!.events.some((e) => e.type === 'oracle.violation')).toBe(true);
  });

  it('an unknown execution context is a ConfigError listing the allowed ones', () => {
    const sim = Simulation.create({ seed: 1, cpus: 2, devices: ['nic0'] });
    expect(() => sim.spawn('x', 'cpu7', function* () {})).toThrow(/allowed are cpu0, cpu1, nic0/);
  });
});

describe('virtual time (ARCHITECTURE §3.4)', () => {
  it('each step costs the quantum, and the clock jumps to the earliest timer when all sleep', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1, quantumNs: 10 });
    const times: number[] = [];
    sim.spawn('sleeper', 0, function* () {
      times.push(sim.clock.now);
      yield* sim.scheduler.sleepFor(1_000_000);
      times.push(sim.clock.now);
      yield* sim.scheduler.preempt();
      times.push(sim.clock.now);
    });
    const r = sim.run();
    expect(times).toEqual([0, 1_000_000, 1_000_010]);
    expect(r.time).toBe(1_000_020);
    expect(sim.log!.events.filter((e) => e.type === 'sched.idle')).toHaveLength(1);
  });

  it('timers fire in time order, ties in arming order, and cancelled timers never fire', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1, quantumNs: 1 });
    const fired: string[] = [];
    sim.clock.addTimer(50, 'b', () => fired.push('b'));
    sim.clock.addTimer(20, 'a', () => fired.push('a'));
    sim.clock.addTimer(50, 'c', () => fired.push('c'));
    const d = sim.clock.addTimer(30, 'd', () => fired.push('d'));
    expect(sim.clock.cancel(d)).toBe(true);
    expect(sim.clock.cancel(d)).toBe(false);
    sim.spawn('idle', 0, function* () {
      yield* sim.scheduler.sleepUntil(100);
    });
    sim.run();
    expect(fired).toEqual(['a', 'b', 'c']);
  });
});

describe('deadlock and livelock (ARCHITECTURE §3.3)', () => {
  it('an AB-BA deadlock of two tasks is reported with both edges of the wait-for graph', () => {
    // lockdep off: this checks the scheduler's own deadlock detection (lockdep would report the
    // inversion first; see lockdep.test.ts).
    const sim = Simulation.create({ seed: 1, cpus: 2, strategy: 'round-robin', lockdep: false });
    const a = new Mutex(sim.kernel, 'A');
    const b = new Mutex(sim.kernel, 'B');
    const t1 = sim.spawn('t1', 0, function* () {
      yield* a.lock();
      yield* sim.scheduler.preempt();
      yield* b.lock();
    });
    const t2 = sim.spawn('t2', 1, function* () {
      yield* b.lock();
      yield* sim.scheduler.preempt();
      yield* a.lock();
    });
    const r = sim.run();
    expect(r.reason).toBe('deadlock');
    const v = r.violations[0]!;
    expect(v.kind).toBe('deadlock');
    expect(v.message).toContain('t1#0 waits for mutex B held by t2#1');
    expect(v.message).toContain('t2#1 waits for mutex A held by t1#0');
    expect(v.details).toEqual({
      waitFor: [
        { task: t1.id, name: 't1', waitsOn: 'mutex B', heldBy: [t2.id] },
        { task: t2.id, name: 't2', waitsOn: 'mutex A', heldBy: [t1.id] },
      ],
    });
    expect(v.evidence).toHaveLength(2);
  });

  it('daemon tasks left waiting at the end are not a deadlock', () => {
    const sim = Simulation.create({ seed: 1, cpus: 2 });
    const work = new WaitQueue(sim.scheduler, 'kworker idle');
    sim.spawn(
      'kworker',
      1,
      function* () {
        for (;;) yield* work.wait();
      },
      { daemon: true },
    );
    sim.spawn('main', 0, function* () {
      yield* sim.scheduler.preempt();
    });
    expect(sim.run().reason).toBe('done');
  });

  it('a run still going at the step budget is reported as a livelock', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1, maxSteps: 50 });
    sim.spawn('spinner', 0, function* () {
      for (;;) yield* sim.scheduler.preempt();
    });
    const r = sim.run();
    expect(r.reason).toBe('livelock');
    expect(r.steps).toBe(50);
    expect(r.violations[0]!.kind).toBe('livelock');
    expect(r.violations[0]!.message).toContain('step budget (50)');
  });
});

describe('Mutex', () => {
  it('serialises a read-modify-write across CPUs under random schedules', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const sim = Simulation.create({ seed, cpus: 3, strategy: 'random', log: false });
      const m = new Mutex(sim.kernel, 'm');
      let counter = 0;
      const tasks: Task[] = [];
      for (let c = 0; c < 3; c++) {
        tasks.push(
          sim.spawn(`w${c}`, c, function* () {
            for (let i = 0; i < 4; i++) {
              yield* m.lock();
              const v = counter;
              yield* sim.scheduler.preempt();
              counter = v + 1;
              m.unlock();
            }
          }),
        );
      }
      expect(sim.run().reason).toBe('done');
      expect(counter).toBe(12);
    }
  });

  it('unlocking a mutex the task does not hold is reported', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1 });
    const m = new Mutex(sim.kernel, 'm');
    sim.spawn('thief', 0, function* () {
      m.unlock();
    });
    const r = sim.run();
    expect(r.violations[0]!.kind).toBe('mutex-bad-unlock');
    expect(r.violations[0]!.message).toContain('thief#0 unlocks mutex m held by nobody');
  });
});
