import { describe, expect, it } from '@jest/globals';
import { explore, Mutex, replay, Simulation } from '@mmnsim/core';
import type { AnySimEvent, Scenario, TaskGen } from '@mmnsim/core';
import { Subject, of, throwError } from 'rxjs';
import type { Kernel } from '../src/internal/kernel.js';
import { SrcuDomain, SrcuOracle } from '../src/internal/sync/srcu.js';

/** The srcu.* events of a run, in order, as `type` plus the event (for seq/task checks). */
function recordSrcu(sim: Simulation): AnySimEvent[] {
  const out: AnySimEvent[] = [];
  sim.bus.events$.subscribe((e) => {
    if (e.type.startsWith('srcu.')) out.push(e);
  });
  return out;
}

/** Index in `events` of the first event of `type` matching `pred`. */
function at(events: AnySimEvent[], type: string, pred: (e: AnySimEvent) => boolean = () => true) {
  const i = events.findIndex((e) => e.type === type && pred(e));
  if (i < 0) throw new Error(`no ${type} event`);
  return i;
}

function kinds(sim: Simulation): string[] {
  return sim.oracles.violations.map((v) => v.kind);
}

describe('SRCU readers (srcu_read_lock / srcu_read_unlock)', () => {
  it('49: srcu_read_unlock receives the idx srcu_read_lock returned; nested sections pass back their own idx', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1 });
    sim.addOracle(new SrcuOracle());
    const srcu = new SrcuDomain(sim.kernel, 'srcu49');
    const events = recordSrcu(sim);
    let inside = -1;
    sim.spawn('reader', 0, function* () {
      const a = srcu.readLock();
      const b = srcu.readLock();
      inside = srcu.readers();
      yield* sim.scheduler.preempt();
      srcu.readUnlock(b);
      srcu.readUnlock(a);
    });
    expect(sim.run().reason).toBe('done');
    expect(inside).toBe(2);
    expect(srcu.readers()).toBe(0);
    const locks = events.filter((e) => e.type === 'srcu.read_lock').map((e) => e.data);
    const unlocks = events.filter((e) => e.type === 'srcu.read_unlock').map((e) => e.data);
    expect(locks).toEqual([
      { domain: 'srcu49', idx: 0, reader: 'task' },
      { domain: 'srcu49', idx: 0, reader: 'task' },
    ]);
    expect(unlocks).toEqual(locks);
  });

  it('49: a wrong idx passed to srcu_read_unlock is reported as srcu-idx-mismatch (WARN) and the counters stay exact', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1, stopOnViolation: false });
    const srcu = new SrcuDomain(sim.kernel, 'srcu49b');
    const after: number[] = [];
    sim.spawn('reader', 0, function* () {
      const idx = srcu.readLock();
      srcu.readUnlock(1 - idx); // not what readLock returned
      after.push(srcu.readers());
      const idx2 = srcu.readLock();
      srcu.readUnlock(idx2 + 2); // bits other than bit 0
      after.push(srcu.readers());
      yield* sim.scheduler.preempt();
    });
    sim.run();
    expect(kinds(sim)).toEqual(['srcu-idx-mismatch', 'srcu-idx-mismatch']);
    expect(sim.oracles.violations[1]!.message).toContain('idx & ~0x1');
    // The section was still closed under the index it was counted in: nothing leaks, and
    // lockdep saw a balanced release (no lockdep-* report, no held-at-exit).
    expect(after).toEqual([0, 0]);
  });

  it('49: unlocking in another task is srcu-wrong-context; unlocking with nothing open is srcu-unbalanced; neither touches the counters', () => {
    const sim = Simulation.create({ seed: 1, cpus: 2, stopOnViolation: false, lockdep: false });
    const srcu = new SrcuDomain(sim.kernel, 'srcu49c');
    let shared = -1;
    let readersAfter = -1;
    sim.spawn('locker', 0, function* () {
      shared = srcu.readLock();
      while (readersAfter < 0) yield* sim.scheduler.preempt();
      srcu.readUnlock(shared);
    });
    sim.spawn('other', 1, function* () {
      while (shared < 0) yield* sim.scheduler.preempt();
      srcu.readUnlock(shared);
      readersAfter = srcu.readers();
      srcu.readUnlock(1 - shared);
    });
    sim.run();
    expect(kinds(sim)).toEqual(['srcu-wrong-context', 'srcu-unbalanced']);
    expect(readersAfter).toBe(1);
    expect(srcu.readers()).toBe(0);
  });

  it('hand-over-hand sections may be closed out of order, as the kernel allows (no report)', () => {
    const sim = Simulation.create({ seed: 1, cpus: 2, strategy: 'round-robin' });
    sim.addOracle(new SrcuOracle());
    const srcu = new SrcuDomain(sim.kernel, 'hoh');
    let done = false;
    sim.spawn('reader', 0, function* () {
      let idx = srcu.readLock();
      while (!done) {
        yield* sim.scheduler.preempt();
        const next = srcu.readLock();
        srcu.readUnlock(idx);
        idx = next;
      }
      srcu.readUnlock(idx);
    });
    sim.spawn('updater', 1, function* () {
      yield* srcu.synchronize();
      yield* srcu.synchronize();
      done = true;
    });
    const r = sim.run();
    expect(r.violations).toEqual([]);
    expect(r.reason).toBe('done');
  });
});

