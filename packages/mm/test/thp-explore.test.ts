// Exploration acceptance of THP splitting (mm/huge_memory.c: __split_huge_pmd, zap_huge_pmd,
// change_huge_pmd): a PMD-mapped THP is split by a partial munmap, mprotect and MADV_DONTNEED
// while another CPU faults in the same 2 MiB block and a device mirrors part of it through an
// interval notifier (the fixture driver, hmm_range_fault reporting map order 9). With the
// notifier oracles attached, 2,000 PCT schedules find no stale device mapping and no violation.
import { describe, expect, it } from '@jest/globals';
import { explore } from '@mmnsim/core';
import type { Scenario, Simulation, TaskGen } from '@mmnsim/core';
import { MADV_HUGEPAGE, Map_, mmPlugin, MmService, PAGE_SIZE, PMD_SIZE, Prot } from '@mmnsim/mm';
import { notifierOracles } from '../src/internal/mmn/oracles.js';
import { Madv } from '../src/internal/unmap.js';
import { IntervalDriver } from './fixtures/interval-driver.js';

const RW = Prot.READ | Prot.WRITE;
const BASE = 0x40000000;
const ITERATIONS = 2000;
const totals = { runs: 0, splits: 0, mapped: 0, retries: 0, invalidates: 0 };

function scenario(): Scenario {
  return {
    id: 'thp-split-explore',
    options: () => ({ cpus: 3, log: false, plugins: [mmPlugin({ totalFrames: 2048 })] }),
    setup(sim: Simulation) {
      const svc = sim.get(MmService);
      const proc = svc.createProcess('app');
      const drv = new IntervalDriver(sim, 'dmirror0', {});
      for (const o of notifierOracles(sim, {
        mmus: [drv],
        intervals: [{ mmu: drv.name, sub: drv.sub }],
      }))
        sim.addOracle(o);
      svc.core.kernel.bus.on('mm.thp').subscribe((e) => {
        if (e.data.op === 'split') totals.splits++;
      });
      const dev = function* (): TaskGen<void> {
        for (let round = 0; round < 3; round++) {
          for (let p = 4; p < 8; p += 2) {
            if ((yield* drv.fault(BASE + p * PAGE_SIZE, 2)) === 0) drv.read(BASE + p * PAGE_SIZE);
            yield* sim.scheduler.preempt();
          }
        }
      };
      const faulter = function* (): TaskGen<void> {
        for (let i = 0; i < 3; i++) {
          yield* proc.store(BASE + (5 + i) * PAGE_SIZE, 50 + i);
          yield* proc.load(BASE + 2 * PAGE_SIZE);
        }
      };
      sim.spawn('app', 0, function* () {
        yield* proc.mmap(BASE, PMD_SIZE, RW, Map_.PRIVATE | Map_.ANONYMOUS | Map_.FIXED);
        yield* proc.madvise(BASE, PMD_SIZE, MADV_HUGEPAGE);
        yield* proc.store(BASE, 1); // one PMD leaf
        if ((yield* drv.bind(proc.mm, BASE + 4 * PAGE_SIZE, 4 * PAGE_SIZE)) !== 0)
          throw new Error('insert failed');
        const d = sim.spawn('dmirror0-fault', 1, dev);
        const f = sim.spawn('faulter', 2, faulter);
        yield* proc.munmap(BASE, PAGE_SIZE); // split (or zap of the 4 KiB part)
        yield* proc.mprotect(BASE + 6 * PAGE_SIZE, PAGE_SIZE, Prot.READ);
        yield* proc.madvise(BASE + 4 * PAGE_SIZE, PAGE_SIZE, Madv.DONTNEED);
        yield* proc.mprotect(BASE + 6 * PAGE_SIZE, PAGE_SIZE, RW);
        yield* sim.scheduler.join(d);
        yield* sim.scheduler.join(f);
        yield* drv.unbind();
        yield* proc.exit();
        totals.runs++;
        totals.mapped += drv.stats.mapped;
        totals.retries += drv.stats.retries;
        totals.invalidates += drv.stats.invalidates;
      });
    },
  };
}

describe('THP split vs a concurrent fault vs an interval-notifier subscriber (mm/huge_memory.c: __split_huge_pmd)', () => {
  it(`${ITERATIONS} PCT(depth 3) schedules find no violation, and the races are exercised`, () => {
    const report = explore(scenario(), {
      strategy: { kind: 'pct', depth: 3 },
      iterations: ITERATIONS,
      seed: 1,
    });
    expect(report.failures.map((f) => f.violations.map((v) => `${v.kind}: ${v.message}`))).toEqual(
      [],
    );
    expect(totals.runs).toBeGreaterThanOrEqual(ITERATIONS);
    expect(totals.splits).toBeGreaterThan(0);
    expect(totals.mapped).toBeGreaterThan(0);
    expect(totals.invalidates).toBeGreaterThan(0);
    expect(totals.retries).toBeGreaterThan(0);
  });
});
