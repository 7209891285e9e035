// The DMA API on the IOMMU (drivers/iommu/dma-iommu.c, iova.c): IOVA translation for a device
// behind it, strict unmap (flush before the IOVA is reused) vs lazy (flush queue), the
// DmaAgent extension point, and bad input with the errno Linux returns: SVA bind of a device
// without PASID support or with too few PASIDs, unbinding twice, iommu_map of an unaligned or
// zero-length range (drivers/iommu/iommu.c: iommu_map, iommu-sva.c: iommu_sva_bind_device).
import { describe, expect, it } from '@jest/globals';
import { Errno, Simulation } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { iommuPlugin, IommuService, psiChunks } from '@mmnsim/hw-iommu';
import {
  DMA_FAULT,
  DMA_MAPPING_ERROR,
  DmaAgentContribution,
  dmaAgentFor,
  DirectDma,
  mmPlugin,
  MmService,
  PAGE_SIZE,
} from '@mmnsim/mm';
import { iommuSim, ofType, runOk } from './helpers.js';

function dmaSim(strict: boolean) {
  const sim = Simulation.create({
    seed: 1,
    cpus: 2,
    devices: ['dmar0', 'nic0'],
    plugins: [mmPlugin({ totalFrames: 128 }), iommuPlugin({ strict, fqSize: 2 })],
  });
  const iommu = sim.get(IommuService);
  iommu.attach('nic0', { ats: false });
  return { sim, iommu, core: sim.get(MmService).core };
}

