/**
 * The bug zoo: each variant is a small driver plugin with one deliberately broken rule, run in a
 * small scenario, and paired with its correct counterpart (the same plugin with `bug: 'none'`).
 */
import type { Scenario, Simulation, TaskGen } from '@mmnsim/core';
import { Madv, Map_, mmPlugin, MmService, notifierOracles, PAGE_SIZE, Prot } from '@mmnsim/mm';
import type { Process } from '@mmnsim/mm';
import { IOMMU_ZOO } from './iommu-variants.js';
import { MiniKvmVm, miniKvmPlugin } from './mini-kvm.js';
import type { KvmBug } from './mini-kvm.js';
import { MiniOdpDevice, miniOdpPlugin } from './mini-odp.js';
import type { OdpBug } from './mini-odp.js';
import { GART_ZOO } from './gart-variants.js';
import { MiniSubscriberDevice, miniSubscriberPlugin } from './mini-subscriber.js';
import type { SubscriberBug } from './mini-subscriber.js';
import { MM_ZOO } from './mm-variants.js';

/** One zoo variant. */
export interface ZooVariant {
  /** Stable id (also the scenario id of the broken form). */
  readonly id: string;
  /** The kernel rule the broken form breaks. */
  readonly rule: string;
  /** Where the rule is stated. */
  readonly spec: string;
  /** Violation kinds that name the rule: a failure counts as "found" only with one of these. */
  readonly expected: readonly string[];
  /** The scenario: `broken` plants the bug, otherwise the correct counterpart runs. */
  scenario(broken: boolean): Scenario;
}

const RW = Prot.READ | Prot.WRITE;
const BASE = 0x40000000;
const STALE = [
  'secondary-map-in-window',
  'secondary-mapping-survived-start',
  'secondary-use-after-free',
  'secondary-mapping-to-freed-frame',
];

/** A process with `pages` anonymous pages at BASE, each holding `100 + index` in its first word. */
function* populate(proc: Process, pages: number): TaskGen<void> {
  yield* proc.mmap(BASE, pages * PAGE_SIZE, RW, Map_.PRIVATE | Map_.ANONYMOUS | Map_.FIXED);
  for (let i = 0; i < pages; i++) yield* proc.store(BASE + i * PAGE_SIZE, 100 + i);
}

/** Replaces page `i` with a fresh mapping holding a new value (the old frame is freed, then reused). */
function* remap(proc: Process, i: number): TaskGen<void> {
  const va = BASE + i * PAGE_SIZE;
  yield* proc.munmap(va, PAGE_SIZE);
  yield* proc.mmap(va, PAGE_SIZE, RW, Map_.PRIVATE | Map_.ANONYMOUS | Map_.FIXED);
  yield* proc.store(va, 900 + i);
}

function attachOracles(sim: Simulation): void {
  for (const o of notifierOracles(sim)) sim.addOracle(o);
}

function odpScenario(id: string, bug: OdpBug): Scenario {
  return {
    id,
    options: () => ({
      cpus: 1,
      devices: ['nic0'],
      log: false,
      plugins: [mmPlugin({ totalFrames: 96 }), miniOdpPlugin({ bug })],
    }),
    setup(sim) {
      attachOracles(sim);
      const odp = sim.get(MiniOdpDevice);
      const proc = sim.get(MmService).createProcess('app');
      sim.spawn('app', 0, function* () {
        yield* populate(proc, 3);
        yield* odp.register(proc, BASE, 3 * PAGE_SIZE);
        const nic = sim.spawn('nic', 'nic0', function* () {
          for (let i = 0; i < 9; i++) yield* odp.dmaRead(BASE + (i % 3) * PAGE_SIZE);
        });
        for (let round = 0; round < 3; round++) {
          yield* sim.scheduler.preempt();
          yield* remap(proc, 1 + (round % 2));
          yield* sim.scheduler.preempt();
          yield* proc.madvise(BASE, PAGE_SIZE, Madv.DONTNEED);
        }
        yield* sim.scheduler.join(nic);
        yield* odp.deregister();
      });
    },
  };
}

