/**
 * The demo's composed simulation: one host process (a VMM) with a KVM guest of two vCPUs over
 * part of its memory, an RDMA ODP memory region over another part, with NIC traffic, and an SVA
 * accelerator bound to the VMM with a PASID (ATS device TLB, page requests), on the x86
 * TLB model — while the host faults pages in, forks, write-protects, unmaps and re-maps, drops
 * pages and a kswapd reclaims. Every secondary MMU is checked by the notifier oracles, the KVM and
 * RDMA oracles and the x86 TLB oracle.
 */
import type { Scenario, Simulation, TaskGen } from '@mmnsim/core';
import { kvmPlugin, KvmService } from '@mmnsim/drivers-kvm';
import type { GuestCpu } from '@mmnsim/drivers-kvm';
import { IbAccess, rdmaPlugin, RdmaService } from '@mmnsim/drivers-rdma';
import type { OdpMr } from '@mmnsim/drivers-rdma';
import { iommuPlugin, IommuService } from '@mmnsim/hw-iommu';
import { x86TlbPlugin } from '@mmnsim/hw-x86-tlb';
import { Madv, Map_, mmPlugin, MmService, notifierOracles, PAGE_SIZE, Prot } from '@mmnsim/mm';

/** Guest memory: 4 pages at guest physical 0x100000. */
const GUEST_PAGES = 4;
const GPA = 0x100 * PAGE_SIZE;
/** The ODP region: 4 pages of the same process. */
const MR_PAGES = 4;
/** The SVA accelerator's buffer: 3 pages of the same process, the last one never touched by the CPU. */
const SVA_PAGES = 3;
const RW = Prot.READ | Prot.WRITE;
const ANON = Map_.PRIVATE | Map_.ANONYMOUS;

/** What one run of the demo scenario did (summed by the demo over a campaign). */
export interface DemoCounters {
  /** Guest loads and stores. */
  guestAccesses: number;
  /** KVM page faults. */
  kvmFaults: number;
  /** KVM faults sent back because an invalidation raced them. */
  kvmRetries: number;
  /** NIC work requests completed (any status). */
  nicRequests: number;
  /** ODP page faults. */
  odpFaults: number;
  /** ODP faults that collided with an invalidation (read_retry or -EBUSY). */
  odpCollisions: number;
  /** SVA accelerator DMA accesses (with PASID). */
  svaDma: number;
  /** Of them, ATC hits. */
  atcHits: number;
  /** Page requests (PRI) the accelerator sent. */
  pageRequests: number;
  /** ATS invalidation requests the accelerator executed. */
  atsInvalidations: number;
}

/** Zeroed counters. */
export function newCounters(): DemoCounters {
  return {
    guestAccesses: 0,
    kvmFaults: 0,
    kvmRetries: 0,
    nicRequests: 0,
    odpFaults: 0,
    odpCollisions: 0,
    svaDma: 0,
    atcHits: 0,
    pageRequests: 0,
    atsInvalidations: 0,
  };
}

/**
 * The composed scenario. CPUs: 0 the VMM's main thread, 1–2 the vCPUs, 3 the NIC's page-fault
 * kworker, kswapd and the IOMMU's page-request thread and fault kworker; the NIC's engines run on
 * device context `nic0`, the IOMMU's invalidation queue on `dmar0`, the accelerator on `accel0`.
 *
 * @param counters where each run adds what it did (optional).
 */
