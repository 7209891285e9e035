// Exploration acceptance of the interval-notifier pattern (notifier-core.md §4.4–4.5): a device
// mirrors a region through the fixture driver — faulting pages in with hmm_range_fault under the
// collision-retry protocol and reading them through its own page table — while the process
// unmaps the region and maps it again at the same address with new data, changes its protection,
// forks, and kswapd reclaims from it. With the notifier oracles attached, PCT finds nothing for
// the correct driver and finds each broken variant within the same budget.
import { describe, expect, it } from '@jest/globals';
import { explore, replay } from '@mmnsim/core';
import type { ExploreReport, Scenario, Simulation, TaskGen } from '@mmnsim/core';
import { Map_, mmPlugin, MmService, PAGE_SIZE, Prot } from '@mmnsim/mm';
import { notifierOracles } from '../src/internal/mmn/oracles.js';
import { IntervalDriver } from './fixtures/interval-driver.js';
import type { IntervalDriverOptions, IntervalDriverStats } from './fixtures/interval-driver.js';

const PAGES = 4;
const LEN = PAGES * PAGE_SIZE;
const RW = Prot.READ | Prot.WRITE;
const ANON = Map_.PRIVATE | Map_.ANONYMOUS;
const ITERATIONS = 1000;
const ROUNDS = 4;
const STRATEGY = { kind: 'pct', depth: 3 } as const;

/** Driver counters summed over a campaign, to check the races were exercised. */
const totals: IntervalDriverStats & { runs: number } = {
  runs: 0,
  faults: 0,
  retries: 0,
  mapped: 0,
  reads: 0,
  invalidates: 0,
  zapped: 0,
};

function scenario(id: string, options: IntervalDriverOptions, stopOnViolation = true): Scenario {
  return {
    id,
    options: () => ({
      cpus: 3,
      log: false,
      stopOnViolation,
      plugins: [mmPlugin({ totalFrames: 64, reclaimBatch: 2 })],
    }),
    setup(sim: Simulation) {
      const svc = sim.get(MmService);
      const proc = svc.createProcess('app');
      const drv = new IntervalDriver(sim, 'dmirror0', options);
      for (const o of notifierOracles(sim, {
        mmus: [drv],
        intervals: [{ mmu: drv.name, sub: drv.sub }],
      }))
        sim.addOracle(o);
      let base = 0;

      // The device: fault a page in (F1–F7), read it through the device table, next page.
      const device = function* (): TaskGen<void> {
        for (let round = 0; round < ROUNDS; round++) {
          for (let p = 0; p < PAGES; p++) {
            const va = base + p * PAGE_SIZE;
            if ((yield* drv.fault(va)) === 0) drv.read(va);
            yield* sim.scheduler.preempt();
          }
        }
      };
      const kswapd = function* (): TaskGen<void> {
        for (let i = 0; i < 3; i++) {
          yield* svc.reclaim(2);
          yield* sim.scheduler.preempt();
        }
      };

      sim.spawn('app', 0, function* () {
        base = yield* proc.mmap(0, LEN, RW, ANON);
        for (let p = 0; p < PAGES; p++) yield* proc.store(base + p * PAGE_SIZE, p + 1);
        if ((yield* drv.bind(proc.mm, base, LEN)) !== 0) throw new Error('insert failed');
        const dev = sim.spawn('dmirror0-fault', 1, device);
        const ks = sim.spawn('kswapd', 2, kswapd);
        // munmap, then a new mapping at the same address with new contents.
        yield* proc.munmap(base, LEN);
        if ((yield* proc.mmap(base, LEN, RW, ANON | Map_.FIXED)) !== base)
          throw new Error('re-mmap failed');
        for (let p = 0; p < PAGES; p++) yield* proc.store(base + p * PAGE_SIZE, 100 + p);
        yield* proc.mprotect(base, LEN, Prot.READ);
        yield* proc.mprotect(base, LEN, RW);
        const child = yield* proc.fork('child');
        if (typeof child !== 'number') yield* child.exit();
        yield* proc.store(base, 200); // COW break in the parent
        yield* sim.scheduler.join(dev);
        yield* sim.scheduler.join(ks);
        yield* drv.unbind();
        yield* proc.exit();
        totals.runs++;
        for (const k of Object.keys(drv.stats) as (keyof IntervalDriverStats)[])
          totals[k] += drv.stats[k];
      });
    },
  };
}

