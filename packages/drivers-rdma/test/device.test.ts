// The NIC, its memory regions and the DMA agent outside the numbered scenarios: options, the
// registration SNAPSHOT pass, access rights and queue-pair errors, MR-to-MR transfers, process
// exit under a live ODP MR, pinned registration failures, the DmaAgent extension point and
// DirectDma's DMA-API checks, and determinism of the log.
import { describe, expect, it } from '@jest/globals';
import { ConfigError, Errno, Simulation } from '@mmnsim/core';
import type { Plugin, TaskGen } from '@mmnsim/core';
import {
  DirectDma,
  DMA_FAULT,
  DmaAgentContribution,
  Map_,
  mmPlugin,
  MmService,
  PAGE_SIZE,
  Prot,
  ptePfn,
} from '@mmnsim/mm';
import type { DmaAgent, DmaDirection } from '@mmnsim/mm';
import { IbAccess, MttAccess, rdmaPlugin, RdmaService } from '@mmnsim/drivers-rdma';
import type { MemoryRegion, OdpMr, WorkCompletion } from '@mmnsim/drivers-rdma';
import { ContainerModule } from 'inversify';
import { ofType, rdmaSim, runOk } from './helpers.js';

const RW = Prot.READ | Prot.WRITE;
const ANON = Map_.PRIVATE | Map_.ANONYMOUS;
const ALL = IbAccess.LOCAL_WRITE | IbAccess.REMOTE_WRITE | IbAccess.REMOTE_READ;

function mr<T extends MemoryRegion>(r: T | number): T {
  if (typeof r === 'number') throw new Error(`registration failed: ${r}`);
  return r;
}

describe('options and devices', () => {
  it('plugin options are validated: a negative RLIMIT_MEMLOCK is refused naming the field', () => {
    expect(() =>
      Simulation.create({
        seed: 1,
        plugins: [mmPlugin(), rdmaPlugin({ memlockLimitPages: -1 })],
      }),
    ).toThrow(/plugin "rdma": invalid options: "memlockLimitPages"/);
    expect(() => Simulation.create({ seed: 1, plugins: [rdmaPlugin()] })).toThrow(
      /requires plugin "mm"/,
    );
  });

  it('createDevice refuses a duplicate name, an engine that is not a device context, and unknown bugs', () => {
    const { rdma } = rdmaSim();
    expect(() => rdma.createDevice('mlx5_0', { engine: 'nic0' })).toThrow(/already exists/);
    expect(() => rdma.createDevice('mlx5_1', { engine: 'cpu0' })).toThrow(/not a device context/);
    expect(() => rdma.createDevice('mlx5_2')).toThrow(ConfigError); // no context named mlx5_2
    expect(() => rdma.createDevice('mlx5_3', { engine: 'nic0', bugs: ['nope' as never] })).toThrow(
      /"bugs.0"/,
    );
    expect(rdma.devices.map((d) => d.name)).toEqual(['mlx5_0']);
    expect(rdma.secondaryMmus.map((m) => [m.name, m.kind])).toEqual([
      ['mlx5_0', 'shadow'],
      ['mlx5_0/pinned', 'tlb'],
    ]);
  });
});

