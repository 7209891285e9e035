/**
 * The GART alias-caching variants of the bug zoo (the `->release` comment of
 * `include/linux/mmu_notifier.h`, `arch/x86/kernel/amd_gart_64.c`, `drivers/char/agp/generic.c`):
 * a speculating secondary MMU that skips or defers `->release`, AGP pages bound before they are
 * uncached or freed before write-back is restored, the GART enabled before `wbinvd` or before
 * the aperture's direct map is not-present, and lazy GART TLB flushing that misses the wrap.
 * Its own file so the zoo's list gains one spread line.
 */
import type { Scenario, Simulation, TaskGen } from '@mmnsim/core';
import { GartId, GartIommu, iommuPlugin } from '@mmnsim/hw-iommu';
import type { Gart, GartOptions } from '@mmnsim/hw-iommu';
import { Map_, mmPlugin, MmService, PAGE_SIZE, Prot } from '@mmnsim/mm';
import type { Process } from '@mmnsim/mm';
import { SpecMmuDevice, specMmuPlugin } from './mini-spec-mmu.js';
import type { SpecMmuBug } from './mini-spec-mmu.js';
import type { ZooVariant } from './variants.js';

const RW = Prot.READ | Prot.WRITE;
const BASE = 0x40000000;
/** Devices every GART scenario has: the CPU caches' hardware, the speculating MMU, the GPU, a PCI NIC. */
export const GART_DEVICES = ['cache', 'gru0', 'gfx0', 'nic0'] as const;
const ALIAS = ['mixed-memory-type', 'cache-writeback-corruption'];

function attach(sim: Simulation): Gart {
  const gart = sim.get(GartId);
  for (const o of gart.oracles()) sim.addOracle(o);
  return gart;
}

function* populate(proc: Process, pages: number): TaskGen<void> {
  yield* proc.mmap(BASE, pages * PAGE_SIZE, RW, Map_.PRIVATE | Map_.ANONYMOUS | Map_.FIXED);
  for (let i = 0; i < pages; i++) yield* proc.store(BASE + i * PAGE_SIZE, 100 + i);
}

/** The GPU writes `0x900d0000 + page` to word 1 of each of `pages` aperture pages. */
function* gpuWrites(sim: Simulation, gart: Gart, pages: number): TaskGen<void> {
  const gfx = gart.graphicsDevice('gfx0');
  for (let i = 0; i < pages; i++) {
    gfx.write(i, 1, 0x900d0000 + i);
    yield* sim.scheduler.preempt();
  }
}

function options(gart: Partial<GartOptions>, extra: ReturnType<typeof mmPlugin>[] = []) {
  return {
    cpus: 2,
    devices: [...GART_DEVICES],
    log: false as const,
    plugins: [mmPlugin({ totalFrames: 320 }), iommuPlugin({ gart }), ...extra],
  };
}

/**
 * Scenario 41 with a speculating secondary MMU: the process's device writes its two pages
 * (dirty lines in the device cache), the process exits, and the freed pages come back as AGP
 * memory the GPU writes through the aperture.
 */
export function releaseScenario(id: string, bug: SpecMmuBug): Scenario {
  return {
    id,
    options: () => options({}, [specMmuPlugin({ bug })]),
    setup(sim) {
      const gart = attach(sim);
      const spec = sim.get(SpecMmuDevice);
      const proc = sim.get(MmService).createProcess('app');
      sim.spawn('app', 0, function* () {
        yield* gart.iommu.init();
        yield* populate(proc, 2);
        yield* spec.attach(proc);
        const job = sim.spawn('gru0 job', 'gru0', function* () {
          for (let i = 0; i < 2; i++) yield* spec.write(BASE + i * PAGE_SIZE, 1, 0x5eed0000 + i);
        });
        yield* sim.scheduler.join(job);
        yield* proc.exit();
        const mem = yield* gart.agp.allocMemory(8);
        if (typeof mem === 'number') throw new Error(`agp alloc failed: ${mem}`);
        yield* gart.agp.bindMemory(mem, 0);
        const gpu = sim.spawn('gpu', 'gfx0', () => gpuWrites(sim, gart, 8));
        yield* sim.scheduler.join(gpu);
      });
    },
  };
}

/** The AGP ordering bugs the zoo plants (`'none'`: generic.c's order). */
export type AgpOrderBug = 'none' | 'gatt-before-uc' | 'free-before-wb';

/**
 * Scenario 41 on the AGP side: a DRM-like driver allocates AGP memory, binds it, lets the GPU
 * write it, and frees it, while a process on the other CPU faults in fresh anonymous pages (the
 * next owner of the freed frames).
 */
