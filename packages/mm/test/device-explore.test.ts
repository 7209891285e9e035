// Exploration acceptance of device migration (mm/migrate_device.c migrate_vma_*, mm/memory.c
// do_swap_page → migrate_to_ram, zap_nonpresent_ptes): a device migrates a region to its
// device-private memory and back while another CPU of the process reads every page
// (faulting device-private pages back through migrate_to_ram, waiting on migration entries) and
// the process unmaps the upper half. PCT explores the interleavings; the notifier oracles watch
// the windows, the driver reports a device page freed while its table maps it, and the scenario
// checks the data, the mapcounts and that every device page comes back.
import { describe, expect, it } from '@jest/globals';
import { Errno, explore } from '@mmnsim/core';
import type { Scenario, Simulation, TaskGen } from '@mmnsim/core';
import {
  Map_,
  mmPlugin,
  MmService,
  PAGE_SIZE,
  Prot,
  pteIsDevicePrivate,
  ptePfn,
  ptePresent,
} from '@mmnsim/mm';
import type { MmCore, MmStruct } from '@mmnsim/mm';
import { notifierOracles } from '../src/internal/mmn/oracles.js';
import { DevmemDriver } from './fixtures/devmem-driver.js';

const PAGES = 4;
const LEN = PAGES * PAGE_SIZE;
const ITERATIONS = 2000;

/** Entries that hold a mapcount, counted per frame, must equal each frame's mapcount. */
function checkMapcounts(sim: Simulation, core: MmCore, mm: MmStruct): void {
  const counts = new Map<number, number>();
  for (const v of mm.vmas.all)
    for (let va = v.start; va < v.end; va += PAGE_SIZE) {
      const pte = core.pt.pte(mm, va);
      if (ptePresent(pte) || pteIsDevicePrivate(pte)) {
        const pfn = ptePfn(pte);
        if (pfn !== 0) counts.set(pfn, (counts.get(pfn) ?? 0) + 1);
      }
    }
  for (const [pfn, c] of counts)
    if (core.phys.mapcount[pfn] !== c)
      sim.kernel.report(
        'devmem-mapcount',
        `frame ${pfn}: mapcount ${core.phys.mapcount[pfn]}, mapped ${c} time(s)`,
      );
}

const totals = { runs: 0, toDev: 0, toSys: 0, toRam: 0, freed: 0 };

function scenario(): Scenario {
  return {
    id: 'devmem-migrate-vs-fault-vs-munmap',
    options: () => ({
      cpus: 3,
      log: false,
      stopOnViolation: true,
      plugins: [mmPlugin({ totalFrames: 96 })],
    }),
    setup(sim: Simulation) {
      const svc = sim.get(MmService);
      const core = svc.core;
      const proc = svc.createProcess('app');
      const drv = new DevmemDriver(sim, 'devmem0', 'device-private', 8);
      for (const o of notifierOracles(sim)) sim.addOracle(o);
      let base = 0;
      const device = function* (): TaskGen<void> {
        yield* drv.migrateToDev(proc.mm, base, PAGES);
        yield* sim.scheduler.preempt();
        yield* drv.migrateToSys(proc.mm, base, PAGES);
      };
      const reader = function* (): TaskGen<void> {
        for (let p = 0; p < PAGES; p++) {
          const v = yield* proc.load(base + p * PAGE_SIZE);
          // The upper half may be unmapped by now (SIGSEGV); otherwise the data must be intact.
          if (v !== p + 1 && !(p >= PAGES / 2 && v === -Errno.EFAULT))
            sim.kernel.report('devmem-lost-data', `page ${p} read ${v}, expected ${p + 1}`);
        }
      };
      sim.spawn('app', 0, function* () {
        base = yield* proc.mmap(0, LEN, Prot.READ | Prot.WRITE, Map_.PRIVATE | Map_.ANONYMOUS);
        for (let p = 0; p < PAGES; p++) yield* proc.store(base + p * PAGE_SIZE, p + 1);
        yield* drv.bind(proc.mm);
        const dev = sim.spawn('devmem0-migrate', 1, device);
        const rd = sim.spawn('reader', 2, reader);
        yield* proc.munmap(base + LEN / 2, LEN / 2);
        yield* sim.scheduler.join(dev);
        yield* sim.scheduler.join(rd);
        for (let p = 0; p < PAGES / 2; p++) {
          const v = yield* proc.load(base + p * PAGE_SIZE);
          if (v !== p + 1) sim.kernel.report('devmem-lost-data', `page ${p} read ${v} at the end`);
        }
        // The device table maps only what the CPU page table maps as this driver's page.
        for (const [va, pfn] of drv.pt) {
          const pte = core.pt.pte(proc.mm, va);
          if (!pteIsDevicePrivate(pte) || ptePfn(pte) !== pfn)
            sim.kernel.report(
              'devmem-stale-device-pte',
              `device table maps 0x${va.toString(16)} → ${pfn}, the CPU has ${pte}`,
            );
        }
        checkMapcounts(sim, core, proc.mm);
        yield* drv.unbind();
        yield* proc.exit();
        if (drv.free.length !== 8)
          sim.kernel.report('devmem-leak', `${8 - drv.free.length} device page(s) never came back`);
        totals.runs++;
        totals.toDev += drv.stats.toDev;
        totals.toSys += drv.stats.toSys;
        totals.toRam += drv.stats.toRam;
        totals.freed += drv.stats.freed;
      });
    },
  };
}

describe('device migration under exploration (mm/migrate_device.c, mm/memory.c do_swap_page)', () => {
  it(`${ITERATIONS} PCT(depth 3) schedules of migrate to device and back vs CPU faults vs munmap: no violation, data intact, every device page returned`, () => {
    const report = explore(scenario(), {
      strategy: { kind: 'pct', depth: 3 },
      iterations: ITERATIONS,
      seed: 1,
    });
    expect(report.failures.map((f) => f.violations.map((v) => v.message))).toEqual([]);
    expect(report.iterations).toBe(ITERATIONS);
    expect(totals.runs).toBeGreaterThanOrEqual(ITERATIONS);
    // The races were exercised: pages went to the device, came back by MIGRATE_TO_SYS and by
    // CPU faults (migrate_to_ram), and device pages were freed (by migration and by munmap).
    expect(totals.toDev).toBeGreaterThan(ITERATIONS);
    expect(totals.toSys).toBeGreaterThan(0);
    expect(totals.toRam).toBeGreaterThan(0);
    expect(totals.freed).toBeGreaterThan(ITERATIONS);
  });
});