export function demoScenario(counters?: DemoCounters): Scenario {
  return {
    id: 'demo-vmm-kvm-odp',
    options: () => ({
      cpus: 4,
      devices: ['nic0', 'dmar0', 'accel0'],
      log: false,
      maxSteps: 200_000,
      plugins: [
        mmPlugin({ totalFrames: 96, reclaimBatch: 2 }),
        x86TlbPlugin(),
        kvmPlugin({ vcpus: 2 }),
        rdmaPlugin(),
        iommuPlugin({ faultCpu: 3 }),
      ],
    }),
    setup(sim: Simulation) {
      const svc = sim.get(MmService);
      const kvm = sim.get(KvmService);
      const rdma = sim.get(RdmaService);
      const nic = rdma.createDevice('mlx5_0', { engine: 'nic0', faultCpu: 3 });
      const iommu = sim.get(IommuService);
      const accel = iommu.createDevice('accel0');
      const ro = rdma.oracleOptions();
      const mmus = [...(ro.mmus ?? []), ...iommu.secondaryMmus()];
      for (const o of notifierOracles(sim, { ...ro, mmus })) sim.addOracle(o);
      const vmm = svc.createProcess('qemu');
      const qp = nic.createQp();

      // Each vCPU writes its own word of every guest page and reads the other vCPU's.
      const guest = (me: number) =>
        function* (cpu: GuestCpu): TaskGen<void> {
          for (let round = 0; round < 2; round++) {
            for (let p = 0; p < GUEST_PAGES; p++) {
              const gpa = GPA + p * PAGE_SIZE;
              yield* cpu.store(gpa + 4 * me, 1000 * me + 10 * round + p);
              yield* cpu.load(gpa + 4 * (1 - me));
            }
          }
        };

      sim.spawn('qemu', 0, function* () {
        const guestMem = yield* vmm.mmap(0, GUEST_PAGES * PAGE_SIZE, RW, ANON);
        const buf = yield* vmm.mmap(0, MR_PAGES * PAGE_SIZE, RW, ANON);
        for (let p = 0; p < GUEST_PAGES; p++) yield* vmm.store(guestMem + p * PAGE_SIZE, p + 1);
        const vm = yield* kvm.createVm(vmm, { vcpus: 2, cpus: [1, 2] });
        const slot = { slot: 0, gpa: GPA, size: GUEST_PAGES * PAGE_SIZE, hva: guestMem };
        if ((yield* vm.setMemslot(slot)) !== 0) throw new Error('demo: memslot refused');
        const access = IbAccess.LOCAL_WRITE | IbAccess.REMOTE_WRITE | IbAccess.REMOTE_READ;
        const mr = yield* nic.registerOdpMr(vmm, buf, MR_PAGES * PAGE_SIZE, access);
        if (typeof mr === 'number') throw new Error(`demo: registerOdpMr: ${mr}`);
        const svaBuf = yield* vmm.mmap(0, SVA_PAGES * PAGE_SIZE, RW, ANON);
        for (let p = 0; p < SVA_PAGES - 1; p++) yield* vmm.store(svaBuf + p * PAGE_SIZE, 50 + p);
        const pasid = yield* iommu.bind('accel0', vmm.mm);
        if (pasid < 0) throw new Error(`demo: iommu_sva_bind_device: ${pasid}`);

        const v0 = vm.vcpu(0).run(guest(0));
        const v1 = vm.vcpu(1).run(guest(1));
        const traffic = sim.spawn('nic-traffic', 3, function* () {
          yield* nicTraffic(mr, buf);
        });
        // The accelerator reads and writes its buffer with the VMM's PASID (ATS, PRI on the last page).
        const sva = sim.spawn('accel', 'accel0', function* () {
          for (let i = 0; i < 2 * SVA_PAGES; i++)
            yield* accel.dma(pasid, svaBuf + (i % SVA_PAGES) * PAGE_SIZE, i % 2 === 1, i);
        });
        const kswapd = sim.spawn('kswapd', 3, function* () {
          for (let i = 0; i < 2; i++) {
            yield* svc.reclaim(2);
            yield* sim.scheduler.preempt();
          }
        });

        // The host's side of the mixed workload.
        yield* vmm.madvise(guestMem, PAGE_SIZE, Madv.DONTNEED); // KVM zaps page 0
        yield* vmm.mprotect(guestMem + PAGE_SIZE, 2 * PAGE_SIZE, Prot.READ); // write-protect
        yield* vmm.mprotect(guestMem + PAGE_SIZE, 2 * PAGE_SIZE, RW);
        const child = yield* vmm.fork('qemu-child'); // COW-protects everything
        yield* vmm.store(guestMem + 2 * PAGE_SIZE, 7); // COW break in the parent
        if (typeof child !== 'number') yield* child.exit();
        yield* vmm.munmap(buf + PAGE_SIZE, PAGE_SIZE); // under the MR: ODP zaps the MTT entry
        yield* vmm.mmap(buf + PAGE_SIZE, PAGE_SIZE, RW, ANON | Map_.FIXED);
        yield* vmm.store(buf + PAGE_SIZE, 99); // a new page the NIC faults in next time

        for (const t of [v0, v1, traffic, sva, kswapd]) yield* sim.scheduler.join(t);
        if (counters !== undefined) {
          counters.guestAccesses += vm.vcpus.reduce((n, v) => n + v.stats.accesses, 0);
          counters.kvmFaults += vm.stats.faults;
          counters.kvmRetries += vm.stats.retries;
          counters.odpFaults += nic.odpStats.faults;
          counters.odpCollisions += nic.odpStats.collisions + nic.odpStats.busyRetries;
          counters.svaDma += accel.stats.dma;
          counters.atcHits += accel.stats.atcHits;
          counters.pageRequests += accel.stats.pageRequests;
          counters.atsInvalidations += accel.stats.atsInvalidations;
        }
        accel.stop(pasid);
        yield* iommu.unbind('accel0', vmm.mm);
        yield* nic.deregisterMr(mr);
        yield* vm.destroy();
        yield* vmm.exit();
      });

      // RDMA WRITE then READ on each page of the MR, twice over.
      function* nicTraffic(mr: OdpMr, buf: number): TaskGen<void> {
        for (let round = 0; round < 2; round++) {
          for (let p = 0; p < MR_PAGES; p++) {
            const addr = buf + p * PAGE_SIZE + 8;
            const wc =
              (round + p) % 2 === 0
                ? yield* qp.execute({ opcode: 'RDMA_WRITE', remote: { mr, addr }, data: [p] })
                : yield* qp.execute({ opcode: 'RDMA_READ', remote: { mr, addr }, length: 4 });
            if (counters !== undefined) counters.nicRequests++;
            if (wc.status !== 'SUCCESS') qp.reset(); // the page was gone for a moment
          }
        }
      }
    },
  };
}