function kvmScenario(id: string, bug: KvmBug, twoWindows = false): Scenario {
  return {
    id,
    options: () => ({
      cpus: 3,
      log: false,
      plugins: [mmPlugin({ totalFrames: 96 }), miniKvmPlugin({ bug })],
    }),
    setup(sim) {
      attachOracles(sim);
      const vm = sim.get(MiniKvmVm);
      const proc = sim.get(MmService).createProcess('qemu');
      sim.spawn('qemu', 0, function* () {
        yield* populate(proc, 4);
        yield* vm.create(proc);
        const vcpu = sim.spawn('vcpu0', 1, function* () {
          for (let i = 0; i < 4; i++) yield* vm.guestRead(BASE + ((i + 1) % 4) * PAGE_SIZE);
        });
        if (twoWindows) {
          // Two overlapping CLEAR windows (MADV_DONTNEED under the read lock) from two CPUs.
          const other = sim.spawn('madvise2', 2, function* () {
            yield* proc.madvise(BASE + PAGE_SIZE, 3 * PAGE_SIZE, Madv.DONTNEED);
          });
          yield* proc.madvise(BASE, 2 * PAGE_SIZE, Madv.DONTNEED);
          yield* sim.scheduler.join(other);
        } else {
          yield* remap(proc, 1);
          yield* proc.madvise(BASE + 2 * PAGE_SIZE, PAGE_SIZE, Madv.DONTNEED);
        }
        yield* sim.scheduler.join(vcpu);
        yield* vm.destroy();
      });
    },
  };
}

function subscriberScenario(id: string, bug: SubscriberBug, broken: boolean): Scenario {
  const plant: SubscriberBug = broken ? bug : 'none';
  return {
    id,
    options: () => ({
      cpus: 2,
      log: false,
      plugins: [mmPlugin({ totalFrames: 96 }), miniSubscriberPlugin({ bug: plant })],
    }),
    setup(sim) {
      attachOracles(sim);
      const dev = sim.get(MiniSubscriberDevice);
      const svc = sim.get(MmService);
      const proc = svc.createProcess('app');
      sim.spawn('app', 0, function* () {
        yield* populate(proc, 2);
        yield* dev.attach(proc);
        switch (bug) {
          case 'sleep-in-nonblock':
          case 'failing-start-with-end':
            // The OOM reaper opens non-blockable windows.
            yield* svc.oomReap(proc);
            yield* dev.detach();
            break;
          case 'unregister-from-release':
            yield* proc.exit();
            break;
          case 'release-not-idempotent': {
            // The process exits while the driver's close path unregisters (notifier-core.md §2.1).
            const close = sim.spawn('close', 1, function* () {
              yield* dev.detach();
            });
            yield* proc.exit();
            yield* sim.scheduler.join(close);
            break;
          }
          case 'none':
            break;
        }
      });
    },
  };
}

