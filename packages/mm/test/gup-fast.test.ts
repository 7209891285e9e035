// gup_fast and the page-table freeing rule that protects it (mm/gup.c: gup_fast,
// gup_fast_pte_range; mm/mmu_gather.c: tlb_remove_table, tlb_remove_table_sync_one): the walker
// runs with IRQs off and without mmap_lock, so a table page unlinked by munmap may be freed only
// after the walkers in flight have left. Explored with PCT: clean with the rule, the
// use-after-free found when the grace period is skipped.
import { describe, expect, it } from '@jest/globals';
import { explore, Simulation } from '@mmnsim/core';
import type { Scenario, TaskGen } from '@mmnsim/core';
import { GupFastOracle, gupFast, Map_, mmPlugin, MmService, PAGE_SIZE, Prot } from '@mmnsim/mm';
import { putPage } from '../src/internal/gup.js';

const RW = Prot.READ | Prot.WRITE;
const ANON = Map_.PRIVATE | Map_.ANONYMOUS;
const BASE = 0x40000000;
/** Table frees that waited for a walker, over a campaign (the race was exercised). */
let deferred = 0;

function scenario(skipGracePeriod: boolean): Scenario {
  return {
    id: skipGracePeriod ? 'gup-fast-no-grace-period' : 'gup-fast',
    options: () => ({ cpus: 2, log: false, plugins: [mmPlugin({ totalFrames: 64 })] }),
    setup(sim: Simulation) {
      const svc = sim.get(MmService);
      svc.core.tableRcu.skipGracePeriod = skipGracePeriod;
      sim.addOracle(new GupFastOracle(svc.core));
      svc.core.kernel.bus.on('mm.pt.free_deferred').subscribe(() => deferred++);
      const proc = svc.createProcess('app');
      sim.spawn('app', 0, function* (): TaskGen<void> {
        yield* proc.mmap(BASE, PAGE_SIZE, RW, ANON | Map_.FIXED);
        yield* proc.store(BASE, 1);
        const walker = sim.spawn('gup_fast', 1, function* () {
          for (let i = 0; i < 4; i++) {
            for (const pfn of yield* gupFast(svc.core, proc.mm, BASE, 1, false))
              putPage(svc.core, pfn);
            yield* sim.scheduler.preempt();
          }
        });
        for (let round = 0; round < 2; round++) {
          yield* proc.munmap(BASE, PAGE_SIZE); // frees the PTE, PMD and PUD tables
          yield* proc.mmap(BASE, PAGE_SIZE, RW, ANON | Map_.FIXED);
          yield* proc.store(BASE, 2 + round); // the freed table frames are reused
        }
        yield* sim.scheduler.join(walker);
      });
    },
  };
}

describe('gup_fast vs page-table freeing (mm/gup.c: gup_fast; mm/mmu_gather.c: tlb_remove_table)', () => {
  it('grabs a reference on present pages with IRQs off and rechecks the PTE', () => {
    const sim = Simulation.create({
      seed: 1,
      cpus: 1,
      log: true,
      plugins: [mmPlugin({ totalFrames: 256 })],
    });
    const svc = sim.get(MmService);
    const proc = svc.createProcess('app');
    let got: number[] = [];
    let ref = 0;
    sim.spawn('app', 0, function* () {
      yield* proc.mmap(BASE, 4 * PAGE_SIZE, RW, ANON | Map_.FIXED);
      yield* proc.store(BASE, 1);
      yield* proc.store(BASE + PAGE_SIZE, 2);
      got = yield* gupFast(svc.core, proc.mm, BASE, 4, true); // stops at the first missing page
      ref = svc.core.phys.refcount[got[0]!]!;
      for (const p of got) putPage(svc.core, p);
    });
    expect(sim.run().violations).toEqual([]);
    expect(got.length).toBe(2);
    expect(ref).toBe(2);
    expect(sim.log!.ofType('mm.gup_fast.end').map((e) => e.data.pages)).toEqual([2]);
  });

  it('300 PCT schedules of gup_fast against munmap + re-mmap find nothing when tables wait for the walkers', () => {
    const report = explore(scenario(false), {
      strategy: { kind: 'pct', depth: 3 },
      iterations: 300,
      seed: 1,
    });
    expect(report.failures.map((f) => f.violations.map((v) => v.kind))).toEqual([]);
    expect(deferred).toBeGreaterThan(0);
  });

  it('skipping the grace period frees a table a walker still reads: found by the oracle', () => {
    const report = explore(scenario(true), {
      strategy: { kind: 'pct', depth: 3 },
      iterations: 300,
      seed: 1,
    });
    const kinds = new Set(report.failures.flatMap((f) => f.violations.map((v) => v.kind)));
    expect(report.failures.length).toBeGreaterThan(0);
    expect([...kinds].some((k) => k.startsWith('gup-fast-table'))).toBe(true);
  });
});