describe('synchronize_srcu', () => {
  it('50: synchronize never returns while a reader that began before it is inside (reader sleeping across the call)', () => {
    const sim = Simulation.create({ seed: 1, cpus: 2, strategy: 'round-robin' });
    sim.addOracle(new SrcuOracle());
    const srcu = new SrcuDomain(sim.kernel, 'srcu50');
    const events = recordSrcu(sim);
    sim.spawn('reader', 0, function* () {
      yield* srcu.read(function* () {
        yield* sim.scheduler.sleepFor(50_000);
      });
    });
    sim.spawn('updater', 1, function* () {
      while (srcu.readers() === 0) yield* sim.scheduler.preempt();
      yield* srcu.synchronize();
    });
    const r = sim.run();
    expect(r.reason).toBe('done');
    expect(r.violations).toEqual([]);
    const lock = at(events, 'srcu.read_lock');
    const start = at(events, 'srcu.sync_start');
    const unlock = at(events, 'srcu.read_unlock');
    const end = at(events, 'srcu.sync_end');
    expect(lock).toBeLessThan(start);
    expect(start).toBeLessThan(unlock);
    expect(unlock).toBeLessThan(end);
    // The grace period went through both phases: gp_start, flip, gp_end, then the waiter returned.
    expect(events.slice(start).map((e) => e.type)).toEqual([
      'srcu.sync_start',
      'srcu.gp_start',
      'srcu.flip',
      'srcu.read_unlock',
      'srcu.gp_end',
      'srcu.sync_end',
    ]);
    expect(srcu.gpSeq).toBe(1);
  });

  it('50: readers that start after synchronize began do not delay it forever (overlapping readers on other CPUs, never zero readers)', () => {
    const sim = Simulation.create({ seed: 1, cpus: 3, strategy: 'random' });
    sim.addOracle(new SrcuOracle());
    const srcu = new SrcuDomain(sim.kernel, 'stream');
    const cap = 5_000;
    let synced = false;
    let zeroSeen = false;
    const rounds = [0, 0];
    for (const cpu of [0, 1]) {
      sim.spawn(`reader${cpu}`, cpu, function* () {
        // Hand over hand: always at least one section open in each reader.
        let idx = srcu.readLock();
        while (!synced && rounds[cpu]! < cap) {
          yield* sim.scheduler.preempt();
          const next = srcu.readLock();
          srcu.readUnlock(idx);
          idx = next;
          if (srcu.readers() === 0) zeroSeen = true;
          rounds[cpu]!++;
        }
        srcu.readUnlock(idx);
      });
    }
    sim.spawn('updater', 2, function* () {
      while (srcu.readers() < 2) yield* sim.scheduler.preempt();
      yield* srcu.synchronize();
      yield* srcu.synchronize();
      synced = true;
    });
    const r = sim.run();
    expect(r.violations).toEqual([]);
    expect(synced).toBe(true);
    expect(zeroSeen).toBe(false);
    expect(Math.max(...rounds)).toBeLessThan(cap);
  });

  it('synchronize inside a read section of the same domain is reported ("Illegal synchronize_srcu()") and the run ends without a deadlock', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1, stopOnViolation: false });
    const srcu = new SrcuDomain(sim.kernel, 'same');
    let returned = false;
    sim.spawn('culprit', 0, function* () {
      const idx = srcu.readLock();
      yield* srcu.synchronize();
      returned = true;
      srcu.readUnlock(idx);
    });
    const r = sim.run();
    expect(kinds(sim)).toEqual(['srcu-sync-in-read-section']);
    expect(r.violations[0]!.message).toContain(
      'Illegal synchronize_srcu() in same-type SRCU read-side critical section',
    );
    expect(r.reason).toBe('violation');
    expect(returned).toBe(true);
  });

  it("synchronize inside another domain's read section is fine", () => {
    const sim = Simulation.create({ seed: 1, cpus: 2 });
    sim.addOracle(new SrcuOracle());
    const a = new SrcuDomain(sim.kernel, 'domain_a');
    const b = new SrcuDomain(sim.kernel, 'domain_b');
    let returned = false;
    sim.spawn('t', 0, function* () {
      yield* a.read(function* () {
        yield* b.synchronize();
        returned = true;
      });
    });
    const r = sim.run();
    expect(r.violations).toEqual([]);
    expect(r.reason).toBe('done');
    expect(returned).toBe(true);
    expect(a.gpSeq).toBe(0);
    expect(b.gpSeq).toBe(1);
  });

  it('synchronize in atomic context is reported as sleep-in-atomic (might_sleep)', () => {
    const sim = Simulation.create({ seed: 1, cpus: 2 });
    const srcu = new SrcuDomain(sim.kernel, 'atomic');
    sim.spawn('t', 0, function* () {
      sim.scheduler.preemptDisable('spinlock dev->lock');
      yield* srcu.synchronize();
      sim.scheduler.preemptEnable();
    });
    sim.run();
    expect(kinds(sim)[0]).toBe('sleep-in-atomic');
    expect(sim.oracles.violations[0]!.message).toContain('synchronize_srcu');
  });
});

