/**
 * The IOMMU part of the bug zoo: an SVA accelerator (PASID, ATS, PRI) and a DMA-API device on
 * the `iommu` plugin, each variant planting one of the plugin's `bugs` and paired with the same
 * scenario without it. Its own file so the IOMMU variants stay next to their scenarios.
 */
import type { Scenario, TaskGen } from '@mmnsim/core';
import { iommuPlugin, IommuService } from '@mmnsim/hw-iommu';
import type { IommuBug } from '@mmnsim/hw-iommu';
import { Map_, mmPlugin, MmService, notifierOracles, PAGE_SIZE, Prot } from '@mmnsim/mm';
import type { ZooVariant } from './variants.js';

const RW = Prot.READ | Prot.WRITE;
const ANON = Map_.PRIVATE | Map_.ANONYMOUS | Map_.FIXED;
const BASE = 0x40000000;
const STALE = [
  'secondary-mapping-to-freed-frame',
  'secondary-use-after-free',
  'iommu-translation-survived-invalidation',
  'iommu-dma-use-after-free',
];

type Workload = 'unmap' | 'unbind' | 'exit' | 'fault';

/**
 * An app with 3 pages bound to `accel0`; the accelerator reads and writes them (ATS + PRI)
 * while the app remaps pages (`unmap`), stops and unbinds the device (`unbind`), exits with it
 * bound (`exit`), or leaves pages for the device to fault in (`fault`).
 */
function svaScenario(id: string, bug: IommuBug | null, work: Workload): Scenario {
  return {
    id,
    options: () => ({
      cpus: 2,
      devices: ['dmar0', 'accel0'],
      log: false,
      plugins: [mmPlugin({ totalFrames: 96 }), iommuPlugin({ bugs: bug === null ? [] : [bug] })],
    }),
    setup(sim) {
      const iommu = sim.get(IommuService);
      const dev = iommu.createDevice('accel0');
      for (const o of notifierOracles(sim, { mmus: iommu.secondaryMmus() })) sim.addOracle(o);
      const proc = sim.get(MmService).createProcess('app');
      sim.spawn('app', 0, function* (): TaskGen<void> {
        yield* proc.mmap(BASE, 3 * PAGE_SIZE, RW, ANON);
        if (work !== 'fault')
          for (let i = 0; i < 3; i++) yield* proc.store(BASE + i * PAGE_SIZE, 100 + i);
        const pasid = yield* iommu.bind('accel0', proc.mm);
        const accel = sim.spawn('accel', 'accel0', function* () {
          for (let i = 0; i < 6; i++) {
            const va = BASE + (i % 3) * PAGE_SIZE;
            yield* dev.dma(pasid, va, i % 2 === 1, i);
          }
        });
        if (work === 'unmap') {
          for (let round = 0; round < 2; round++) {
            yield* sim.scheduler.preempt();
            const va = BASE + (1 + round) * PAGE_SIZE;
            yield* proc.munmap(va, PAGE_SIZE);
            yield* proc.mmap(va, PAGE_SIZE, RW, ANON);
            yield* proc.store(va, 900 + round);
          }
        } else if (work === 'unbind' || work === 'fault') {
          yield* sim.scheduler.preempt();
          dev.stop(pasid);
          yield* iommu.unbind('accel0', proc.mm);
          yield* sim.scheduler.join(accel);
          return;
        } else {
          yield* sim.scheduler.preempt();
          yield* proc.exit();
          yield* sim.scheduler.join(accel);
          yield* iommu.unbind('accel0', proc.mm);
          return;
        }
        yield* sim.scheduler.join(accel);
        dev.stop(pasid);
        yield* iommu.unbind('accel0', proc.mm);
      });
    },
  };
}