describe('ODP MR registration and the NIC', () => {
  it('registration maps what the CPU maps (SNAPSHOT), read-only where the PTE is; a NIC write to a COW page faults, breaks COW and retries hmm_range_fault once (-EBUSY)', () => {
    const { sim, nic, proc, qp, mm } = rdmaSim();
    const out: { access: number[]; wc?: WorkCompletion; parentPfn: number; childWord: number } = {
      access: [],
      parentPfn: -1,
      childWord: -1,
    };
    sim.spawn('app', 0, function* () {
      const V = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, ANON);
      yield* proc.store(V, 1);
      yield* proc.store(V + PAGE_SIZE, 2);
      const child = yield* proc.fork('child'); // the parent's PTEs become read-only (COW)
      if (typeof child === 'number') throw new Error('fork');
      const m = mr(yield* nic.registerOdpMr(proc, V, 4 * PAGE_SIZE, ALL));
      out.access = [...m.mtt.access];
      out.wc = yield* qp.execute({ opcode: 'RDMA_WRITE', remote: { mr: m, addr: V }, data: [9] });
      out.childWord = yield* child.load(V);
      out.parentPfn = ptePfn(mm.core.pt.pte(proc.mm, V));
      yield* child.exit();
      yield* nic.deregisterMr(m);
      yield* proc.exit();
    });
    runOk(sim);
    expect(out.access).toEqual([MttAccess.READ, MttAccess.READ, 0, 0]);
    expect(out.wc!.status).toBe('SUCCESS');
    expect(out.wc!.faults).toBe(1);
    expect(nic.odpStats.busyRetries).toBe(1); // the COW break invalidated the MR itself
    expect(out.childWord).toBe(1); // the child keeps the old page
    const maps = ofType(sim, 'smmu.map').map((e) => [e.data.pfn, e.data.writable]);
    expect(maps).toContainEqual([out.parentPfn, true]);
  });

  it('the NIC checks rights and bounds before any fault; an error moves the QP to the error state, which flushes later requests until reset()', () => {
    const { sim, nic, proc, qp } = rdmaSim();
    const st: string[] = [];
    sim.spawn('app', 0, function* () {
      const V = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, ANON);
      const ro = mr(yield* nic.registerOdpMr(proc, V, 2 * PAGE_SIZE, IbAccess.REMOTE_READ));
      const rw = mr(yield* nic.registerOdpMr(proc, V + 2 * PAGE_SIZE, 2 * PAGE_SIZE, ALL));
      const q = (wc: WorkCompletion) => st.push(wc.status);
      q(yield* qp.execute({ opcode: 'RDMA_WRITE', remote: { mr: ro, addr: V }, data: [1] }));
      q(yield* qp.execute({ opcode: 'RDMA_READ', remote: { mr: ro, addr: V }, length: 4 }));
      qp.reset();
      q(yield* qp.execute({ opcode: 'RDMA_READ', remote: { mr: ro, addr: V }, length: 4 }));
      q(
        yield* qp.execute({
          opcode: 'RDMA_READ',
          remote: { mr: rw, addr: V + 2 * PAGE_SIZE },
          local: { mr: ro, addr: V }, // the destination needs LOCAL_WRITE
          length: 4,
        }),
      );
      qp.reset();
      q(
        yield* qp.execute({
          opcode: 'RDMA_WRITE',
          remote: { mr: rw, addr: V + 4 * PAGE_SIZE - 4 },
          data: [1, 2],
        }),
      ); // past the end of the MR
      qp.reset();
      q(
        yield* qp.execute({
          opcode: 'RDMA_WRITE',
          remote: { mr: rw, addr: V + 2 * PAGE_SIZE + 2 },
          data: [1],
        }),
      );
      yield* nic.deregisterMr(ro);
      yield* nic.deregisterMr(rw);
      yield* proc.exit();
    });
    runOk(sim);
    expect(st).toEqual([
      'REM_ACCESS_ERR',
      'WR_FLUSH_ERR',
      'SUCCESS',
      'LOC_PROT_ERR',
      'REM_ACCESS_ERR',
      'LOC_LEN_ERR',
    ]);
    expect(ofType(sim, 'rdma.pf.raise')).toHaveLength(1); // only the successful read faulted
  });

  it('an RDMA READ from a pinned MR into an ODP MR moves whole pages; one fault brings in the rest of the access on the ODP side', () => {
    const { sim, nic, proc, qp } = rdmaSim();
    const out: { wc?: WorkCompletion; words: number[] } = { words: [] };
    sim.spawn('app', 0, function* () {
      const src = yield* proc.mmap(0, 3 * PAGE_SIZE, RW, ANON);
      for (let p = 0; p < 3; p++) {
        yield* proc.store(src + p * PAGE_SIZE, 10 + p);
        yield* proc.store(src + p * PAGE_SIZE + 4092, 20 + p);
      }
      const dst = yield* proc.mmap(0, 3 * PAGE_SIZE, RW, ANON);
      const pin = mr(yield* nic.registerPinnedMr(proc, src, 3 * PAGE_SIZE, ALL));
      const odp = mr(yield* nic.registerOdpMr(proc, dst, 3 * PAGE_SIZE, ALL));
      out.wc = yield* qp.execute({
        opcode: 'RDMA_READ',
        remote: { mr: pin, addr: src },
        local: { mr: odp, addr: dst },
        length: 3 * PAGE_SIZE,
      });
      for (let p = 0; p < 3; p++) {
        out.words.push(yield* proc.load(dst + p * PAGE_SIZE));
        out.words.push(yield* proc.load(dst + p * PAGE_SIZE + 4092));
      }
      yield* nic.deregisterMr(odp);
      yield* nic.deregisterMr(pin);
      yield* proc.exit();
    });
    runOk(sim);
    expect(out.wc!.status).toBe('SUCCESS');
    expect(out.wc!.faults).toBe(1); // one fault asks for the three pages (odpFaultMaxPages 16)
    expect(out.words).toEqual([10, 20, 11, 21, 12, 22]);
  });

  it('process exit under a live ODP MR: the RELEASE invalidation zaps the MTT before any page is freed, later faults fail (no mm users), and deregistration still works', () => {
    const { sim, nic, proc, qp, mm } = rdmaSim();
    const out: { present?: number; wc?: WorkCompletion; dereg?: number; m?: OdpMr } = {};
    sim.spawn('app', 0, function* () {
      const V = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* proc.store(V, 1);
      yield* proc.store(V + PAGE_SIZE, 2);
      const m = mr(yield* nic.registerOdpMr(proc, V, 2 * PAGE_SIZE, ALL));
      out.m = m;
      yield* proc.exit(); // last user: exit_mmap → release → RELEASE invalidation
      out.present = m.mtt.present;
      out.wc = yield* qp.execute({ opcode: 'RDMA_READ', remote: { mr: m, addr: V }, length: 4 });
      out.dereg = yield* nic.deregisterMr(m);
    });
    runOk(sim);
    expect(out.present).toBe(0);
    const release = ofType(sim, 'rdma.odp.invalidate').find((e) => e.data.event === 'RELEASE')!;
    expect(release.data.unmapped).toBe(2);
    expect(out.wc!.status).toBe('REM_ACCESS_ERR');
    expect(ofType(sim, 'rdma.pf.resume').map((e) => e.data.result)).toEqual([-Errno.EINVAL]);
    expect(out.dereg).toBe(0);
    expect(proc.mm.freed).toBe(true); // the MR's mm reference was the last one
    expect(mm.core.mms.has(proc.mm.id)).toBe(false);
  });

  it('deregistration is refused for an MR that is not live', () => {
    const { sim, nic, proc } = rdmaSim();
    const r: number[] = [];
    sim.spawn('app', 0, function* () {
      const V = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      const m = mr(yield* nic.registerOdpMr(proc, V, PAGE_SIZE, ALL));
      r.push(yield* nic.deregisterMr(m), yield* nic.deregisterMr(m));
      yield* proc.exit();
    });
    runOk(sim);
    expect(r).toEqual([0, -Errno.EINVAL]);
  });
});

