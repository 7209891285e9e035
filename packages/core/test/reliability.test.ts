// Issue 23 (reliability): a run never hangs on a task that never yields, never reports "done"
// when an oracle, strategy, timer or setup threw, and never carries machine-specific text into
// its log; one bad campaign iteration does not lose the others.
import { describe, expect, it } from '@jest/globals';
import { filter, map } from 'rxjs';
import { ConfigError, explore, runScenario, Simulation } from '@mmnsim/core';
import type { Oracle, Scenario, Strategy } from '@mmnsim/core';

function twoWorkers(sim: Simulation): void {
  for (const cpu of [0, 1]) {
    sim.spawn(`w${cpu}`, cpu, function* () {
      for (let i = 0; i < 3; i++) yield* sim.scheduler.preempt();
    });
  }
}

describe('exceptions outside tasks are violations of their own kind; the result survives', () => {
  it('an oracle whose bus subscriber throws gives oracle-error, not "done, 0 violations"', () => {
    const oracle: Oracle = {
      id: 'broken',
      attach(ctx) {
        ctx.bus.on('sched.spawn').subscribe(() => {
          throw new TypeError('boom');
        });
      },
    };
    const sim = Simulation.create({ seed: 1, cpus: 2 });
    sim.addOracle(oracle);
    twoWorkers(sim);
    const r = sim.run();
    expect(r.ok).toBe(false);
    expect(r.violations[0]).toMatchObject({ kind: 'oracle-error', oracle: 'broken' });
    expect(r.violations[0]!.message).toMatch(
      /oracle "broken" threw while handling "sched.spawn": TypeError: boom/,
    );
    expect(sim.log!.ofType('oracle.violation')).toHaveLength(1);
  });

  it('a throw inside a piped operator or an events$ subscriber is reported too', () => {
    const oracle: Oracle = {
      id: 'piped',
      attach(ctx) {
        ctx.bus
          .on('sched.exit')
          .pipe(
            filter((e) => e.data.name === 'w1'),
            map(() => {
              throw new Error('in map');
            }),
          )
          .subscribe(() => undefined);
      },
    };
    const sim = Simulation.create({ seed: 1, cpus: 2, stopOnViolation: false });
    sim.addOracle(oracle);
    sim.addOracle({
      id: 'all',
      attach(ctx) {
        ctx.bus.events$.subscribe((e) => {
          if (e.type === 'sched.exit') throw new Error('late');
        });
      },
    });
    twoWorkers(sim);
    const r = sim.run();
    expect(r.violations.map((v) => `${v.kind}/${v.oracle}`).sort()).toEqual([
      'oracle-error/all',
      'oracle-error/piped',
    ]);
    expect(r.violations.find((v) => v.oracle === 'piped')!.message).toMatch(/Error: in map/);
    expect(r.reason).toBe('violation');
  });

  it('an exception in Oracle.finish or attach is an oracle-error, and run() returns', () => {
    const sim = Simulation.create({ seed: 1, cpus: 2 });
    sim.addOracle({
      id: 'fin',
      attach() {},
      finish() {
        throw new Error('finish broke');
      },
    });
    sim.addOracle({
      id: 'att',
      attach() {
        // eslint-disable-next-line @typescript-eslint/only-throw-error -- a non-Error throw on purpose
        throw 'attach broke';
      },
    });
    twoWorkers(sim);
    const r = sim.run();
    expect(r.violations.map((v) => `${v.kind}/${v.oracle}`)).toEqual([
      'oracle-error/att',
      'oracle-error/fin',
    ]);
    expect(r.violations[1]!.message).toMatch(/finish\(\): Error: finish broke/);
  });

  it('a throwing timer is a timer-error; a throwing strategy a strategy-error with the log kept', () => {
    const sim = Simulation.create({ seed: 1 });
    sim.spawn('t', 0, function* () {
      sim.clock.addTimer(50, 'bad-timer', () => {
        throw new RangeError('tick');
      });
      yield* sim.scheduler.sleepFor(1000);
    });
    const r = sim.run();
    expect(r.violations[0]).toMatchObject({ kind: 'timer-error', oracle: 'clock' });
    expect(r.violations[0]!.message).toMatch(/timer "bad-timer" threw: RangeError: tick/);

    const bad: Strategy = {
      name: 'bad',
      pick() {
        throw new Error('no pick');
      },
      describe: () => 'bad',
    };
    const s2 = Simulation.create({ seed: 1, cpus: 2, strategy: bad });
    twoWorkers(s2);
    const r2 = s2.run();
    expect(r2.reason).toBe('error');
    expect(r2.violations[0]).toMatchObject({ kind: 'strategy-error' });
    expect(s2.log!.ofType('sim.end')).toHaveLength(1);
    const s3 = Simulation.create({
      seed: 1,
      cpus: 2,
      strategy: { name: 'liar', pick: () => ({}) as never, describe: () => 'liar' },
    });
    twoWorkers(s3);
    expect(s3.run().violations[0]!.message).toMatch(/not one of the candidates/);
  });

  it('a setup that throws is a setup-error; the run ends at once with reason error', () => {
    const scenario: Scenario = {
      id: 'bad-setup',
      options: () => ({ cpus: 2 }),
      setup() {
        throw new Error('setup broke');
      },
    };
    const { result } = runScenario(scenario, 3, 'random');
    expect(result.reason).toBe('error');
    expect(result.steps).toBe(0);
    expect(result.violations[0]).toMatchObject({ kind: 'setup-error' });
  });
});

