import { describe, expect, it } from '@jest/globals';
import {
  DEFINE_WD_CLASS,
  DEFINE_WW_CLASS,
  Errno,
  explore,
  Mutex,
  Simulation,
  WaitQueue,
  WwAcquireCtx,
  WwMutex,
} from '@mmnsim/core';
import type { RunResult, Scenario, Strategy, TaskGen } from '@mmnsim/core';
import type { WwClass } from '@mmnsim/core';

const EDEADLK = -Errno.EDEADLK;
const EALREADY = -Errno.EALREADY;

// Spec: notifier-core.md §8.2 (ww_mutex) and invariants 53-57 (§9); kernel/locking/ww_mutex.h,
// Documentation/locking/ww-mutex-design.rst.

/** Module-level classes, as the kernel defines them: stamps are still per simulation. */
const WW = DEFINE_WW_CLASS('test_ww_class');
const WD = DEFINE_WD_CLASS('test_wd_class');

const kinds = (sim: Simulation): string[] => sim.oracles.violations.map((v) => v.kind);

function newSim(cpus = 2, strategy: Strategy | 'round-robin' = 'round-robin'): Simulation {
  return Simulation.create({ seed: 1, cpus, strategy, stopOnViolation: false });
}

/** Named flags that tasks wait for, to order a scenario without polling. */
function gates(sim: Simulation) {
  const q = new WaitQueue(sim.scheduler, 'test.gate');
  const set = new Set<string>();
  return {
    open(flag: string): void {
      set.add(flag);
      q.wakeAll();
    },
    *until(flag: string): TaskGen<void> {
      yield* q.waitEvent(() => set.has(flag));
    },
  };
}

/** Runs the task named `name` whenever it can run, otherwise the lowest id. */
function prefer(name: string): Strategy {
  return {
    name: `prefer-${name}`,
    pick: (c) => c.find((t) => t.name === name) ?? c.reduce((a, b) => (b.id < a.id ? b : a)),
    describe: () => ({ kind: `prefer-${name}` }),
  };
}

/** Tasks that blocked at least once, by id, from the `sched.block` events. */
function blockedTasks(sim: Simulation): Set<number> {
  const s = new Set<number>();
  sim.bus.on('sched.block').subscribe((e) => s.add(e.task));
  return s;
}

// ---------------------------------------------------------------------------------------------
// The acceptance workload: 4 transactions, each locking 3 of 5 ww_mutexes in its own random
// order with the standard back-off loop (ww-mutex-design.rst), then unlocking all and fini.

interface WorkloadStats {
  completed: number;
  edeadlk: number;
  /** -EDEADLKs made by fault injection (derived from each context's final interval). */
  injected: number;
  runs: number;
}

const newStats = (): WorkloadStats => ({ completed: 0, edeadlk: 0, injected: 0, runs: 0 });

/** How many times the injection fired, from the interval it grew to (1, 3, 10, 35 …). */
function injections(ctx: WwAcquireCtx): number {
  let n = 0;
  for (let t = 1; t < ctx.deadlockInjectInterval; t = t * 2 + t + Math.floor(t / 2)) n++;
  return n;
}

interface WorkloadOptions {
  readonly cls: WwClass;
  readonly injectDeadlocks?: boolean;
  readonly rounds?: number;
  readonly stats: WorkloadStats;
}