/** A DMA-API device in lazy mode: map, DMA, unmap, map another page, DMA again. */
function lazyScenario(id: string, bug: IommuBug | null): Scenario {
  return {
    id,
    options: () => ({
      cpus: 1,
      devices: ['dmar0', 'nic0'],
      log: false,
      plugins: [
        mmPlugin({ totalFrames: 96 }),
        iommuPlugin({ strict: false, bugs: bug === null ? [] : [bug] }),
      ],
    }),
    setup(sim) {
      const iommu = sim.get(IommuService);
      iommu.attach('nic0', { ats: false });
      const agent = iommu.agent;
      const core = sim.get(MmService).core;
      sim.spawn('driver', 0, function* (): TaskGen<void> {
        const pages: number[] = [];
        for (let i = 0; i < 3; i++) pages.push(yield* core.allocFrame('anon'));
        let dma = -1;
        const nic = sim.spawn('nic', 'nic0', function* () {
          for (let i = 0; i < 6; i++) {
            if (dma >= 0) agent.read('nic0', dma);
            yield* sim.scheduler.preempt();
          }
        });
        for (const p of pages) {
          dma = agent.mapPage('nic0', p, 'bidirectional');
          yield* sim.scheduler.preempt();
          const old = dma;
          dma = -1;
          yield* agent.unmapPage('nic0', old, 'bidirectional');
        }
        yield* sim.scheduler.join(nic);
      });
    },
  };
}

function sva(
  id: string,
  bug: IommuBug,
  work: Workload,
  rule: string,
  spec: string,
  expected: readonly string[],
): ZooVariant {
  return {
    id,
    rule,
    spec,
    expected,
    scenario: (broken) => svaScenario(broken ? id : `${id}-correct`, broken ? bug : null, work),
  };
}

/** The IOMMU variants of the zoo. */
export const IOMMU_ZOO: readonly ZooVariant[] = [
  sva(
    'iommu-devtlb-before-iotlb',
    'devtlb-before-iotlb',
    'unmap',
    'arch_invalidate_secondary_tlbs invalidates the IOTLB before the device TLB, so the ATC cannot refill from a stale IOTLB entry',
    'drivers/iommu/intel/cache.c: cache_tag_flush_range; §4.3, §7 scenario 28',
    STALE,
  ),
  sva(
    'iommu-no-ats-invalidation',
    'no-ats-invalidation',
    'unmap',
    'an ATS device gets a device-TLB invalidation for every range the CPU TLB flush covers',
    'drivers/iommu/intel/svm.c: intel_arch_invalidate_secondary_tlbs; §4.3, §7 scenario 28',
    STALE,
  ),
  sva(
    'iommu-no-wait-descriptor',
    'no-wait-descriptor',
    'unmap',
    'the invalidation is completed (wait descriptor) before the CPU flush returns and the page is freed',
    'drivers/iommu/intel/dmar.c: qi_submit_sync; §4.3, §7 scenario 28',
    STALE,
  ),
  sva(
    'iommu-unbind-no-drain',
    'unbind-no-drain',
    'fault',
    'unbind drains the page requests of the PASID before the PASID is detached',
    'drivers/iommu/intel/prq.c: intel_drain_pasid_prq; §4.2, §4.5 step 8',
    ['iommu-unbind-prq-pending'],
  ),
  sva(
    'iommu-release-keeps-pasid',
    'release-keeps-pasid',
    'exit',
    'release tears down the PASID entry and flushes IOTLB and ATC: later invalidations never reach a released notifier',
    'drivers/iommu/intel/svm.c: intel_mm_release; §4.4, §7 scenario 31',
    [...STALE, 'iommu-walk-freed-tables', 'iommu-dma-after-release'],
  ),
  sva(
    'iommu-response-before-fault',
    'response-before-fault',
    'fault',
    'a page request group is answered only after handle_mm_fault ran for its faults',
    'drivers/iommu/iommu-sva.c: iommu_sva_handle_iopf; §4.5 steps 6-7, §7 scenario 30',
    ['iommu-page-response-before-fault'],
  ),
  {
    id: 'iommu-lazy-reuse-before-flush',
    rule: 'in lazy mode an unmapped IOVA goes through the flush queue and is reused only after the IOTLB flush',
    spec: 'drivers/iommu/dma-iommu.c: queue_iova, fq_ring_free; §4.1 (IOTLB)',
    expected: ['iommu-iova-reused-before-flush', 'iommu-dma-use-after-free'],
    scenario: (broken) =>
      lazyScenario(
        broken ? 'iommu-lazy-reuse-before-flush' : 'iommu-lazy-correct',
        broken ? 'lazy-reuse-before-flush' : null,
      ),
  },
];