describe('call_srcu and srcu_barrier', () => {
  it('51: a call_srcu callback never runs while an earlier reader is inside, and runs exactly once', () => {
    const sim = Simulation.create({ seed: 1, cpus: 2, strategy: 'round-robin' });
    sim.addOracle(new SrcuOracle());
    const srcu = new SrcuDomain(sim.kernel, 'srcu51');
    const events = recordSrcu(sim);
    let runs = 0;
    let readersAtRun = -1;
    sim.spawn('reader', 0, function* () {
      const idx = srcu.readLock();
      yield* sim.scheduler.sleepFor(20_000);
      srcu.readUnlock(idx);
    });
    sim.spawn('caller', 1, function* () {
      while (srcu.readers() === 0) yield* sim.scheduler.preempt();
      srcu.callSrcu(() => {
        runs++;
        readersAtRun = srcu.readers();
      });
      expect(srcu.pendingCallbacks()).toBe(1);
    });
    const r = sim.run();
    expect(r.violations).toEqual([]);
    expect(runs).toBe(1);
    expect(readersAtRun).toBe(0);
    expect(srcu.pendingCallbacks()).toBe(0);
    expect(at(events, 'srcu.read_unlock')).toBeLessThan(at(events, 'srcu.cb_invoke'));
    expect(events.filter((e) => e.type === 'srcu.cb_invoke')).toHaveLength(1);
  });

  it('51: a callback may run while a reader that began after the grace period flipped the index is still inside', () => {
    const sim = Simulation.create({ seed: 1, cpus: 2, strategy: 'round-robin' });
    sim.addOracle(new SrcuOracle());
    const srcu = new SrcuDomain(sim.kernel, 'later');
    let readersAtRun = -1;
    sim.spawn('caller', 0, function* () {
      const before = srcu.activeIndex;
      srcu.callSrcu(() => (readersAtRun = srcu.readers()));
      // A reader entering before the flip is counted in the old index and is waited for; one
      // entering after it is not. Enter after the flip and stay inside until the callback ran.
      while (srcu.gpState !== 'scan2') yield* sim.scheduler.preempt();
      const idx = srcu.readLock();
      expect(idx).toBe(1 - before);
      while (readersAtRun < 0) yield* sim.scheduler.preempt();
      srcu.readUnlock(idx);
    });
    const r = sim.run();
    expect(r.violations).toEqual([]);
    expect(readersAtRun).toBe(1);
  });

  it('52: srcu_barrier returns only after every callback queued before it has run', () => {
    const sim = Simulation.create({ seed: 1, cpus: 3, strategy: 'random' });
    sim.addOracle(new SrcuOracle());
    const srcu = new SrcuDomain(sim.kernel, 'srcu52');
    const ran: number[] = [];
    let ranAtBarrier = -1;
    let late = false;
    sim.spawn('reader', 0, function* () {
      yield* srcu.read(function* () {
        yield* sim.scheduler.sleepFor(10_000);
      });
    });
    sim.spawn('caller', 1, function* () {
      while (srcu.readers() === 0) yield* sim.scheduler.preempt();
      for (let i = 0; i < 5; i++) {
        srcu.callSrcu(() => ran.push(i));
        yield* sim.scheduler.preempt();
      }
      yield* srcu.barrier();
      ranAtBarrier = ran.length;
      srcu.callSrcu(() => (late = true));
    });
    const r = sim.run();
    expect(r.violations).toEqual([]);
    expect(ranAtBarrier).toBe(5);
    expect(ran).toEqual([0, 1, 2, 3, 4]);
    expect(late).toBe(true);
  });

  it('52: srcu_barrier with nothing queued returns at once', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1 });
    const srcu = new SrcuDomain(sim.kernel, 'empty');
    const events = recordSrcu(sim);
    sim.spawn('t', 0, function* () {
      yield* srcu.barrier();
    });
    expect(sim.run().reason).toBe('done');
    expect(events.map((e) => e.type)).toEqual(['srcu.barrier_start', 'srcu.barrier_end']);
  });

  it('a callback runs with bottom halves disabled: calling might_sleep() in it is reported as sleep-in-atomic', () => {
    const sim = Simulation.create({ seed: 1, cpus: 2 });
    const srcu = new SrcuDomain(sim.kernel, 'bh');
    sim.spawn('t', 0, function* () {
      srcu.callSrcu(() => sim.kernel.mightSleep('kmalloc(GFP_KERNEL)'));
      yield* srcu.barrier();
    });
    sim.run();
    expect(kinds(sim)).toEqual(['sleep-in-atomic']);
    const v = sim.oracles.violations[0]!;
    expect(v.message).toContain('srcu callback (softirq, bottom halves disabled)');
    expect(v.taskName).toBe('kworker/srcu:bh');
  });

  it('a callback that throws crashes its kworker (reported); a new kworker serves the rest of the queue', () => {
    const sim = Simulation.create({ seed: 1, cpus: 2, stopOnViolation: false });
    const srcu = new SrcuDomain(sim.kernel, 'oops');
    let after = false;
    let returned = false;
    sim.spawn('t', 0, function* () {
      srcu.callSrcu(() => {
        throw new Error('oops in callback');
      });
      srcu.callSrcu(() => (after = true));
      yield* srcu.synchronize();
      returned = true;
    });
    const r = sim.run();
    expect(kinds(sim)).toEqual(['exception']);
    expect(r.violations[0]!.taskName).toBe('kworker/srcu:oops');
    expect(after).toBe(true);
    expect(returned).toBe(true);
  });

  it('the kworker runs on the last CPU by default, or where options.kworkerOn says', () => {
    const sim = Simulation.create({ seed: 1, cpus: 3 });
    const a = new SrcuDomain(sim.kernel, 'a');
    const b = new SrcuDomain(sim.kernel, 'b', { kworkerOn: 'cpu0' });
    sim.spawn('t', 0, function* () {
      yield* a.synchronize();
      yield* b.synchronize();
    });
    expect(sim.run().reason).toBe('done');
    const workers = sim.scheduler.tasks.filter((t) => t.name.startsWith('kworker/srcu:'));
    expect(workers.map((t) => [t.name, t.context.name, t.daemon])).toEqual([
      ['kworker/srcu:a', 'cpu2', true],
      ['kworker/srcu:b', 'cpu0', true],
    ]);
    expect(() => new SrcuDomain(sim.kernel, 'c', { kworkerOn: 'cpu9' })).toThrow(/cpu9/);
  });
});

