// Exploration: fork COW (notifier-core.md §7 row 7), reclaim (row 9) and migration (row 10)
// racing with the loads and stores of a parent and its child. Invariant: a process reads back
// what it last stored (its pages are private after fork), whatever the interleaving.
import { describe, expect, it } from '@jest/globals';
import { explore } from '@mmnsim/core';
import type { Scenario, Simulation, TaskGen } from '@mmnsim/core';
import { Map_, MmService, MmuNotifiers, PAGE_SIZE, Prot, ptePfn, ptePresent } from '@mmnsim/mm';
import type { Process } from '@mmnsim/mm';
import { setUnmapFlushMode } from '../src/internal/reclaim.js';
import type { UnmapFlushMode } from '../src/internal/reclaim.js';
import { IpiTlb } from './helpers.js';

const PAGES = 5;
/**
 * 20 frames: the zero page and two pgds with their 3 tables each (9), and 11 for the 2 × 5 data
 * pages, migration targets and in-flight swap-ins, so kswapd and direct reclaim keep swapping.
 * With fewer, an exiting child's mmu_gather (holding its zapped pages across its TLB flush) can
 * leave nothing reclaimable for one allocation attempt, and the model's allocator does not retry
 * the way `should_reclaim_retry` does: an OOM that is not a bug of the paths under test.
 */
const FRAMES = 20;
const ROUNDS = 6;

const totals = { swapOut: 0, swapIn: 0, migrated: 0, leakChecks: 0 };

function scenario(mode: UnmapFlushMode): Scenario {
  return {
    id: `fork-reclaim-migrate-${mode}`,
    options: () => ({ cpus: 3, log: false }),
    setup(sim: Simulation) {
      const svc = new MmService(
        sim.kernel,
        { totalFrames: FRAMES, gatherMaxPages: 10_000, reclaimBatch: 2 },
        new IpiTlb(sim),
        new MmuNotifiers(sim.kernel),
      );
      const core = svc.core;
      setUnmapFlushMode(core, mode);
      sim.bus.on('mm.swap.out').subscribe(() => totals.swapOut++);
      sim.bus.on('mm.swap.in').subscribe(() => totals.swapIn++);
      sim.bus.on('mm.migrate').subscribe((e) => {
        if (e.data.result === 'ok') totals.migrated++;
      });
      const parent = svc.createProcess('parent');
      let child: Process | null = null;
      let base = 0;

      const worker = function* (proc: Process, tag: number): TaskGen<void> {
        const last: number[] = [];
        for (let p = 0; p < PAGES; p++) last.push(p + 1);
        for (let r = 0; r < ROUNDS; r++) {
          for (let p = 0; p < PAGES; p++) {
            const va = base + p * PAGE_SIZE;
            const v = yield* proc.load(va);
            yield* sim.scheduler.preempt(); // a user-space instruction boundary
            if (v !== last[p]) {
              sim.warn('data-loss', `${proc.name} read ${v} at page ${p}, last stored ${last[p]}`);
            }
            const nv = tag * 1000 + r * 10 + p;
            if ((yield* proc.store(va, nv)) !== 0)
              sim.warn('store-failed', `${proc.name} page ${p}`);
            last[p] = nv;
            yield* sim.scheduler.preempt();
          }
        }
        for (let p = 0; p < PAGES; p++) {
          const v = yield* proc.load(base + p * PAGE_SIZE);
          if (v !== last[p]) sim.warn('data-loss', `${proc.name} final read ${v} at page ${p}`);
        }
      };

      const kswapd = function* (): TaskGen<void> {
        for (let i = 0; i < 8; i++) {
          yield* svc.reclaim(2);
          yield* sim.scheduler.preempt();
          const mm = i % 2 === 0 ? parent.mm : child!.mm;
          if (mm.exited) continue;
          for (let p = 0; p < PAGES; p++) {
            const pte = core.pt.pte(mm, base + ((p + i) % PAGES) * PAGE_SIZE);
            if (ptePresent(pte) && ptePfn(pte) !== 0) {
              yield* svc.migrate(ptePfn(pte));
              break;
            }
          }
        }
      };

      sim.spawn('parent', 0, function* () {
        base = yield* parent.mmap(
          0,
          PAGES * PAGE_SIZE,
          Prot.READ | Prot.WRITE,
          Map_.PRIVATE | Map_.ANONYMOUS,
        );
        for (let p = 0; p < PAGES; p++) yield* parent.store(base + p * PAGE_SIZE, p + 1);
        const c = yield* parent.fork('child');
        if (typeof c === 'number') {
          sim.warn('fork-failed', `fork returned ${c}`);
          return;
        }
        child = svc.adopt(c);
        const ct = sim.spawn('child', 1, function* () {
          yield* worker(c, 2);
          yield* c.exit();
        });
        const kt = sim.spawn('kswapd', 2, kswapd);
        yield* worker(parent, 1);
        yield* sim.scheduler.join(ct);
        yield* sim.scheduler.join(kt);
        yield* parent.exit();
        // Everything went back: no frame but the zero page in use, no swap slot left.
        totals.leakChecks++;
        if (core.phys.freeFrames !== core.phys.total - 1 || core.swap.used !== 0) {
          sim.warn(
            'leak',
            `after exit: ${core.phys.total - 1 - core.phys.freeFrames} frame(s), ${core.swap.used} swap slot(s) still in use`,
          );
        }
      });
    },
  };
}

describe('fork + reclaim + migration under exploration (notifier-core.md §7 rows 7, 9, 10)', () => {
  for (const [mode, iterations] of [
    ['deferred', 200],
    ['immediate', 100],
  ] as const) {
    it(`${iterations} PCT schedules (${mode} flush): every load returns the last value its process stored, nothing leaks, no violation`, () => {
      for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] = 0;
      const report = explore(scenario(mode), { strategy: 'pct', iterations, seed: 7 });
      expect(
        report.failures.map((f) => f.violations.map((v) => `${v.kind}: ${v.message}`)),
      ).toEqual([]);
      expect(report.iterations).toBe(iterations);
      // The races were really exercised: pages were swapped, read back and migrated, and every
      // run reached its end-of-run leak check. (Direct reclaim also runs in some schedules; it
      // has its own test in reclaim.test.ts.)
      expect(totals.swapOut).toBeGreaterThan(0);
      expect(totals.swapIn).toBeGreaterThan(0);
      expect(totals.migrated).toBeGreaterThan(0);
      expect(totals.leakChecks).toBeGreaterThanOrEqual(iterations);
    });
  }
});