/** The variants, in a stable order. */
export const ZOO: readonly ZooVariant[] = [
  {
    id: 'odp-no-read-retry',
    rule: 'program device PTEs only after mmu_interval_read_retry says the snapshot is still valid',
    spec: 'notifier-core.md §4.4 F5, §4.5; users-and-hardware.md §2.2, §7 scenario 17',
    expected: STALE,
    scenario: (broken) =>
      odpScenario(broken ? 'odp-no-read-retry' : 'odp-correct', broken ? 'no-read-retry' : 'none'),
  },
  {
    id: 'odp-read-retry-outside-lock',
    rule: 'mmu_interval_read_retry is called with the driver lock held (invariant 40)',
    spec: 'notifier-core.md §4.3, §9 invariant 40',
    expected: ['mmn-read-retry-unlocked', ...STALE],
    scenario: (broken) =>
      odpScenario(
        broken ? 'odp-read-retry-outside-lock' : 'odp-correct',
        broken ? 'read-retry-outside-lock' : 'none',
      ),
  },
  {
    id: 'odp-conditional-set-seq',
    rule: 'mmu_interval_set_seq is called unconditionally in every invalidate (invariant 39)',
    spec: 'notifier-core.md §4.3, §9 invariant 39',
    expected: ['mmn-set-seq-missing', ...STALE],
    scenario: (broken) =>
      odpScenario(
        broken ? 'odp-conditional-set-seq' : 'odp-correct',
        broken ? 'conditional-set-seq' : 'none',
      ),
  },
  {
    id: 'odp-mtt-after-unlock',
    rule: 'device PTEs are written under the same hold of the driver lock that checked read_retry',
    spec: 'notifier-core.md §4.4 F5–F7, §4.5; users-and-hardware.md §7 scenario 17',
    expected: STALE,
    scenario: (broken) =>
      odpScenario(
        broken ? 'odp-mtt-after-unlock' : 'odp-correct',
        broken ? 'mtt-after-unlock' : 'none',
      ),
  },
  {
    id: 'odp-remove-from-invalidate',
    rule: 'mmu_interval_notifier_remove is never called from an ops callback (invariant 42)',
    spec: 'notifier-core.md §4.3, §9 invariant 42',
    expected: ['mmn-call-from-callback'],
    scenario: (broken) =>
      odpScenario(
        broken ? 'odp-remove-from-invalidate' : 'odp-correct',
        broken ? 'remove-from-invalidate' : 'none',
      ),
  },
  {
    id: 'kvm-stale-check-ignores-range',
    rule: 'a fault is stale if an invalidation covering its gfn is in progress, even with an unchanged seq',
    spec: 'users-and-hardware.md §1.2 step 6, §7 scenario 2',
    expected: STALE,
    scenario: (broken) =>
      kvmScenario(
        broken ? 'kvm-stale-check-ignores-range' : 'kvm-correct',
        broken ? 'ignore-in-progress-range' : 'none',
      ),
  },
  {
    id: 'kvm-seq-after-gup',
    rule: 'the mmu_invalidate_seq snapshot is taken before the page is looked up (GUP)',
    spec: 'users-and-hardware.md §1.2 step 4a, §7 scenario 1',
    expected: STALE,
    scenario: (broken) =>
      kvmScenario(broken ? 'kvm-seq-after-gup' : 'kvm-correct', broken ? 'seq-after-gup' : 'none'),
  },
  {
    id: 'kvm-flush-after-start',
    rule: 'the remote TLB flush completes before invalidate_range_start returns',
    spec: 'users-and-hardware.md §1.3, §1.6, §7 scenario 6; notifier-core.md §2.5',
    expected: STALE,
    scenario: (broken) =>
      kvmScenario(
        broken ? 'kvm-flush-after-start' : 'kvm-correct',
        broken ? 'flush-after-start' : 'none',
      ),
  },
  {
    id: 'kvm-range-reset-first-of-two',
    rule: 'the accumulated invalidation range is reset only when in_progress goes 0 -> 1, never at the end of one of several windows',
    spec: 'users-and-hardware.md §1.1, §1.3',
    expected: STALE,
    scenario: (broken) =>
      kvmScenario(
        broken ? 'kvm-range-reset-first-of-two' : 'kvm-correct-two-windows',
        broken ? 'range-reset-first-of-two' : 'none',
        true,
      ),
  },
  {
    id: 'sleep-in-nonblock',
    rule: 'a list callback must not sleep in a non-blockable range; it returns -EAGAIN instead',
    spec: 'notifier-core.md §2.5, §4.6, §5.1',
    expected: ['sleep-in-atomic'],
    scenario: (broken) =>
      subscriberScenario(
        broken ? 'sleep-in-nonblock' : 'sleep-in-nonblock-correct',
        'sleep-in-nonblock',
        broken,
      ),
  },
  {
    id: 'unregister-from-release',
    rule: 'mmu_notifier_unregister is never called from a callback or inside the notifier SRCU section (it deadlocks)',
    spec: 'notifier-core.md §2.1, §3.2, §9 invariant 43',
    expected: ['mmn-call-from-callback', 'srcu-sync-in-read-section'],
    scenario: (broken) =>
      subscriberScenario(
        broken ? 'unregister-from-release' : 'unregister-from-release-correct',
        'unregister-from-release',
        broken,
      ),
  },
  {
    id: 'lock-across-reclaim',
    rule: 'a lock taken in a notifier callback is never held across an allocation that may enter direct reclaim',
    spec: 'notifier-core.md §5.3, §9 invariant 38',
    expected: ['lockdep-circular'],
    scenario: (broken) =>
      odpScenario(
        broken ? 'odp-lock-across-reclaim' : 'odp-correct',
        broken ? 'lock-across-reclaim' : 'none',
      ),
  },
  {
    id: 'release-not-idempotent',
    rule: 'release may run twice when exit races unregister; it must be idempotent',
    spec: 'notifier-core.md §2.1, §9 invariant 11',
    expected: ['bug'],
    scenario: (broken) =>
      subscriberScenario(
        broken ? 'release-not-idempotent' : 'release-not-idempotent-correct',
        'release-not-idempotent',
        broken,
      ),
  },
  {
    id: 'failing-start-with-end',
    rule: 'a subscriber whose invalidate_range_start can fail must not implement invalidate_range_end',
    spec: 'notifier-core.md §2.5, §9 invariant 16',
    expected: ['mmn-failing-start-has-end'],
    scenario: (broken) =>
      subscriberScenario(
        broken ? 'failing-start-with-end' : 'failing-start-with-end-correct',
        'failing-start-with-end',
        broken,
      ),
  },
  ...IOMMU_ZOO,
  ...GART_ZOO,
  ...MM_ZOO,
];

/** The scenario with `id` (broken or correct form), for replay files. */
export function zooScenario(id: string): Scenario | undefined {
  for (const v of ZOO) {
    for (const broken of [true, false]) {
      const s = v.scenario(broken);
      if (s.id === id) return s;
    }
  }
  return undefined;
}