describe('pinned registration failures (ib_umem_get)', () => {
  it('ON_DEMAND is -EOPNOTSUPP, RLIMIT_MEMLOCK 0 is -EPERM, a hole in the range is -EFAULT — and nothing stays pinned or accounted', () => {
    const a = rdmaSim({ memlockLimitPages: 0 });
    const r: number[] = [];
    a.sim.spawn('app', 0, function* () {
      const V = yield* a.proc.mmap(0, PAGE_SIZE, RW, ANON);
      r.push((yield* a.nic.registerPinnedMr(a.proc, V, PAGE_SIZE, ALL)) as number);
    });
    runOk(a.sim);
    const b = rdmaSim();
    const vm: number[] = [];
    let pins = -1;
    b.sim.spawn('app', 0, function* () {
      const V = yield* b.proc.mmap(0, 4 * PAGE_SIZE, RW, ANON);
      yield* b.proc.munmap(V + 2 * PAGE_SIZE, PAGE_SIZE);
      r.push(
        (yield* b.nic.registerPinnedMr(b.proc, V, PAGE_SIZE, ALL | IbAccess.ON_DEMAND)) as number,
      );
      r.push((yield* b.nic.registerPinnedMr(b.proc, V, 4 * PAGE_SIZE, ALL)) as number);
      vm.push(b.rdma.pinnedVm(b.proc.mm));
      pins = b.mm.core.phys.pincount.reduce((s, x) => s + x, 0);
      yield* b.proc.exit();
    });
    runOk(b.sim);
    expect(r).toEqual([-Errno.EPERM, -Errno.EOPNOTSUPP, -Errno.EFAULT]);
    expect(vm).toEqual([0]);
    expect(pins).toBe(0);
  });
});

/**
 * A stand-in IOMMU for the extension point: DMA addresses are I/O virtual addresses from
 * 0x8000_0000, translated through its own table; an access through an unmapped IOVA faults.
 */
class TestIommu implements DmaAgent {
  readonly name = 'test-iommu';
  readonly table = new Map<number, number>();
  private next = 0x8000_0000;
  constructor(private readonly svc: MmService) {}
  handles(device: string): boolean {
    return device.startsWith('mlx5');
  }
  *mapPage(_device: string, pfn: number, _dir: DmaDirection): TaskGen<number> {
    yield* this.svc.core.kernel.scheduler.preempt(); // the IOMMU page-table update
    const iova = this.next;
    this.next += PAGE_SIZE;
    this.table.set(iova, pfn);
    return iova;
  }
  unmapPage(_device: string, dma: number): void {
    this.table.delete(dma);
  }
  read(_device: string, dma: number): number {
    const pfn = this.table.get(dma - (dma % PAGE_SIZE));
    return pfn === undefined ? DMA_FAULT : this.svc.core.phys.read(pfn, (dma % PAGE_SIZE) / 4);
  }
  write(_device: string, dma: number, value: number): boolean {
    const pfn = this.table.get(dma - (dma % PAGE_SIZE));
    if (pfn === undefined) return false;
    this.svc.core.phys.write(pfn, (dma % PAGE_SIZE) / 4, value);
    return true;
  }
}

