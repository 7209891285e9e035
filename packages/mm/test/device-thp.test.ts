// Device migration of THP memory: mm/migrate_device.c migrate_vma_collect_pmd meets a PMD leaf
// (6.17 splits it with split_huge_pmd before collecting its PTEs) and migrate_vma_setup refuses
// hugetlb VMAs (is_vm_hugetlb_page). The model splits the PMD and keeps the folio whole, so the
// pages of a large folio are collected as unmigratable (src 0) and stay where they are.
import { describe, expect, it } from '@jest/globals';
import { Errno, fold, Simulation } from '@mmnsim/core';
import {
  liveView,
  Map_,
  MADV_HUGEPAGE,
  mmPlugin,
  mmProjection,
  MmService,
  PAGE_SIZE,
  Prot,
  pteIsDevicePrivate,
  ptePfn,
  ptePresent,
} from '@mmnsim/mm';
import { DevmemDriver } from './fixtures/devmem-driver.js';

const RW = Prot.READ | Prot.WRITE;
const BASE = 0x40000000; // 2 MiB aligned
const PMD_SIZE = 512 * PAGE_SIZE;

function world(hugetlbPages = 0) {
  const sim = Simulation.create({
    seed: 1,
    cpus: 1,
    log: true,
    plugins: [mmPlugin({ totalFrames: 4096, thp: 'madvise', hugetlbPages })],
  });
  const svc = sim.get(MmService);
  const proc = svc.createProcess('app');
  const drv = new DevmemDriver(sim, 'devmem0', 'device-private', 16);
  return { sim, svc, proc, core: svc.core, drv };
}

describe('device migration of huge pages (mm/migrate_device.c: migrate_vma_setup)', () => {
  it('a THP leaf in the range is split first: no device page is installed over the leaf, the data stays intact', () => {
    const { sim, svc, proc, core, drv } = world();
    sim.spawn('app', 0, function* () {
      expect(yield* proc.mmap(BASE, PMD_SIZE, RW, Map_.PRIVATE | Map_.ANONYMOUS | Map_.FIXED)).toBe(
        BASE,
      );
      expect(yield* proc.madvise(BASE, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
      for (let i = 0; i < 8; i++) yield* proc.store(BASE + i * PAGE_SIZE, 500 + i);
      yield* drv.bind(proc.mm);
      const r = yield* drv.migrateToDev(proc.mm, BASE, 4);
      expect(r === 0 || r === -Errno.EBUSY || r === -Errno.ENOENT).toBe(true);
      for (let i = 0; i < 8; i++) {
        const pte = core.pt.pte(proc.mm, BASE + i * PAGE_SIZE);
        // Either migrated (a device-private entry holding the data) or still the system page.
        expect(pteIsDevicePrivate(pte) || ptePresent(pte)).toBe(true);
        expect(core.phys.read(ptePfn(pte), 0)).toBe(500 + i);
        expect(yield* proc.load(BASE + i * PAGE_SIZE)).toBe(500 + i);
      }
      yield* drv.unbind();
      yield* proc.munmap(BASE, PMD_SIZE);
    });
    const res = sim.run();
    expect(res.violations).toEqual([]);
    expect(res.reason).toBe('done');
    expect(fold(mmProjection(), sim.log!.events)).toEqual(liveView(svc.core));
  });
});