function campaign(id: string, options: IntervalDriverOptions): ExploreReport {
  return explore(scenario(id, options), { strategy: STRATEGY, iterations: ITERATIONS, seed: 1 });
}

/** The first failure's kinds and iteration. */
function firstFailure(report: ExploreReport): { iteration: number; kinds: string[] } {
  const f = report.failures[0];
  if (f === undefined) return { iteration: -1, kinds: [] };
  return { iteration: f.iteration, kinds: f.violations.map((v) => v.kind) };
}

/** Where the oracles alone first see the broken driver's consequence (runs go on after the rule report). */
function firstStale(
  id: string,
  options: IntervalDriverOptions,
): { iteration: number; kinds: string[] } {
  const report = explore(scenario(id, options, false), {
    strategy: STRATEGY,
    iterations: ITERATIONS,
    seed: 1,
    stopOnFirst: false,
  });
  for (const f of report.failures) {
    const kinds = f.violations.map((v) => v.kind).filter((k) => k.startsWith('secondary-'));
    if (kinds.length > 0) return { iteration: f.iteration, kinds: [...new Set(kinds)] };
  }
  return { iteration: -1, kinds: [] };
}

const STALE = [
  'secondary-map-in-window',
  'secondary-mapping-survived-start',
  'secondary-mapping-to-freed-frame',
  'secondary-use-after-free',
];

describe('interval-notifier driver under exploration (notifier-core.md §4.4, §4.5; invariants 17, 29, 39, 40)', () => {
  it(`the correct driver: ${ITERATIONS} PCT(depth 3) schedules of munmap/re-mmap, mprotect, fork and reclaim find no stale mapping and no violation`, () => {
    for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] = 0;
    const report = campaign('interval-driver', {});
    expect(report.failures.map((f) => f.violations.map((v) => `${v.kind}: ${v.message}`))).toEqual(
      [],
    );
    expect(report.iterations).toBe(ITERATIONS);
    expect(totals.runs).toBe(ITERATIONS + 1); // + the PCT probe run
    // The races were exercised: collisions retried, mappings made and zapped, pages read.
    expect(totals.retries).toBeGreaterThan(0);
    expect(totals.mapped).toBeGreaterThan(0);
    expect(totals.zapped).toBeGreaterThan(0);
    expect(totals.reads).toBeGreaterThan(0);
  });

  it('without set_seq the driver is found within the same budget: the subsystem reports the missing set_seq at once, the failure replays, and the oracles see the stale translation it leads to', () => {
    const id = 'interval-driver-no-set-seq';
    const report = campaign(id, { noSetSeq: true });
    const f = firstFailure(report);
    expect(f.iteration).toBe(0);
    expect(f.kinds).toEqual(['mmn-set-seq-missing']);
    const again = replay(scenario(id, { noSetSeq: true }), report.failures[0]!);
    expect(again.result.violations.map((v) => v.kind)).toEqual(f.kinds);

    const stale = firstStale(id, { noSetSeq: true });
    expect(stale.iteration).toBeGreaterThanOrEqual(0);
    expect(stale.iteration).toBeLessThan(ITERATIONS);
    expect(stale.kinds.length).toBeGreaterThan(0);
    for (const k of stale.kinds) expect(STALE).toContain(k);
  });

  it('with read_retry outside the driver lock the driver is found within the same budget: the subsystem reports the unlocked read_retry at once, and the oracles see the stale translation it leads to', () => {
    const id = 'interval-driver-retry-unlocked';
    const f = firstFailure(campaign(id, { retryOutsideLock: true }));
    expect(f.iteration).toBe(0);
    expect(f.kinds).toEqual(['mmn-read-retry-unlocked']);

    const stale = firstStale(id, { retryOutsideLock: true });
    expect(stale.iteration).toBeGreaterThanOrEqual(0);
    expect(stale.iteration).toBeLessThan(ITERATIONS);
    expect(stale.kinds.length).toBeGreaterThan(0);
    for (const k of stale.kinds) expect(STALE).toContain(k);
  });
});