describe('DMA API through the IOMMU', () => {
  it('options are validated naming the field; the engine must be a device context', () => {
    expect(() =>
      Simulation.create({ seed: 1, plugins: [mmPlugin(), iommuPlugin({ fqSize: 0 })] }),
    ).toThrow(/"fqSize"/);
    expect(() =>
      Simulation.create({
        seed: 1,
        plugins: [mmPlugin(), iommuPlugin({ flavour: 'amd' as never })],
      }),
    ).toThrow(/"flavour"/);
    const sim = Simulation.create({
      seed: 1,
      cpus: 1,
      plugins: [mmPlugin(), iommuPlugin({ engine: 'cpu0' })],
    });
    expect(() => sim.get(IommuService).attach('x')).toThrow(/not a device context/);
  });

  it('the agent is contributed to DmaAgentContribution and claims only attached devices', () => {
    const { sim, iommu, core } = dmaSim(true);
    const agents = sim.getAll(DmaAgentContribution);
    expect(dmaAgentFor(agents, 'nic0', new DirectDma(core))).toBe(iommu.agent);
    expect(dmaAgentFor(agents, 'other', new DirectDma(core)).name).toBe('direct');
  });

  it('strict: dma_map_page gives an IOVA (not the physical address); unmap flushes the IOTLB before the IOVA is freed and reused; DMA after unmap faults', () => {
    const { sim, iommu, core } = dmaSim(true);
    const agent = iommu.agent;
    sim.spawn('driver', 0, function* (): TaskGen<void> {
      const p = yield* core.allocFrame('anon');
      core.phys.write(p, 1, 99);
      const dma = agent.mapPage('nic0', p, 'bidirectional');
      expect(dma).not.toBe(p * PAGE_SIZE);
      const t = sim.spawn('nic', 'nic0', function* () {
        expect(agent.read('nic0', dma + 4)).toBe(99);
        expect(agent.write('nic0', dma + 8, 5)).toBe(true);
      });
      yield* sim.scheduler.join(t);
      expect(core.phys.read(p, 2)).toBe(5);
      yield* agent.unmapPage('nic0', dma, 'bidirectional');
      expect(agent.read('nic0', dma)).toBe(DMA_FAULT);
      const again = agent.mapPage('nic0', p, 'to-device');
      expect(again).toBe(dma); // the rcache hands the flushed IOVA out again
      expect(agent.write('nic0', again, 1)).toBe(false); // to-device: read-only
      expect(agent.mapPage('nic0', core.phys.total, 'bidirectional')).toBe(DMA_MAPPING_ERROR);
    });
    runOk(sim);
    const kinds = sim
      .log!.events.filter((e) =>
        ['iommu.unmap', 'iommu.qi.done', 'iommu.iova.free'].includes(e.type),
      )
      .map((e) => (e.type === 'iommu.qi.done' ? (e.data as { kind: string }).kind : e.type));
    expect(kinds).toEqual(['iommu.unmap', 'iotlb', 'wait', 'iommu.iova.free']);
  });

  it('lazy: unmapped IOVAs wait on the flush queue; a full queue is flushed domain-wide before the IOVAs go back; nothing is reused before', () => {
    const { sim, iommu, core } = dmaSim(false);
    const agent = iommu.agent;
    const seen: number[] = [];
    sim.spawn('driver', 0, function* (): TaskGen<void> {
      for (let i = 0; i < 5; i++) {
        const p = yield* core.allocFrame('anon');
        const dma = agent.mapPage('nic0', p, 'bidirectional');
        seen.push(dma);
        agent.read('nic0', dma);
        yield* agent.unmapPage('nic0', dma, 'bidirectional');
      }
      yield* iommu.flushQueue('nic0');
    });
    runOk(sim);
    const frees = ofType(sim, 'iommu.iova.free').map((e) => e.data);
    expect(frees.every((f) => f.lazy)).toBe(true);
    expect(frees.length).toBe(5);
    // fqSize 2: the first two IOVAs are distinct; the third unmap found the queue full and flushed it.
    expect(new Set(seen.slice(0, 3)).size).toBe(3);
    expect(
      ofType(sim, 'iommu.qi.submit')
        .filter((e) => e.data.kind === 'iotlb')
        .every((e) => e.data.pages === 0),
    ).toBe(true);
  });

  it('iommu_map: unaligned → -EINVAL, zero length → 0 and nothing mapped, overlap → -EEXIST; iommu_unmap of an unaligned range → 0 bytes', () => {
    const { sim, iommu } = dmaSim(true);
    sim.spawn('driver', 0, function* (): TaskGen<void> {
      expect(iommu.iommuMap('nic0', 0x100001, 0x2000, PAGE_SIZE)).toBe(-Errno.EINVAL);
      expect(iommu.iommuMap('nic0', 0x100000, 0x2001, PAGE_SIZE)).toBe(-Errno.EINVAL);
      expect(iommu.iommuMap('nic0', 0x100000, 0x2000, 100)).toBe(-Errno.EINVAL);
      expect(iommu.iommuMap('nic0', 0x100000, 0x2000, Number.NaN)).toBe(-Errno.EINVAL);
      expect(iommu.iommuMap('nic0', 0x100000, 0x2000, 0)).toBe(0);
      expect(iommu.agent.read('nic0', 0x100000)).toBe(DMA_FAULT);
      const core = sim.get(MmService).core;
      const p = yield* core.allocFrame('anon');
      const q = yield* core.allocFrame('anon');
      expect(iommu.iommuMap('nic0', 0x100000, p * PAGE_SIZE, PAGE_SIZE)).toBe(0);
      expect(iommu.iommuMap('nic0', 0x101000, q * PAGE_SIZE, PAGE_SIZE)).toBe(0);
      expect(iommu.iommuMap('nic0', 0x101000, p * PAGE_SIZE, PAGE_SIZE)).toBe(-Errno.EEXIST);
      expect(iommu.agent.read('nic0', 0x101000)).not.toBe(DMA_FAULT);
      expect(yield* iommu.iommuUnmap('nic0', 0x100800, PAGE_SIZE)).toBe(0);
      expect(yield* iommu.iommuUnmap('nic0', 0x100000, 0)).toBe(0);
      expect(yield* iommu.iommuUnmap('nic0', 0x100000, 2 * PAGE_SIZE)).toBe(2 * PAGE_SIZE);
      expect(iommu.agent.read('nic0', 0x101000)).toBe(DMA_FAULT);
      expect(iommu.iommuMap('ghost', 0, 0, PAGE_SIZE)).toBe(-Errno.ENODEV);
    });
    runOk(sim);
  });

  it('identity and blocked domains: identity passes physical addresses through, blocked faults everything', () => {
    const sim = Simulation.create({
      seed: 1,
      cpus: 1,
      devices: ['dmar0'],
      plugins: [mmPlugin({ totalFrames: 64 }), iommuPlugin()],
    });
    const iommu = sim.get(IommuService);
    iommu.attach('id0', { domain: 'identity' });
    iommu.attach('blk0', { domain: 'blocked' });
    const core = sim.get(MmService).core;
    sim.spawn('driver', 0, function* (): TaskGen<void> {
      const p = yield* core.allocFrame('anon');
      expect(iommu.agent.mapPage('id0', p, 'bidirectional')).toBe(p * PAGE_SIZE);
      expect(iommu.agent.write('id0', p * PAGE_SIZE, 3)).toBe(true);
      expect(iommu.agent.mapPage('blk0', p, 'bidirectional')).toBe(DMA_MAPPING_ERROR);
      expect(iommu.agent.read('blk0', p * PAGE_SIZE)).toBe(DMA_FAULT);
    });
    runOk(sim);
  });
});