describe('the DmaAgent extension point (mm) and DirectDma', () => {
  it('a contributed DmaAgent that handles the device is used instead of direct DMA, with no change to the rdma package: the MTT holds its IOVAs', () => {
    let iommu: TestIommu | null = null;
    const iommuPlugin: Plugin = {
      id: 'test-iommu',
      requires: ['mm'],
      module: new ContainerModule(({ bind }) => {
        bind(DmaAgentContribution)
          .toResolvedValue((svc: MmService) => (iommu = new TestIommu(svc)), [MmService])
          .inSingletonScope();
      }),
    };
    const sim = Simulation.create({
      seed: 1,
      cpus: 2,
      devices: ['nic0'],
      plugins: [mmPlugin({ totalFrames: 512 }), iommuPlugin, rdmaPlugin()],
    });
    const nic = sim.get(RdmaService).createDevice('mlx5_0', { engine: 'nic0' });
    const proc = sim.get(MmService).createProcess('app');
    const qp = nic.createQp();
    const out: { wc?: WorkCompletion; v?: number; dma: number[]; live?: number } = { dma: [] };
    sim.spawn('app', 0, function* () {
      const V = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      const m = mr(yield* nic.registerOdpMr(proc, V, 2 * PAGE_SIZE, ALL));
      out.wc = yield* qp.execute({
        opcode: 'RDMA_WRITE',
        remote: { mr: m, addr: V + PAGE_SIZE + 8 },
        data: [31],
      });
      out.v = yield* proc.load(V + PAGE_SIZE + 8);
      out.dma = [...m.mtt.dma];
      yield* nic.deregisterMr(m);
      out.live = iommu!.table.size;
      yield* proc.exit();
    });
    runOk(sim);
    expect(nic.agent).toBe(iommu);
    expect(out.wc!.status).toBe('SUCCESS');
    expect(out.v).toBe(31);
    expect(out.dma).toEqual([0, 0x8000_0000]);
    expect(out.live).toBe(0); // deregistration unmapped every page
  });

  it('DirectDma: the DMA address is the physical address; unmapping what was not mapped and accessing an unmapped address are reported as the DMA-API checks would', () => {
    const sim = Simulation.create({ seed: 1, plugins: [mmPlugin({ totalFrames: 64 })] });
    const core = sim.get(MmService).core;
    const dma = new DirectDma(core);
    const got: number[] = [];
    sim.spawn('drv', 0, function* () {
      const pfn = core.phys.alloc('kernel');
      const a = dma.mapPage('nic0', pfn, 'bidirectional');
      got.push(a, dma.mappedCount('nic0', pfn));
      dma.write('nic0', a + 8, 5);
      got.push(dma.read('nic0', a + 8), core.phys.read(pfn, 2));
      dma.unmapPage('nic0', a, 'bidirectional');
      got.push(dma.mappedCount('nic0', pfn));
      dma.unmapPage('nic0', a, 'bidirectional'); // not mapped any more
      got.push(dma.read('nic0', a + 8)); // through an unmapped address: reaches the frame
      got.push(dma.read('nic0', 1e12)); // outside physical memory
    });
    const r = sim.run();
    expect(got.slice(0, 5)).toEqual([got[0]!, 1, 5, 5, 0]);
    expect(got[0]! % PAGE_SIZE).toBe(0);
    expect(got[5]).toBe(5);
    expect(got[6]).toBe(DMA_FAULT);
    // Both in the same step (the task never yields), after which the run stops.
    expect(r.violations.map((v) => v.kind)).toEqual(['dma-api-bad-unmap', 'dma-unmapped-access']);
  });
});

describe('determinism', () => {
  it('the same seed and PCT give a byte-identical log with NIC traffic, faults and invalidations', () => {
    const hash = (seed: number): string => {
      const { sim, nic, proc, qp } = rdmaSim({ seed, strategy: { kind: 'pct', depth: 3 } });
      sim.spawn('app', 0, function* () {
        const V = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, ANON);
        const m = mr(yield* nic.registerOdpMr(proc, V, 4 * PAGE_SIZE, ALL));
        const t = sim.spawn('traffic', 1, function* (): TaskGen<void> {
          for (let p = 0; p < 4; p++)
            yield* qp.execute({
              opcode: 'RDMA_WRITE',
              remote: { mr: m, addr: V + p * PAGE_SIZE },
              data: [p],
            });
        });
        yield* proc.munmap(V + PAGE_SIZE, PAGE_SIZE);
        yield* sim.scheduler.join(t);
        yield* nic.deregisterMr(m);
        yield* proc.exit();
      });
      runOk(sim);
      return sim.finalHash();
    };
    expect(hash(7)).toBe(hash(7));
    expect(hash(7)).not.toBe(hash(8));
  });
});