export function agpScenario(id: string, bug: AgpOrderBug): Scenario {
  return {
    id,
    options: () => options({}),
    setup(sim) {
      const gart = attach(sim);
      const agp = gart.agp;
      const proc = sim.get(MmService).createProcess('app');
      let appGo = false;
      // The next owner: a process that already has its page tables and faults in more pages.
      sim.spawn('app', 1, function* () {
        yield* proc.mmap(BASE, 4 * PAGE_SIZE, RW, Map_.PRIVATE | Map_.ANONYMOUS | Map_.FIXED);
        yield* proc.store(BASE, 1);
        while (!appGo) yield* sim.scheduler.sleepFor(1000);
        for (let i = 1; i < 4; i++) yield* proc.store(BASE + i * PAGE_SIZE, 100 + i);
      });
      sim.spawn('drm', 0, function* () {
        yield* gart.iommu.init();
        const mem = yield* agp.allocPages(2);
        if (typeof mem === 'number') throw new Error(`agp alloc failed: ${mem}`);
        if (bug !== 'gatt-before-uc') agp.makeUncached(mem);
        yield* agp.bindMemory(mem, 0);
        if (bug === 'gatt-before-uc') {
          yield* sim.scheduler.preempt();
          agp.makeUncached(mem);
        }
        const gpu = sim.spawn('gpu', 'gfx0', () => gpuWrites(sim, gart, 2));
        yield* sim.scheduler.join(gpu);
        appGo = true;
        if (bug === 'free-before-wb') {
          yield* agp.unbindMemory(mem);
          const pages = [...mem.pages];
          yield* agp.freePages(mem);
          yield* sim.scheduler.preempt();
          yield* sim.scheduler.preempt();
          agp.restoreWriteBack({ ...mem, pages });
        } else yield* agp.freeMemory(mem);
      });
    },
  };
}

/** A GART IOMMU driver that runs `gart_iommu_init`'s steps in a wrong order. */
class MisorderedInit extends GartIommu {
  /**
   * @param base the correct driver (hardware and options are shared).
   * @param skip which step comes after enabling: `'wbinvd'` or `'np'`.
   */
  constructor(
    base: GartIommu,
    private readonly late: 'wbinvd' | 'np',
  ) {
    super(base.hw, base.options);
  }

  override *init(): TaskGen<number> {
    const sched = this.hw.kernel.scheduler;
    this.reserveAperture();
    this.allocGatt();
    yield* sched.preempt();
    this.gattUncached();
    yield* sched.preempt();
    if (this.late !== 'np') this.apertureNotPresent();
    if (this.late !== 'wbinvd') this.hw.caches.wbinvd();
    yield* sched.preempt();
    this.hw.enable();
    this.hw.flush();
    yield* sched.preempt();
    if (this.late === 'np') this.apertureNotPresent();
    if (this.late === 'wbinvd') this.hw.caches.wbinvd();
    this.fillScratch();
    this.hw.flush();
    this.ready = true;
    return 0;
  }
}

/**
 * Scenario 42: early boot code touched the RAM behind the aperture through the direct map
 * (cached lines, pending prefetches), then `gart_iommu_init` runs and a NIC DMAs through it.
 */
export function initScenario(id: string, late: 'none' | 'wbinvd' | 'np'): Scenario {
  return {
    id,
    options: () => options({}),
    setup(sim) {
      const gart = attach(sim);
      const iommu = late === 'none' ? gart.iommu : new MisorderedInit(gart.iommu, late);
      const phys = sim.get(MmService).core.phys;
      sim.spawn('boot', 0, function* () {
        const r = yield* iommu.init();
        if (r < 0) throw new Error(`gart init failed: ${r}`);
        const pfn = phys.alloc('anon');
        const bus = iommu.mapPage(pfn);
        const nic = sim.spawn('nic', 'nic0', function* () {
          gart.hw.access('nic0', bus, 0, 0xd0a, true);
          yield* sim.scheduler.preempt();
        });
        yield* sim.scheduler.join(nic);
      });
      // Early users of the memory the aperture will shadow (firmware, early boot): direct-map
      // loads leave lines and pending prefetches behind.
      sim.spawn('early', 1, function* () {
        for (let i = 0; i < 4; i++) {
          const f = gart.hw.apertureFrames[gart.iommu.iommuStart + i];
          if (f !== undefined) gart.caches.kload(f, 0);
          yield* sim.scheduler.preempt();
        }
      });
    },
  };
}

/** The lazy-flush driver that forgets `need_flush` when the allocator wraps. */
class ForgetsWrap extends GartIommu {
  /** @param base the correct driver (hardware and options are shared). */
  constructor(base: GartIommu) {
    super(base.hw, base.options);
  }

