/**
 * Zoo variants whose broken rule is the memory model's own rather than a driver's: here, the
 * page-table freeing rule that protects the lockless GUP walker. Its own file so the driver
 * variants of `variants.ts` stay apart from kernel-side fault injection.
 */
import type { Scenario, Simulation, TaskGen } from '@mmnsim/core';
import { GupFastOracle, gupFast, Map_, mmPlugin, MmService, PAGE_SIZE, Prot } from '@mmnsim/mm';
import type { ZooVariant } from './variants.js';

const BASE = 0x40000000;
const RW = Prot.READ | Prot.WRITE;

/**
 * gup_fast on one CPU walks a page mapped alone in its 512 GiB region while the other CPU
 * unmaps it (freeing its PTE, PMD and PUD tables) and maps it again (reusing those frames).
 * `broken` frees the tables without waiting for walkers in flight (`skipGracePeriod`).
 */
function gupFastScenario(broken: boolean): Scenario {
  return {
    id: broken ? 'mm-table-free-no-grace-period' : 'mm-table-free-correct',
    options: () => ({ cpus: 2, log: false, plugins: [mmPlugin({ totalFrames: 64 })] }),
    setup(sim: Simulation) {
      const svc = sim.get(MmService);
      svc.core.tableRcu.skipGracePeriod = broken;
      sim.addOracle(new GupFastOracle(svc.core));
      const proc = svc.createProcess('app');
      sim.spawn('app', 0, function* (): TaskGen<void> {
        yield* proc.mmap(BASE, PAGE_SIZE, RW, Map_.PRIVATE | Map_.ANONYMOUS | Map_.FIXED);
        yield* proc.store(BASE, 1);
        const walker = sim.spawn('gup_fast', 1, function* () {
          for (let i = 0; i < 4; i++) {
            for (const pfn of yield* gupFast(svc.core, proc.mm, BASE, 1, false))
              svc.core.phys.put(pfn); // put_page
            yield* sim.scheduler.preempt();
          }
        });
        for (let round = 0; round < 2; round++) {
          yield* proc.munmap(BASE, PAGE_SIZE);
          yield* proc.mmap(BASE, PAGE_SIZE, RW, Map_.PRIVATE | Map_.ANONYMOUS | Map_.FIXED);
          yield* proc.store(BASE, 2 + round);
        }
        yield* sim.scheduler.join(walker);
      });
    },
  };
}

/** The memory-model variants, spread into `ZOO`. */
export const MM_ZOO: readonly ZooVariant[] = [
  {
    id: 'mm-table-free-no-grace-period',
    rule: 'page-table pages unlinked by munmap are freed only after IRQs-off lockless walkers (gup_fast) in flight have left (tlb_remove_table)',
    spec: 'users-and-hardware.md §5.3 (mmu_gather); mm/mmu_gather.c: tlb_remove_table; mm/gup.c: gup_fast',
    expected: ['gup-fast-table-freed', 'gup-fast-table-use-after-free'],
    scenario: gupFastScenario,
  },
];