function wwWorkload(o: WorkloadOptions): Scenario {
  return {
    id: `ww-workload-${o.cls.algorithm}${o.injectDeadlocks === true ? '-inject' : ''}`,
    options: () => ({ cpus: 4, log: false }),
    setup(sim) {
      o.stats.runs++;
      const k = sim.kernel;
      const rng = sim.random.stream('ww-workload');
      const cpusUsed = rng.int(2, 4);
      const locks = [0, 1, 2, 3, 4].map((i) => new WwMutex(k, `obj${i}`, o.cls));
      const live: WwAcquireCtx[] = [];
      const ctxOfTask = new Map<number, WwAcquireCtx>();

      // Invariant 53, checked at every lock/unlock call's return.
      const bookkeeping = (): void => {
        for (const c of live) {
          const n = locks.filter((l) => l.ctx === c).length;
          if (n !== c.acquired) {
            k.report(
              'test-inv53',
              `ctx ${c.stamp}: acquired ${c.acquired} but ${n} ww_mutexes point to it`,
            );
          }
        }
      };
      sim.bus.on('ww.unlock').subscribe(bookkeeping);
      sim.bus.on('ww.lock').subscribe((e) => {
        bookkeeping();
        // Invariant 54: a context holding nothing never gets -EDEADLK (even injection needs > 1).
        if (e.data.result === EDEADLK) {
          const c = live.find((x) => x.stamp === e.data.stamp);
          if (c === undefined || c.acquired === 0) {
            k.report('test-inv54', `ctx ${e.data.stamp} got -EDEADLK holding nothing`);
          }
        }
      });
      // Invariant 54 at the moment a context goes to sleep on a ww_mutex while holding locks.
      sim.bus.on('sched.block').subscribe((e) => {
        const c = ctxOfTask.get(e.task);
        const m = c?.blockedOn ?? null;
        if (c === undefined || m === null || c.acquired === 0) return;
        const h = m.ctx;
        if (h === null) return;
        if (o.cls.isWaitDie && h.stamp < c.stamp) {
          k.report(
            'test-inv54-wd',
            `ctx ${c.stamp} sleeps on ${m.name} held by older ctx ${h.stamp}`,
          );
        }
        if (!o.cls.isWaitDie && h.stamp > c.stamp && !h.wounded) {
          k.report(
            'test-inv54-ww',
            `ctx ${c.stamp} waits for younger ${h.stamp} without wounding it`,
          );
        }
      });

      for (let t = 0; t < 4; t++) {
        const orders: number[][] = [];
        for (let r = 0; r < (o.rounds ?? 1); r++)
          orders.push(rng.shuffle([0, 1, 2, 3, 4]).slice(0, 3));
        sim.spawn(`tx${t}`, t % cpusUsed, function* (self) {
          for (const order of orders) {
            const ctx = new WwAcquireCtx(
              k,
              o.cls,
              o.injectDeadlocks === true ? { injectDeadlocks: true } : undefined,
            );
            live.push(ctx);
            ctxOfTask.set(self.id, ctx);
            const mine = order.map((i) => locks[i]!);
            let contended: WwMutex | null = null;
            const held: WwMutex[] = [];
            for (;;) {
              if (contended !== null) {
                const r = yield* contended.lockSlow(ctx);
                if (r !== 0) k.report('test-slow', `lockSlow returned ${r}`);
                held.push(contended);
              }
              let lost: WwMutex | null = null;
              for (const m of mine) {
                if (m === contended) continue;
                const r = yield* m.lock(ctx);
                if (r === EDEADLK) {
                  lost = m;
                  break;
                }
                if (r !== 0) k.report('test-lock', `lock returned ${r}`);
                held.push(m);
                yield* sim.scheduler.preempt();
              }
              if (lost === null) break;
              o.stats.edeadlk++;
              while (held.length > 0) held.pop()!.unlock();
              contended = lost;
            }
            ctx.done();
            yield* sim.scheduler.preempt(); // the critical section
            for (const m of held) m.unlock();
            ctx.fini();
            o.stats.injected += injections(ctx);
            live.splice(live.indexOf(ctx), 1);
          }
          o.stats.completed++;
        });
      }
    },
  };
}

function countDone(results: RunResult[]): number {
  return results.filter((r) => r.reason === 'done').length;
}