  protected override onWrap(): void {
    // The bug: no need_flush, so the GART TLB keeps the translation of a reused slot.
  }
}

/**
 * §6.3's lazy policy: a NIC maps, DMAs and unmaps one page after another through a 4-page IOMMU
 * part until the allocator wraps and reuses a slot whose old translation is in the GART TLB.
 */
export function lazyScenario(id: string, broken: boolean): Scenario {
  return {
    id,
    options: () => options({ flushPolicy: 'lazy', emergencyPages: 60 }),
    setup(sim) {
      const gart = attach(sim);
      const iommu = broken ? new ForgetsWrap(gart.iommu) : gart.iommu;
      const phys = sim.get(MmService).core.phys;
      sim.spawn('boot', 0, function* () {
        yield* iommu.init();
        const pages = [1, 2, 3, 4, 5, 6].map(() => phys.alloc('anon'));
        for (const pfn of pages) {
          const bus = iommu.mapPage(pfn);
          const nic = sim.spawn('nic', 'nic0', function* () {
            gart.hw.access('nic0', bus, 0, undefined, true);
            yield* sim.scheduler.preempt();
            gart.hw.access('nic0', bus, 1, undefined, true);
          });
          yield* sim.scheduler.join(nic);
          iommu.unmapPage(bus);
        }
      });
    },
  };
}

/** The GART variants, in a stable order. */
export const GART_ZOO: readonly ZooVariant[] = [
  {
    id: 'gart-spec-mmu-skips-release',
    rule: 'a secondary MMU whose hardware speculates must tear down and quiesce in ->release, before exit frees the pages',
    spec: 'users-and-hardware.md §6.1, §6.3, §7 scenario 41; notifier-core.md §2.1',
    expected: ALIAS,
    scenario: (broken) =>
      releaseScenario(
        broken ? 'gart-spec-mmu-skips-release' : 'gart-spec-mmu-correct',
        broken ? 'skip-release' : 'none',
      ),
  },
  {
    id: 'gart-spec-mmu-late-teardown',
    rule: '->release tears the secondary mappings down before it returns, not in deferred work after the pages are freed',
    spec: 'users-and-hardware.md §6.1, §7 scenario 41; notifier-core.md §2.1',
    expected: ALIAS,
    scenario: (broken) =>
      releaseScenario(
        broken ? 'gart-spec-mmu-late-teardown' : 'gart-spec-mmu-correct',
        broken ? 'late-teardown' : 'none',
      ),
  },
  {
    id: 'gart-gatt-before-uc',
    rule: 'AGP pages are made uncached in the direct map (set_pages_array_uc) before they enter the GATT',
    spec: 'users-and-hardware.md §6.3, §7 scenario 41',
    expected: ALIAS,
    scenario: (broken) =>
      agpScenario(
        broken ? 'gart-gatt-before-uc' : 'gart-agp-correct',
        broken ? 'gatt-before-uc' : 'none',
      ),
  },
  {
    id: 'gart-free-before-wb',
    rule: 'AGP pages get write-back restored (set_pages_array_wb) before they are freed',
    spec: 'users-and-hardware.md §6.3',
    expected: ['mixed-memory-type'],
    scenario: (broken) =>
      agpScenario(
        broken ? 'gart-free-before-wb' : 'gart-agp-correct',
        broken ? 'free-before-wb' : 'none',
      ),
  },
  {
    id: 'gart-enable-before-wbinvd',
    rule: 'gart_iommu_init does a full wbinvd after the aperture is not-present and before translation is enabled',
    spec: 'users-and-hardware.md §6.3, §7 scenario 42',
    expected: ['gart-init-order'],
    scenario: (broken) =>
      initScenario(
        broken ? 'gart-enable-before-wbinvd' : 'gart-init-correct',
        broken ? 'wbinvd' : 'none',
      ),
  },
  {
    id: 'gart-enable-before-np',
    rule: "the aperture's direct map is made not-present before the wbinvd and the enable",
    spec: 'users-and-hardware.md §6.3, §7 scenario 42',
    expected: ['gart-init-order'],
    scenario: (broken) =>
      initScenario(broken ? 'gart-enable-before-np' : 'gart-init-correct', broken ? 'np' : 'none'),
  },
  {
    id: 'gart-lazy-flush-misses-wrap',
    rule: 'with lazy GART TLB flushing, the allocator sets need_flush when it wraps and the next map flushes',
    spec: 'users-and-hardware.md §6.3',
    expected: ['gart-stale-tlb'],
    scenario: (broken) =>
      lazyScenario(broken ? 'gart-lazy-flush-misses-wrap' : 'gart-lazy-correct', broken),
  },
];