describe('task exceptions: no checkout path in the log, any thrown value is a violation', () => {
  it('the message of an exception carries no path; the location goes to details', () => {
    const sim = Simulation.create({ seed: 1 });
    sim.spawn('thrower', 0, function* () {
      yield* sim.scheduler.preempt();
      throw new Error('oops');
    });
    const r = sim.run();
    const v = r.violations[0]!;
    expect(v.message).toBe('thrower#0 threw Error: oops');
    expect(sim.toNdjson()).not.toMatch(/file:|reliability\.test|\/work\//);
    expect((v.details as { where: string }).where).toMatch(
      /^at .*reliability\.test\.ts:\d+:\d+\)?$/,
    );
  });

  it('a non-Error throw is reported at the throwing task; a throw whose toString throws too', () => {
    const sim = Simulation.create({ seed: 1, cpus: 2, stopOnViolation: false });
    const evil = {
      toString() {
        throw new Error('no string');
      },
    };
    sim.spawn('str', 0, function* () {
      yield* sim.scheduler.preempt();
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- a non-Error throw on purpose
      throw 'plain string';
    });
    sim.spawn('evil', 1, function* () {
      yield* sim.scheduler.preempt();
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- a non-Error throw on purpose
      throw evil;
    });
    const r = sim.run();
    expect(r.reason).toBe('violation');
    const byTask = Object.fromEntries(r.violations.map((v) => [v.taskName, v]));
    expect(byTask.str).toMatchObject({ kind: 'exception', task: 0 });
    expect(byTask.str!.message).toBe('str#0 threw non-Error value: plain string');
    expect(byTask.str!.details).toBeUndefined();
    expect(byTask.evil!.message).toBe('evil#1 threw non-Error value: [object Object]');
  });
});