describe('SRCU read-side sections as observable scopes (ARCHITECTURE §5)', () => {
  it('a scope that stays subscribed across many steps delays a grace period until it is unsubscribed', () => {
    const sim = Simulation.create({ seed: 1, cpus: 3, strategy: 'random' });
    sim.addOracle(new SrcuOracle());
    const srcu = new SrcuDomain(sim.kernel, 'scoped');
    const events = recordSrcu(sim);
    const source = new Subject<number>();
    const seen: number[] = [];
    const sub = srcu.scope(source).subscribe((v) => seen.push(v));
    expect(srcu.readers()).toBe(1);
    let returned = false;
    sim.spawn('updater', 0, function* () {
      yield* srcu.synchronize();
      returned = true;
    });
    sim.spawn('observer', 1, function* () {
      for (let i = 0; i < 30; i++) {
        source.next(i);
        expect(returned).toBe(false);
        yield* sim.scheduler.preempt();
      }
      sub.unsubscribe();
    });
    const r = sim.run();
    expect(r.violations).toEqual([]);
    expect(returned).toBe(true);
    expect(seen).toHaveLength(30);
    const unlock = at(
      events,
      'srcu.read_unlock',
      (e) => e.type === 'srcu.read_unlock' && e.data.reader === 'scope',
    );
    expect(at(events, 'srcu.sync_start')).toBeLessThan(unlock);
    expect(unlock).toBeLessThan(at(events, 'srcu.sync_end'));
    expect(events.filter((e) => e.type === 'srcu.read_unlock')).toHaveLength(1);
  });

  it('complete and error leave the section exactly once (a later unsubscribe does not leave again)', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1 });
    const srcu = new SrcuDomain(sim.kernel, 'once');
    const events = recordSrcu(sim);
    const unlocks = () => events.filter((e) => e.type === 'srcu.read_unlock').length;

    // Synchronous completion: entered and left inside subscribe().
    const s1 = srcu.scope(of(1, 2, 3)).subscribe();
    expect(unlocks()).toBe(1);
    s1.unsubscribe();
    expect(unlocks()).toBe(1);

    // Error.
    let caught = false;
    const s2 = srcu.scope(throwError(() => new Error('boom'))).subscribe({
      error: () => {
        caught = true;
        // The downstream handler still runs inside the section.
        expect(srcu.readers()).toBe(1);
      },
    });
    expect(caught).toBe(true);
    expect(unlocks()).toBe(2);
    s2.unsubscribe();

    // Later completion of a live subject, then unsubscribe.
    const subject = new Subject<number>();
    const s3 = srcu.scope(subject).subscribe();
    expect(srcu.readers()).toBe(1);
    subject.complete();
    expect(srcu.readers()).toBe(0);
    s3.unsubscribe();
    expect(unlocks()).toBe(3);
    expect(srcu.readers()).toBe(0);
    expect(events.filter((e) => e.type === 'srcu.read_lock').map((e) => e.data.reader)).toEqual([
      'scope',
      'scope',
      'scope',
    ]);
  });
});