describe('ww_mutex acceptance: 4 transactions x 3 of 5 locks in random orders (§8.2, invariants 53-54)', () => {
  for (const cls of [WW, WD]) {
    it(`${cls.algorithm}: 500 PCT schedules never deadlock, never trip lockdep, keep acquired == held count (53) and every transaction completes`, () => {
      const stats: WorkloadStats = newStats();
      const results: RunResult[] = [];
      const report = explore(wwWorkload({ cls, stats }), {
        strategy: { kind: 'pct', depth: 3 },
        iterations: 500,
        stopOnFirst: false,
        onIteration: (_i, r) => results.push(r),
      });
      expect(
        report.failures.map((f) => f.violations.map((v) => `${v.kind}: ${v.message}`)),
      ).toEqual([]);
      expect(report.iterations).toBe(500);
      expect(countDone(results)).toBe(500);
      // The probe run of PCT is one more run of the scenario.
      expect(stats.completed).toBe(4 * stats.runs);
      expect(stats.edeadlk).toBeGreaterThan(0); // collisions really happened and were resolved
      expect(stats.injected).toBe(0);
    });

    it(`${cls.algorithm}: 300 random schedules complete without violations either (53, 54)`, () => {
      const stats: WorkloadStats = newStats();
      const report = explore(wwWorkload({ cls, stats }), {
        strategy: 'random',
        iterations: 300,
        stopOnFirst: false,
        seed: 1000,
      });
      expect(
        report.failures.map((f) => f.violations.map((v) => `${v.kind}: ${v.message}`)),
      ).toEqual([]);
      expect(stats.completed).toBe(4 * 300);
      expect(stats.edeadlk).toBeGreaterThan(0);
    });
  }

  it('fault injection (DEBUG_WW_MUTEX_SLOWPATH): fake -EDEADLKs exercise the back-off path and the workload still completes (54: never with acquired <= 1)', () => {
    for (const cls of [WW, WD]) {
      // Round-robin, 3 transactions per task: the injected deaths are the back-offs taken.
      const stats = newStats();
      const report = explore(wwWorkload({ cls, stats, injectDeadlocks: true, rounds: 3 }), {
        strategy: 'round-robin',
        iterations: 1,
      });
      expect(report.failures).toEqual([]);
      expect(stats.completed).toBe(4);
      expect(stats.injected).toBeGreaterThan(0);
      expect(stats.edeadlk).toBeGreaterThanOrEqual(stats.injected);
      // And over PCT schedules, mixed with real collisions.
      const pctStats = newStats();
      const pct = explore(wwWorkload({ cls, stats: pctStats, injectDeadlocks: true, rounds: 3 }), {
        strategy: { kind: 'pct', depth: 3 },
        iterations: 100,
        stopOnFirst: false,
      });
      expect(pct.failures.map((f) => f.violations.map((v) => v.message))).toEqual([]);
      expect(pctStats.completed).toBe(4 * pctStats.runs);
      expect(pctStats.injected).toBeGreaterThan(0);
    }
  });

  it('the same workload with plain mutexes is reported by lockdep (lockdep-circular) in runs that did not deadlock, and deadlocks in some schedule (with the wait-for graph)', () => {
    const scenario: Scenario = {
      id: 'plain-mutex-workload',
      options: () => ({ cpus: 4, log: false, stopOnViolation: false }),
      setup(sim) {
        const rng = sim.random.stream('ww-workload');
        const cpusUsed = rng.int(2, 4);
        const locks = [0, 1, 2, 3, 4].map((i) => new Mutex(sim.kernel, `obj${i}`));
        for (let t = 0; t < 4; t++) {
          const order = rng.shuffle([0, 1, 2, 3, 4]).slice(0, 3);
          sim.spawn(`tx${t}`, t % cpusUsed, function* () {
            for (const i of order) {
              yield* locks[i]!.lock();
              yield* sim.scheduler.preempt();
            }
            for (const i of order) locks[i]!.unlock();
          });
        }
      },
    };
    const results: RunResult[] = [];
    explore(scenario, {
      strategy: 'random',
      iterations: 200,
      stopOnFirst: false,
      onIteration: (_i, r) => results.push(r),
    });
    // A run that ran to the end (every task exited) with a lockdep report and no deadlock.
    const circularNoDeadlock = results.filter(
      (r) =>
        r.reason !== 'deadlock' &&
        r.reason !== 'livelock' &&
        r.violations.some((v) => v.kind === 'lockdep-circular') &&
        !r.violations.some((v) => v.kind === 'deadlock'),
    );
    const deadlocked = results.filter((r) => r.violations.some((v) => v.kind === 'deadlock'));
    expect(circularNoDeadlock.length).toBeGreaterThan(0);
    expect(deadlocked.length).toBeGreaterThan(0);
    const d = deadlocked[0]!.violations.find((v) => v.kind === 'deadlock')!;
    expect(d.message).toMatch(/waits for mutex obj\d held by tx\d#\d/);
    expect(d.details).toMatchObject({
      waitFor: expect.arrayContaining([
        expect.objectContaining({ waitsOn: expect.stringMatching(/^mutex obj/) }),
      ]),
    });
    // Every deadlocked run was also flagged by lockdep before it got stuck.
    expect(deadlocked.every((r) => r.violations.some((v) => v.kind === 'lockdep-circular'))).toBe(
      true,
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe('ww_mutex: results and the two algorithms (§8.2 steps 1-8, invariants 54-55)', () => {
  it('55: locking a ww_mutex already held by the same context returns -EALREADY and leaves acquired unchanged', () => {
    const sim = newSim(1);
    const a = new WwMutex(sim.kernel, 'a', WW);
    const out: number[] = [];
    sim.spawn('t', 0, function* () {
      const ctx = new WwAcquireCtx(sim.kernel, WW);
      out.push(yield* a.lock(ctx));
      out.push(yield* a.lock(ctx));
      out.push(ctx.acquired);
      expect(a.ctx).toBe(ctx);
      a.unlock();
      out.push(ctx.acquired);
      ctx.fini();
    });
    expect(sim.run().reason).toBe('done');
    expect(out).toEqual([0, EALREADY, 1, 0]);
    expect(kinds(sim)).toEqual([]);
  });

  for (const cls of [WW, WD]) {
    it(`54 (${cls.algorithm}): a context with acquired == 0 never gets -EDEADLK: it sleeps on an older holder and gets the lock`, () => {
      const sim = newSim(2);
      const g = gates(sim);
      const x = new WwMutex(sim.kernel, 'x', cls);
      const blocked = blockedTasks(sim);
      let result = NaN;
      sim.spawn('old', 0, function* () {
        const ctx = new WwAcquireCtx(sim.kernel, cls); // stamp 1
        yield* x.lock(ctx);
        g.open('old-holds');
        yield* g.until('young-queued');
        x.unlock();
        ctx.fini();
      });
      const young = sim.spawn('young', 1, function* () {
        yield* g.until('old-holds');
        const ctx = new WwAcquireCtx(sim.kernel, cls); // stamp 2, holds nothing
        g.open('young-queued'); // same step as the lock call below: it queues before old runs
        result = yield* x.lock(ctx);
        x.unlock();
        ctx.fini();
      });
      expect(sim.run().reason).toBe('done');
      expect(result).toBe(0);
      expect(blocked.has(young.id)).toBe(true);
      expect(kinds(sim)).toEqual([]);
    });
  }

  it('54 (wait-die): a context holding locks never sleeps on a lock held by an older context — it dies at once; an older one may sleep on a younger holder', () => {
    const sim = newSim(2);
    const g = gates(sim);
    const x = new WwMutex(sim.kernel, 'x', WD);
    const a = new WwMutex(sim.kernel, 'a', WD);
    const b = new WwMutex(sim.kernel, 'b', WD);
    const blocked = blockedTasks(sim);
    const log: string[] = [];
    const old = sim.spawn('old', 0, function* () {
      const ctx = new WwAcquireCtx(sim.kernel, WD); // stamp 1
      yield* x.lock(ctx);
      g.open('x-held');
      yield* g.until('young-died');
      const r = yield* b.lock(ctx); // b held by the younger: the older waits for it
      log.push(`old b ${r} acquired=${ctx.acquired} blocked=${blocked.has(old.id)}`);
      b.unlock();
      x.unlock();
      ctx.fini();
    });
    const young = sim.spawn('young', 1, function* () {
      yield* g.until('x-held');
      const ctx = new WwAcquireCtx(sim.kernel, WD); // stamp 2
      yield* a.lock(ctx);
      yield* b.lock(ctx);
      const r = yield* x.lock(ctx); // older holder, and we hold locks: die without sleeping
      log.push(`young x ${r} blocked=${blocked.has(young.id)}`);
      expect(ctx.contendingLock).toBe(x);
      g.open('young-died');
      while (b.waiterCount === 0) yield* sim.scheduler.preempt();
      b.unlock(); // back off: release everything …
      a.unlock();
      const s = yield* x.lockSlow(ctx); // … and sleep (holding nothing) until old is done
      log.push(`young slow x ${s} acquired=${ctx.acquired}`);
      x.unlock();
      ctx.fini();
    });
    expect(sim.run().reason).toBe('done');
    expect(log).toEqual([
      `young x ${EDEADLK} blocked=false`,
      'old b 0 acquired=2 blocked=true',
      'young slow x 0 acquired=1',
    ]);
    expect(kinds(sim)).toEqual([]);
  });

  it('54 (wound-wait): an older requester holding locks that queues behind a younger holder wounds it; the wound is noticed only at the next contended lock (step 7)', () => {
    const sim = newSim(2);
    const g = gates(sim);
    const x = new WwMutex(sim.kernel, 'x', WW);
    const a = new WwMutex(sim.kernel, 'a', WW);
    const c = new WwMutex(sim.kernel, 'c', WW);
    const wounds: { victim: number; by: number }[] = [];
    sim.bus.on('ww.wound').subscribe((e) => wounds.push(e.data));
    const log: string[] = [];
    let youngCtx: WwAcquireCtx | null = null;
    sim.spawn('old', 0, function* () {
      const ctx = new WwAcquireCtx(sim.kernel, WW); // stamp 1
      yield* g.until('young-init');
      yield* a.lock(ctx);
      g.open('old-holds-a');
      yield* g.until('young-holds-x');
      const r = yield* x.lock(ctx); // x held by the younger: wound it, wait
      log.push(`old x ${r}`);
      x.unlock();
      a.unlock();
      ctx.fini();
    });
    sim.spawn('young', 1, function* () {
      const ctx = new WwAcquireCtx(sim.kernel, WW); // stamp 2
      youngCtx = ctx;
      g.open('young-init');
      yield* x.lock(ctx);
      yield* g.until('old-holds-a');
      g.open('young-holds-x');
      while (!ctx.wounded) yield* sim.scheduler.preempt();
      log.push(`young wounded, x waiters ${x.waiterCount}`);
      log.push(`young c ${yield* c.lock(ctx)}`); // uncontended: lazy wound, no death
      log.push(`young a ${yield* a.lock(ctx)}`); // contended while wounded: back off
      c.unlock();
      x.unlock();
      yield* a.lockSlow(ctx);
      log.push(`young slow a ${ctx.acquired} wounded=${ctx.wounded}`);
      a.unlock();
      ctx.fini();
    });
    expect(sim.run().reason).toBe('done');
    expect(log).toEqual([
      'young wounded, x waiters 1',
      'young c 0',
      `young a ${EDEADLK}`,
      'old x 0',
      'young slow a 1 wounded=false',
    ]);
    expect(youngCtx).not.toBeNull();
    expect(wounds).toEqual([{ victim: 2, by: 1 }]);
    expect(kinds(sim)).toEqual([]);
  });

  it('wound-wait: a wounded context that never contends again finishes normally (lazy wounding, step 7)', () => {
    const sim = newSim(2);
    const g = gates(sim);
    const x = new WwMutex(sim.kernel, 'x', WW);
    const a = new WwMutex(sim.kernel, 'a', WW);
    const out: string[] = [];
    sim.spawn('old', 0, function* () {
      const ctx = new WwAcquireCtx(sim.kernel, WW);
      yield* g.until('young-init');
      yield* a.lock(ctx);
      yield* g.until('young-holds-x');
      out.push(`old x ${yield* x.lock(ctx)}`);
      x.unlock();
      a.unlock();
      ctx.fini();
    });
    sim.spawn('young', 1, function* () {
      const ctx = new WwAcquireCtx(sim.kernel, WW);
      g.open('young-init');
      yield* x.lock(ctx);
      g.open('young-holds-x');
      while (!ctx.wounded) yield* sim.scheduler.preempt();
      out.push('young wounded, done anyway');
      x.unlock();
      ctx.fini();
    });
    expect(sim.run().reason).toBe('done');
    expect(out).toEqual(['young wounded, done anyway', 'old x 0']);
    expect(kinds(sim)).toEqual([]);
  });

  // Step 6: a context that takes a lock ahead of an older context waiter. A contextless waiter
  // (n2) sits first, so the unlock wakes it, not the context waiter `old`; `young` steals.
  for (const cls of [WW, WD]) {
    const wd = cls.isWaitDie;
    it(`step 6 (${cls.algorithm}): taking a lock ahead of a lock-holding context waiter ${wd ? 'wakes the younger waiter so it dies' : 'wounds the younger taker itself'}`, () => {
      const sim = newSim(4, prefer('y'));
      const g = gates(sim);
      const b = new WwMutex(sim.kernel, 'b', cls);
      const a = new WwMutex(sim.kernel, 'a', cls);
      const c = new WwMutex(sim.kernel, 'c', cls);
      const wounds: { victim: number; by: number }[] = [];
      sim.bus.on('ww.wound').subscribe((e) => wounds.push(e.data));
      const out: string[] = [];
      sim.spawn('n', 0, function* () {
        yield* b.lock(null);
        g.open('n-holds');
        yield* g.until('o-queued');
        b.unlock();
        g.open('freed');
      });
      sim.spawn('n2', 1, function* () {
        yield* g.until('n-holds');
        g.open('n2-queued');
        yield* b.lock(null);
        b.unlock();
      });
      sim.spawn('o', 2, function* () {
        yield* g.until('n2-queued');
        if (wd) yield* g.until('y-init'); // wait-die: o is the younger one
        const ctx = new WwAcquireCtx(sim.kernel, cls);
        g.open('o-init');
        yield* a.lock(ctx);
        g.open('o-queued');
        let r = yield* b.lock(ctx);
        out.push(`o b ${r}`);
        if (r === EDEADLK) {
          a.unlock();
          yield* b.lockSlow(ctx);
          r = yield* a.lock(ctx);
          out.push(`o retry a ${r}`);
        }
        b.unlock();
        a.unlock();
        ctx.fini();
      });
      sim.spawn('y', 3, function* () {
        if (!wd) yield* g.until('o-init'); // wound-wait: y is the younger one
        const ctx = new WwAcquireCtx(sim.kernel, cls);
        g.open('y-init');
        yield* c.lock(ctx);
        yield* g.until('freed');
        out.push(`y b ${yield* b.lock(ctx)} wounded=${ctx.wounded}`);
        const r = yield* a.lock(ctx);
        out.push(`y a ${r}`);
        if (r === EDEADLK) {
          b.unlock();
          c.unlock();
          yield* a.lockSlow(ctx);
          out.push(`y retry ${yield* c.lock(ctx)} ${yield* b.lock(ctx)}`);
        }
        a.unlock();
        b.unlock();
        c.unlock();
        ctx.fini();
      });
      expect(sim.run().reason).toBe('done');
      expect(kinds(sim)).toEqual([]);
      if (wd) {
        // y (stamp 1) stole b; o (stamp 2, holding a) was woken to die.
        expect(wounds).toEqual([{ victim: 2, by: 1 }]);
        expect(out).toEqual(['y b 0 wounded=false', `o b ${EDEADLK}`, 'y a 0', 'o retry a 0']);
      } else {
        // y (stamp 2) stole b ahead of the older o (stamp 1, holding a): it wounded itself,
        // and backed off at its next contended lock.
        expect(wounds).toEqual([{ victim: 2, by: 1 }]);
        expect(out).toEqual(['y b 0 wounded=true', `y a ${EDEADLK}`, 'o b 0', 'y retry 0 0']);
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------

describe('ww_mutex debug checks (§8.2 "Debug checks that catch misuse", invariants 56-57)', () => {
  /** Locks obj0..obj2 with fault injection on a stamp-1 context: the third lock fakes -EDEADLK. */
  function* injected(sim: Simulation, locks: WwMutex[]): TaskGen<WwAcquireCtx> {
    const ctx = new WwAcquireCtx(sim.kernel, WW, { injectDeadlocks: true });
    expect(ctx.stamp).toBe(1);
    expect(yield* locks[0]!.lock(ctx)).toBe(0);
    expect(yield* locks[1]!.lock(ctx)).toBe(0); // acquired 2: countdown 1 -> 0
    expect(yield* locks[2]!.lock(ctx)).toBe(EDEADLK); // acquired 3: fires, lock released again
    expect(ctx.acquired).toBe(2);
    expect(locks[2]!.ctx).toBeNull();
    expect(locks[2]!.isLocked()).toBe(false);
    expect(ctx.contendingLock).toBe(locks[2]);
    return ctx;
  }

  function lockSet(sim: Simulation, n = 4): WwMutex[] {
    return Array.from({ length: n }, (_, i) => new WwMutex(sim.kernel, `obj${i}`, WW));
  }

  it('56: after -EDEADLK, locking a different ww_mutex than the contended one is reported', () => {
    const sim = newSim(1);
    const locks = lockSet(sim);
    sim.spawn('t', 0, function* () {
      const ctx = yield* injected(sim, locks);
      locks[0]!.unlock();
      locks[1]!.unlock();
      yield* locks[3]!.lock(ctx);
      locks[3]!.unlock();
      ctx.fini();
    });
    sim.run();
    expect(kinds(sim)).toEqual(['ww-edeadlk-wrong-lock']);
    expect(sim.oracles.violations[0]!.message).toContain(
      'only legal next lock is the contended obj2',
    );
  });

  it('56: after -EDEADLK, re-locking the contended ww_mutex (lock or lockSlow) before releasing the others (acquired > 0) is reported', () => {
    const sim = newSim(1);
    const locks = lockSet(sim);
    sim.spawn('t', 0, function* () {
      const ctx = yield* injected(sim, locks);
      yield* locks[2]!.lockSlow(ctx); // acquired == 2
      locks[2]!.unlock();
      locks[1]!.unlock();
      locks[0]!.unlock();
      ctx.fini();
    });
    sim.run();
    expect(kinds(sim)).toEqual(['ww-edeadlk-not-released']);
    expect(sim.oracles.violations[0]!.message).toContain('still holds 2 ww_mutex(es)');

    const sim2 = newSim(1);
    const locks2 = lockSet(sim2);
    sim2.spawn('t', 0, function* () {
      const ctx = yield* injected(sim2, locks2);
      yield* locks2[2]!.lock(ctx);
      locks2[2]!.unlock();
      locks2[1]!.unlock();
      locks2[0]!.unlock();
      ctx.fini();
    });
    sim2.run();
    expect(kinds(sim2)).toEqual(['ww-edeadlk-not-released']);
  });

  it('56: the legal back-off (release all, lockSlow the contended lock, retry) is not reported', () => {
    const sim = newSim(1);
    const locks = lockSet(sim);
    const out: number[] = [];
    sim.spawn('t', 0, function* () {
      const ctx = yield* injected(sim, locks);
      locks[1]!.unlock();
      locks[0]!.unlock();
      out.push(yield* locks[2]!.lockSlow(ctx));
      out.push(yield* locks[0]!.lock(ctx), yield* locks[1]!.lock(ctx), yield* locks[2]!.lock(ctx));
      out.push(ctx.acquired);
      for (const m of locks.slice(0, 3)) m.unlock();
      ctx.fini();
    });
    expect(sim.run().reason).toBe('done');
    expect(out).toEqual([0, 0, 0, EALREADY, 3]);
    expect(kinds(sim)).toEqual([]);
  });

  it('lockSlow with no -EDEADLK pending (contending_lock NULL) is reported', () => {
    const sim = newSim(1);
    const a = new WwMutex(sim.kernel, 'a', WW);
    sim.spawn('t', 0, function* () {
      const ctx = new WwAcquireCtx(sim.kernel, WW);
      yield* a.lockSlow(ctx);
      a.unlock();
      ctx.fini();
    });
    sim.run();
    expect(kinds(sim)).toEqual(['ww-slow-without-edeadlk']);
  });

  it('a second -EDEADLK while contending_lock is still set (no back-off in between) is reported', () => {
    const sim = newSim(2);
    const g = gates(sim);
    const x = new WwMutex(sim.kernel, 'x', WD);
    const a = new WwMutex(sim.kernel, 'a', WD);
    const out: number[] = [];
    const young = sim.spawn('young', 1, function* () {
      yield* g.until('x-held');
      const ctx = new WwAcquireCtx(sim.kernel, WD);
      yield* a.lock(ctx);
      out.push(yield* x.lock(ctx)); // dies: older holder
      out.push(yield* x.lock(ctx)); // misuse: again without backing off
      a.unlock();
      ctx.fini();
    });
    sim.spawn('old', 0, function* () {
      const ctx = new WwAcquireCtx(sim.kernel, WD);
      yield* x.lock(ctx);
      g.open('x-held');
      yield* sim.scheduler.join(young);
      x.unlock();
      ctx.fini();
    });
    sim.run();
    expect(out).toEqual([EDEADLK, EDEADLK]);
    expect(kinds(sim)).toEqual(['ww-edeadlk-not-released', 'ww-double-edeadlk']);
  });

  it('a context of another ww_class is reported (class mismatch)', () => {
    const sim = newSim(1);
    const a = new WwMutex(sim.kernel, 'a', WD);
    sim.spawn('t', 0, function* () {
      const ctx = new WwAcquireCtx(sim.kernel, WW);
      yield* a.lock(ctx);
      a.unlock();
      ctx.fini();
    });
    sim.run();
    expect(kinds(sim)).toEqual(['ww-class-mismatch']);
    expect(sim.oracles.violations[0]!.message).toContain('test_ww_class');
  });

  it('locking after ww_acquire_done is reported', () => {
    const sim = newSim(1);
    const a = new WwMutex(sim.kernel, 'a', WW);
    const b = new WwMutex(sim.kernel, 'b', WW);
    sim.spawn('t', 0, function* () {
      const ctx = new WwAcquireCtx(sim.kernel, WW);
      yield* a.lock(ctx);
      ctx.done();
      yield* b.lock(ctx);
      b.unlock();
      a.unlock();
      ctx.fini();
    });
    sim.run();
    expect(kinds(sim)).toEqual(['ww-lock-after-done']);
  });

  it('releasing a ww_mutex held by a context with plain mutex_unlock is reported, and the next acquisition sees the stale ctx', () => {
    const sim = newSim(1);
    const a = new WwMutex(sim.kernel, 'a', WW);
    sim.spawn('t', 0, function* () {
      const c1 = new WwAcquireCtx(sim.kernel, WW);
      yield* a.lock(c1);
      a.plainUnlock();
      expect(a.ctx).toBe(c1); // the kernel leaves lock->ctx behind
      c1.acquired = 0; // (forget it so that fini is clean)
      c1.fini();
      const c2 = new WwAcquireCtx(sim.kernel, WW);
      yield* a.lock(c2);
      a.unlock();
      c2.fini();
    });
    sim.run();
    expect(kinds(sim)).toEqual(['ww-plain-unlock', 'ww-stale-ctx']);
  });

  it('ww_mutex_unlock through a context whose acquired is already 0 (a corrupted or re-initialised context) is reported', () => {
    const sim = newSim(1);
    const a = new WwMutex(sim.kernel, 'a', WW);
    sim.spawn('t', 0, function* () {
      const ctx = new WwAcquireCtx(sim.kernel, WW);
      yield* a.lock(ctx);
      ctx.acquired = 0; // what re-running ww_acquire_init on a live context does
      a.unlock();
      ctx.fini();
    });
    sim.run();
    expect(kinds(sim)).toEqual(['ww-unlock-acquired-zero']);
  });

  it('57: ww_acquire_fini while still holding ww_mutexes is reported', () => {
    const sim = newSim(1);
    const a = new WwMutex(sim.kernel, 'a', WW);
    sim.spawn('t', 0, function* () {
      const ctx = new WwAcquireCtx(sim.kernel, WW);
      yield* a.lock(ctx);
      ctx.fini();
      a.unlock();
    });
    sim.run();
    expect(kinds(sim)).toEqual(['ww-fini-held']);
    expect(sim.oracles.violations[0]!.message).toContain('still holds 1 ww_mutex');
  });

  it('57: ww_acquire_fini by a task other than the initialising one is reported (and a second fini too)', () => {
    const sim = newSim(2);
    const g = gates(sim);
    let ctx: WwAcquireCtx | null = null;
    const owner = sim.spawn('owner', 0, function* () {
      ctx = new WwAcquireCtx(sim.kernel, WW);
      g.open('init');
      yield* g.until('other-tried');
      ctx.fini();
      ctx.fini();
    });
    sim.spawn('other', 1, function* () {
      yield* g.until('init');
      ctx!.fini();
      g.open('other-tried');
    });
    sim.run();
    expect(kinds(sim)).toEqual(['ww-fini-wrong-task', 'ww-fini-twice']);
    expect(sim.oracles.violations[0]!.message).toContain(`initialised by ${owner.toString()}`);
  });

  it('two acquire contexts of one ww_class alive at once in a task are reported', () => {
    const sim = newSim(1);
    sim.spawn('t', 0, function* () {
      const c1 = new WwAcquireCtx(sim.kernel, WW);
      const c2 = new WwAcquireCtx(sim.kernel, WW);
      const other = new WwAcquireCtx(sim.kernel, WD); // another class is fine
      other.fini();
      c2.fini();
      c1.fini();
      const c3 = new WwAcquireCtx(sim.kernel, WW); // sequential contexts are fine
      c3.fini();
    });
    sim.run();
    expect(kinds(sim)).toEqual(['ww-ctx-nested']);
  });

  it('locking with an acquire context owned by another task is reported', () => {
    const sim = newSim(2);
    const g = gates(sim);
    const a = new WwMutex(sim.kernel, 'a', WW);
    let ctx: WwAcquireCtx | null = null;
    sim.spawn('owner', 0, function* () {
      ctx = new WwAcquireCtx(sim.kernel, WW);
      g.open('init');
      yield* g.until('done');
      ctx.fini();
    });
    sim.spawn('thief', 1, function* () {
      yield* g.until('init');
      yield* a.lock(ctx);
      a.unlock();
      g.open('done');
    });
    sim.run();
    expect(kinds(sim)).toEqual(['ww-ctx-wrong-task']);
  });
});

describe('ww_mutex and lockdep (the kernel nest_lock / first_lock_dep_map annotation)', () => {
  it('ww_mutexes of one class taken with contexts in opposite orders are not a lockdep report (stamps order them)', () => {
    const sim = newSim(2);
    const a = new WwMutex(sim.kernel, 'a', WW);
    const b = new WwMutex(sim.kernel, 'b', WW);
    const t1 = sim.spawn('t1', 0, function* () {
      const ctx = new WwAcquireCtx(sim.kernel, WW);
      yield* a.lock(ctx);
      yield* b.lock(ctx);
      b.unlock();
      a.unlock();
      ctx.fini();
    });
    sim.spawn('t2', 1, function* () {
      yield* sim.scheduler.join(t1);
      const ctx = new WwAcquireCtx(sim.kernel, WW);
      yield* b.lock(ctx);
      yield* a.lock(ctx);
      a.unlock();
      b.unlock();
      ctx.fini();
    });
    expect(sim.run().reason).toBe('done');
    expect(kinds(sim)).toEqual([]);
  });

  it('a ww_mutex transaction and a plain mutex in opposite orders are still reported (lockdep-circular)', () => {
    const sim = newSim(2);
    const a = new WwMutex(sim.kernel, 'a', WW);
    const m = new Mutex(sim.kernel, 'dev->lock');
    const t1 = sim.spawn('t1', 0, function* () {
      const ctx = new WwAcquireCtx(sim.kernel, WW);
      yield* a.lock(ctx);
      yield* m.lock();
      m.unlock();
      a.unlock();
      ctx.fini();
    });
    sim.spawn('t2', 1, function* () {
      yield* sim.scheduler.join(t1);
      yield* m.lock();
      const ctx = new WwAcquireCtx(sim.kernel, WW);
      yield* a.lock(ctx);
      a.unlock();
      ctx.fini();
      m.unlock();
    });
    sim.run();
    expect(kinds(sim)).toEqual(['lockdep-circular']);
    expect(sim.oracles.violations[0]!.message).toContain('test_ww_class_acquire');
  });

  it('mixing a contextless ww_mutex_lock with context locking in one task is reported as recursive locking', () => {
    const sim = newSim(1);
    const a = new WwMutex(sim.kernel, 'a', WW);
    const b = new WwMutex(sim.kernel, 'b', WW);
    sim.spawn('t', 0, function* () {
      const ctx = new WwAcquireCtx(sim.kernel, WW);
      yield* a.lock(ctx);
      yield* b.lock(null);
      b.unlock();
      a.unlock();
      ctx.fini();
    });
    sim.run();
    expect(kinds(sim)).toEqual(['lockdep-recursive']);
  });

  it('plain mutexes taken in opposite orders are still reported (lockdep-circular)', () => {
    const sim = newSim(2);
    const a = new Mutex(sim.kernel, 'A');
    const b = new Mutex(sim.kernel, 'B');
    const t1 = sim.spawn('t1', 0, function* () {
      yield* a.lock();
      yield* b.lock();
      b.unlock();
      a.unlock();
    });
    sim.spawn('t2', 1, function* () {
      yield* sim.scheduler.join(t1);
      yield* b.lock();
      yield* a.lock();
      a.unlock();
      b.unlock();
    });
    sim.run();
    expect(kinds(sim)).toEqual(['lockdep-circular']);
  });
});

describe('ww_mutex: stamps and events', () => {
  it('stamps increase per class and restart at 1 in every simulation; events carry them', () => {
    for (let round = 0; round < 2; round++) {
      const sim = newSim(1);
      const a = new WwMutex(sim.kernel, 'a', WW);
      const types: string[] = [];
      for (const t of ['ww.acquire_init', 'ww.lock', 'ww.unlock', 'ww.acquire_fini'] as const) {
        sim.bus.on(t).subscribe((e) => types.push(`${e.type}:${JSON.stringify(e.data)}`));
      }
      const stamps: number[] = [];
      sim.spawn('t', 0, function* () {
        for (let i = 0; i < 2; i++) {
          const ctx = WW.acquireInit(sim.kernel);
          stamps.push(ctx.stamp);
          yield* a.lock(ctx);
          expect(a.tryLock(ctx)).toBe(false);
          a.unlock();
          ctx.fini();
        }
      });
      expect(sim.run().reason).toBe('done');
      expect(stamps).toEqual([1, 2]);
      expect(types.slice(0, 5)).toEqual([
        'ww.acquire_init:{"class":"test_ww_class","stamp":1}',
        'ww.lock:{"lock":"a","stamp":1,"result":0,"how":"lock"}',
        'ww.lock:{"lock":"a","stamp":1,"result":-16,"how":"trylock"}',
        'ww.unlock:{"lock":"a","stamp":1}',
        'ww.acquire_fini:{"stamp":1}',
      ]);
    }
  });
});