describe('step budget: a task that never yields', () => {
  it('an event loop without a scheduling point is a step-budget violation naming the task', () => {
    const sim = Simulation.create({ seed: 1, cpus: 2, maxStepWork: 1000 });
    sim.spawn('spinner', 0, function* () {
      yield* sim.scheduler.preempt();
      for (;;) sim.bus.emit('sched.wake', { id: 0, on: 'nothing' });
    });
    sim.spawn('other', 1, function* () {
      yield* sim.scheduler.preempt();
    });
    const r = sim.run();
    const v = r.violations[0]!;
    expect(v).toMatchObject({ kind: 'step-budget', taskName: 'spinner' });
    expect(v.message).toMatch(/spinner#0 did more than 1000 units of work in one step/);
    expect(v.evidence).toHaveLength(1);
    expect(sim.log!.events[v.evidence[0]!]!.type).toBe('sched.wake');
  });

  it('Scheduler.work() counts a loop that emits nothing', () => {
    const sim = Simulation.create({ seed: 1, maxStepWork: 500 });
    sim.spawn('walker', 0, function* () {
      for (;;) sim.scheduler.work();
    });
    expect(sim.run().violations[0]).toMatchObject({ kind: 'step-budget', task: 0 });
  });
});

describe('daemons left alone end the run as done', () => {
  it('a periodic daemon that keeps sleeping after the workload exited', () => {
    const sim = Simulation.create({ seed: 1, maxSteps: 1000 });
    sim.spawn(
      'tick',
      0,
      function* () {
        for (;;) yield* sim.scheduler.sleepFor(10_000);
      },
      { daemon: true },
    );
    sim.spawn('work', 0, function* () {
      yield* sim.scheduler.sleepFor(35_000);
    });
    const r = sim.run();
    expect(r.reason).toBe('done');
    expect(r.violations).toEqual([]);
  });

  it('a daemon that keeps yielding after the workload exited', () => {
    const sim = Simulation.create({ seed: 1, maxSteps: 200 });
    sim.spawn(
      'poll',
      0,
      function* () {
        for (;;) yield* sim.scheduler.preempt();
      },
      { daemon: true },
    );
    sim.spawn('work', 0, function* () {
      yield* sim.scheduler.preempt();
    });
    expect(sim.run()).toMatchObject({ reason: 'done', violations: [] });
  });
});

describe('explore: iterations are isolated, options validated', () => {
  const flaky: Scenario = {
    id: 'flaky',
    options: () => ({ cpus: 2, log: false }),
    setup(sim) {
      if (sim.seed === 3) throw new Error('setup of seed 3 broke');
      twoWorkers(sim);
    },
  };

  it('a setup failure is a failure of its iteration; the others are kept', () => {
    const report = explore(flaky, {
      strategy: 'random',
      iterations: 6,
      seed: 1,
      stopOnFirst: false,
    });
    expect(report.iterations).toBe(6);
    expect(report.failures.map((f) => [f.iteration, f.seed, f.violations[0]!.kind])).toEqual([
      [2, 3, 'setup-error'],
    ]);
  });

  it('an iteration whose simulation cannot be built is recorded; stopOnError stops there', () => {
    const badOpts: Scenario = {
      ...flaky,
      id: 'bad-opts',
      options: () => {
        throw new Error('no options');
      },
    };
    const r = explore(badOpts, { strategy: 'random', iterations: 3 });
    expect(r.errors.map((e) => [e.iteration, e.seed])).toEqual([
      [0, 1],
      [1, 2],
      [2, 3],
    ]);
    expect(r.errors[0]!.message).toBe('Error: no options');
    expect(
      explore(badOpts, { strategy: 'random', iterations: 3, stopOnError: true }).errors,
    ).toHaveLength(1);
  });

  it('invalid strategy, seed, stopOnFirst and time budget are ConfigErrors naming the field', () => {
    const run = (o: object) => () => explore(flaky, { iterations: 2, ...o });
    expect(run({ strategy: { kind: 'pct', depth: 0 } })).toThrow(ConfigError);
    expect(run({ strategy: 'bogus' })).toThrow(/"strategy" "bogus" is not a campaign strategy/);
    expect(run({ seed: -1 })).toThrow(/"seed"/);
    expect(run({ seed: 1.5 })).toThrow(ConfigError);
    expect(run({ stopOnFirst: 'yes' })).toThrow(/"stopOnFirst"/);
    expect(run({ timeBudgetMs: Number.NaN, now: () => 0 })).toThrow(/"timeBudgetMs"/);
    expect(run({ timeBudgetMs: 5 })).toThrow(/needs "now"/);
    expect(run({ seed: Number.MAX_SAFE_INTEGER })).toThrow(/safe-integer range/);
  });
});