describe('SRCU and lockdep', () => {
  it('"srcu_read_lock(S); mutex_lock(M)" against "mutex_lock(M); synchronize_srcu(S)" is reported as lockdep-circular', () => {
    const sim = Simulation.create({ seed: 1, cpus: 2, strategy: 'round-robin' });
    const srcu = new SrcuDomain(sim.kernel, 'S');
    const m = new Mutex(sim.kernel, 'M');
    let first = false;
    sim.spawn('reader', 0, function* () {
      const idx = srcu.readLock();
      yield* m.lock();
      m.unlock();
      srcu.readUnlock(idx);
      first = true;
    });
    sim.spawn('updater', 1, function* () {
      while (!first) yield* sim.scheduler.preempt();
      yield* m.lock();
      yield* srcu.synchronize();
      m.unlock();
    });
    sim.run();
    expect(kinds(sim)).toEqual(['lockdep-circular']);
    expect(sim.oracles.violations[0]!.message).toMatch(/S.*M|M.*S/);
  });

  it('a task reader is a recursive-read acquisition: nesting the same domain is not recursive locking', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1 });
    const srcu = new SrcuDomain(sim.kernel, 'nest');
    let held = -1;
    sim.spawn('t', 0, function* () {
      const a = srcu.readLock();
      const b = srcu.readLock();
      held = sim.lockdep
        .held()
        .filter((h) => h.instance === srcu && h.mode === 'recursive-read').length;
      yield* sim.scheduler.preempt();
      srcu.readUnlock(b);
      srcu.readUnlock(a);
    });
    const r = sim.run();
    expect(r.violations).toEqual([]);
    expect(held).toBe(2);
  });
});

// ---------------------------------------------------------------------------------------------
// Exploration

/** Per-iteration tallies the scenario records, to prove every run did its work. */
interface Tally {
  syncs: number;
  queued: number;
  invoked: number;
  barrierSawAll: boolean;
}

/**
 * 3 readers on 3 CPUs (random nesting depth, sleeps and preemption points inside their
 * sections), one task calling synchronize 3 times, one queueing 3 callbacks then a barrier.
 */