describe('SVA bind/unbind errors (iommu_sva_bind_device)', () => {
  it('no PASID support → -ENOSPC (fresh mm) / -EOVERFLOW (mm with a PASID); a PASID beyond the device maximum → -EOVERFLOW; unbind twice → -EINVAL; the run goes on', () => {
    const { sim, iommu, proc, mm } = iommuSim();
    iommu.createDevice('nopasid', { engine: 'accel0', maxPasids: 0 });
    iommu.createDevice('small', { engine: 'accel0', maxPasids: 2 });
    iommu.createDevice('noats', { engine: 'accel0', ats: false });
    const p2 = mm.createProcess('p2');
    const p3 = mm.createProcess('p3');
    const results: number[] = [];
    sim.spawn('app', 0, function* (): TaskGen<void> {
      results.push(yield* iommu.bind('nopasid', proc.mm)); // fresh mm, no PASID capability
      results.push(yield* iommu.bind('accel0', proc.mm)); // PASID 1
      results.push(yield* iommu.bind('accel0', p2.mm)); // PASID 2
      results.push(yield* iommu.bind('small', p2.mm)); // 2 ≥ max_pasids 2
      results.push(yield* iommu.bind('nopasid', proc.mm)); // 1 ≥ 0
      results.push(yield* iommu.bind('small', proc.mm)); // PASID 1 < 2: fine
      results.push(yield* iommu.bind('noats', p3.mm)); // VT-d requires ATS for SVA
      results.push(yield* iommu.bind('ghost', p3.mm));
      results.push(yield* iommu.bind('accel0', proc.mm)); // same bond: another reference
      results.push(yield* iommu.unbind('accel0', proc.mm));
      results.push(yield* iommu.unbind('accel0', proc.mm));
      results.push(yield* iommu.unbind('accel0', proc.mm)); // twice
      results.push(yield* iommu.unbind('small', proc.mm));
      results.push(yield* iommu.unbind('accel0', p2.mm));
    });
    runOk(sim);
    expect(results).toEqual([
      -Errno.ENOSPC,
      1,
      2,
      -Errno.EOVERFLOW,
      -Errno.EOVERFLOW,
      1,
      -Errno.EINVAL,
      -Errno.ENODEV,
      1,
      0,
      0,
      -Errno.EINVAL,
      0,
      0,
    ]);
    expect(ofType(sim, 'iommu.sva.unbind').map((e) => e.data.device)).toEqual([
      'accel0',
      'small',
      'accel0',
    ]);
  });

  it('psiChunks covers a range with naturally aligned power-of-two chunks', () => {
    expect(psiChunks(PAGE_SIZE, 7 * PAGE_SIZE).map((c) => [c.addr / PAGE_SIZE, c.pages])).toEqual([
      [1, 1],
      [2, 2],
      [4, 2],
      [6, 1],
    ]);
    expect(psiChunks(0, 1024 * PAGE_SIZE).map((c) => c.pages)).toEqual([512, 512]);
  });
});