function srcuScenario(
  id: string,
  make: (kernel: Kernel, name: string) => SrcuDomain,
  tallies: Tally[],
): Scenario {
  return {
    id,
    options: () => ({ cpus: 3, log: false, maxSteps: 20_000 }),
    setup(sim) {
      sim.addOracle(new SrcuOracle());
      const srcu = make(sim.kernel, 'explore_srcu');
      const sched = sim.scheduler;
      const rnd = sim.random.stream('srcu-scenario');
      const t: Tally = { syncs: 0, queued: 0, invoked: 0, barrierSawAll: false };
      tallies.push(t);
      const pause = function* (): TaskGen<void> {
        if (rnd.chance(0.3)) yield* sched.sleepFor(rnd.int(1, 4) * 200);
        else yield* sched.preempt();
      };
      for (let r = 0; r < 3; r++) {
        sim.spawn(`reader${r}`, r, function* () {
          for (let i = 0; i < 3; i++) {
            const depth = rnd.int(1, 3);
            const idxs: number[] = [];
            for (let d = 0; d < depth; d++) {
              idxs.push(srcu.readLock());
              yield* pause();
            }
            while (idxs.length > 0) {
              srcu.readUnlock(idxs.pop()!);
              yield* pause();
            }
          }
        });
      }
      sim.spawn('syncer', 0, function* () {
        for (let i = 0; i < 3; i++) {
          yield* sched.preempt();
          yield* srcu.synchronize();
          t.syncs++;
        }
      });
      sim.spawn('caller', 1, function* () {
        for (let i = 0; i < 3; i++) {
          srcu.callSrcu(() => t.invoked++);
          t.queued++;
          yield* pause();
        }
        yield* srcu.barrier();
        t.barrierSawAll = t.invoked === t.queued;
      });
    },
  };
}

/** A deliberately broken SRCU: the grace period does not wait for the old index (no SCAN2). */
class NoScan2Srcu extends SrcuDomain {
  protected override *waitForReaders(idx: number, phase: 'scan1' | 'scan2'): TaskGen<void> {
    if (phase === 'scan2') return;
    yield* super.waitForReaders(idx, phase);
  }
}

describe('SRCU under exploration (invariants 50-52, SrcuOracle)', () => {
  const strategies = [
    ['random', 'random' as const],
    ['pct depth 3', { kind: 'pct' as const, depth: 3 }],
  ] as const;

  for (const [label, strategy] of strategies) {
    it(`50/51/52 hold over 500 ${label} schedules: every sync, callback and barrier completes, the oracle finds nothing`, () => {
      const tallies: Tally[] = [];
      const scenario = srcuScenario('srcu-correct', (k, n) => new SrcuDomain(k, n), tallies);
      const report = explore(scenario, { strategy, iterations: 500 });
      expect(report.failures).toEqual([]);
      expect(report.iterations).toBe(500);
      // explore's PCT probe run adds one tally; every run completed all its work.
      expect(tallies.length).toBeGreaterThanOrEqual(500);
      for (const t of tallies) {
        expect(t).toEqual({ syncs: 3, queued: 3, invoked: 3, barrierSawAll: true });
      }
    });

    it(`the oracle catches an SRCU without SCAN2 within 500 ${label} schedules, and the failure replays`, () => {
      const scenario = srcuScenario('srcu-no-scan2', (k, n) => new NoScan2Srcu(k, n), []);
      const report = explore(scenario, { strategy, iterations: 500 });
      expect(report.failures.length).toBe(1);
      const failure = report.failures[0]!;
      expect(['srcu-early-sync', 'srcu-early-callback']).toContain(failure.violations[0]!.kind);
      const again = replay(scenario, failure);
      expect(again.result.violations.map((v) => v.message)).toEqual(
        failure.violations.map((v) => v.message),
      );
    });
  }

  it('the oracle reports a callback invoked twice (srcu-double-callback)', () => {
    const sim = Simulation.create({ seed: 1, cpus: 1, stopOnViolation: false });
    sim.addOracle(new SrcuOracle());
    sim.spawn('fake', 0, function* () {
      sim.bus.emit('srcu.cb_queue', { domain: 'd', cb: 7 });
      sim.bus.emit('srcu.cb_invoke', { domain: 'd', cb: 7 });
      sim.bus.emit('srcu.cb_invoke', { domain: 'd', cb: 7 });
      yield* sim.scheduler.preempt();
    });
    sim.run();
    expect(kinds(sim)).toEqual(['srcu-double-callback']);
  });
});
