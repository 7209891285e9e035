// The IOMMU SVA scenarios: 28 (SVA unmap with ATS), 30 (SVA page request, with its variants:
// outside any VMA, write to a read-only VMA, no PASID, stop marker, non-last request of a group)
// and 31 (release on exit with the device still bound), asserting the order of events
// drivers/iommu/intel/svm.c, drivers/iommu/intel/prq.c and drivers/iommu/iommu-sva.c give.
import { describe, expect, it } from '@jest/globals';
import type { TaskGen } from '@mmnsim/core';
import { DMA_FAULT, Map_, PAGE_SIZE, Prot, ptePfn } from '@mmnsim/mm';
import { iommuSim, ofType, runOk, trace } from './helpers.js';

const RW = Prot.READ | Prot.WRITE;
const ANON = Map_.PRIVATE | Map_.ANONYMOUS | Map_.FIXED;
const VA = 0x40000000;

describe('scenario 28: SVA unmap with ATS', () => {
  it('PTE cleared → CPU flush → IOTLB invalidation of the PASID range → device-TLB invalidation (completion waited) → page freed', () => {
    const { sim, iommu, dev, proc, mm } = iommuSim();
    let pfn = -1;
    let pasid = -1;
    sim.spawn('app', 0, function* (): TaskGen<void> {
      yield* proc.mmap(VA, PAGE_SIZE, RW, ANON);
      yield* proc.store(VA, 1234);
      pfn = ptePfn(mm.core.pt.pte(proc.mm, VA));
      pasid = yield* iommu.bind('accel0', proc.mm);
      const t = sim.spawn('accel', 'accel0', function* () {
        expect(yield* dev.dma(pasid, VA, false)).toBe(1234);
      });
      yield* sim.scheduler.join(t);
      expect(dev.atc!.peek(0 * 2 ** 21 + pasid + 1, VA / PAGE_SIZE)?.pfn).toBe(pfn);
      expect(yield* proc.munmap(VA, PAGE_SIZE)).toBe(0);
      yield* iommu.unbind('accel0', proc.mm);
    });
    runOk(sim);
    const t = trace(sim, (x) =>
      ['mm.pte.set', 'mm.tlb.flush', 'iommu.qi.done', 'mm.frame.free', 'iommu.atc.inv'].includes(x),
    );
    const clear = t.find(
      (e) =>
        e.type === 'mm.pte.set' &&
        (e.data as { va: number; pte: number }).va === VA &&
        (e.data as { pte: number }).pte === 0,
    )!;
    const after = t.filter((e) => e.seq > clear.seq);
    const flush = after.find((e) => e.type === 'mm.tlb.flush')!;
    const io = after.find(
      (e) => e.type === 'iommu.qi.done' && (e.data as { kind: string }).kind === 'piotlb',
    )!;
    const atcInv = after.find((e) => e.type === 'iommu.atc.inv')!;
    const devtlb = after.find(
      (e) => e.type === 'iommu.qi.done' && (e.data as { kind: string }).kind === 'devtlb',
    )!;
    const wait = after.find(
      (e) =>
        e.type === 'iommu.qi.done' &&
        (e.data as { kind: string }).kind === 'wait' &&
        e.seq > devtlb.seq,
    )!;
    const free = after.find(
      (e) => e.type === 'mm.frame.free' && (e.data as { pfn: number }).pfn === pfn,
    )!;
    expect(clear.seq).toBeLessThan(flush.seq);
    expect(flush.seq).toBeLessThan(io.seq);
    expect(io.seq).toBeLessThan(atcInv.seq);
    expect(atcInv.seq).toBeLessThan(devtlb.seq);
    expect(devtlb.seq).toBeLessThan(wait.seq);
    expect(wait.seq).toBeLessThan(free.seq);
    expect(io.data as { pasid: number; addr: number; pages: number }).toMatchObject({
      pasid,
      addr: VA,
      pages: 1,
    });
    expect(dev.atc!.size).toBe(0);
  });

  it('a range is flushed in naturally aligned power-of-two chunks, IOTLB before device TLB for each; (0, TASK_SIZE) is one PASID-wide flush', () => {
    const { sim, iommu, dev, proc } = iommuSim();
    sim.spawn('app', 0, function* (): TaskGen<void> {
      yield* proc.mmap(VA, 8 * PAGE_SIZE, RW, ANON);
      for (let i = 0; i < 8; i++) yield* proc.store(VA + i * PAGE_SIZE, i);
      const pasid = yield* iommu.bind('accel0', proc.mm);
      const t = sim.spawn('accel', 'accel0', function* () {
        yield* dev.dma(pasid, VA + PAGE_SIZE, false);
      });
      yield* sim.scheduler.join(t);
      // pages 1..6: chunks [1], [2,3], [4,5], [6]
      yield* proc.munmap(VA + PAGE_SIZE, 6 * PAGE_SIZE);
      yield* iommu.unbind('accel0', proc.mm);
    });
    runOk(sim);
    const sub = ofType(sim, 'iommu.qi.submit').map((e) => e.data);
    const firstFlush = sub.findIndex((d) => d.kind === 'piotlb' && d.pages > 0);
    const seq = sub
      .slice(firstFlush, firstFlush + 9)
      .map((d) => `${d.kind}:${(d.addr - VA) / PAGE_SIZE}+${d.pages}`);
    expect(seq).toEqual([
      'piotlb:1+1',
      'devtlb:1+1',
      'piotlb:2+2',
      'devtlb:2+2',
      'piotlb:4+2',
      'devtlb:4+2',
      'piotlb:6+1',
      'devtlb:6+1',
      'wait:-262144+0',
    ]);
  });
});

describe('scenario 30: SVA page request', () => {
  it('a read of a page not populated → page request (R, last in group) → handle_mm_fault populates → SUCCESS → the device retries and reads', () => {
    const { sim, iommu, dev, proc } = iommuSim();
    sim.spawn('app', 0, function* (): TaskGen<void> {
      yield* proc.mmap(VA, PAGE_SIZE, RW, ANON);
      const pasid = yield* iommu.bind('accel0', proc.mm);
      const t = sim.spawn('accel', 'accel0', function* () {
        expect(yield* dev.dma(pasid, VA, true, 77)).toBe(0);
        expect(yield* dev.dma(pasid, VA, false)).toBe(77);
      });
      yield* sim.scheduler.join(t);
      expect(yield* proc.load(VA)).toBe(77);
      yield* iommu.unbind('accel0', proc.mm);
    });
    runOk(sim);
    const t = trace(sim, (x) =>
      [
        'iommu.prq.request',
        'mm.fault',
        'iommu.page_response',
        'iommu.atc.fill',
        'iommu.dma',
      ].includes(x),
    );
    const kinds = t.map((e) => e.type);
    const req = kinds.indexOf('iommu.prq.request');
    expect(t[req]!.data).toMatchObject({ perm: 'w', last: true, queued: true });
    expect(kinds.slice(req, req + 5)).toEqual([
      'iommu.prq.request',
      'mm.fault',
      'iommu.page_response',
      'iommu.atc.fill',
      'iommu.dma',
    ]);
    expect(t[req + 2]!.data).toMatchObject({ code: 'success' });
    expect(t[req + 4]!.data).toMatchObject({ via: 'atc', write: true });
    expect(dev.stats.pageRequests).toBe(1);
  });

  it('variants: outside any VMA → INVALID; write to a read-only VMA → INVALID; no PASID → INVALID; stop marker → no response; a non-last request → no response until the last', () => {
    const { sim, iommu, dev, proc } = iommuSim();
    const got: (string | null)[] = [];
    sim.spawn('app', 0, function* (): TaskGen<void> {
      yield* proc.mmap(VA, PAGE_SIZE, Prot.READ, ANON);
      yield* proc.mmap(VA + 4 * PAGE_SIZE, 2 * PAGE_SIZE, RW, ANON);
      const pasid = yield* iommu.bind('accel0', proc.mm);
      const t = sim.spawn('accel', 'accel0', function* () {
        got.push(
          yield* dev.sendPageRequests(pasid, [{ va: VA + 64 * PAGE_SIZE, read: true, last: true }]),
        );
        got.push(yield* dev.sendPageRequests(pasid, [{ va: VA, write: true, last: true }]));
        got.push(yield* dev.sendPageRequests(-1, [{ va: VA, read: true, last: true }]));
        got.push(yield* dev.sendPageRequests(pasid, [{ va: VA, last: true }]));
        got.push(
          yield* dev.sendPageRequests(pasid, [{ va: VA + 4 * PAGE_SIZE, read: true, last: false }]),
        );
        got.push(
          yield* dev.sendPageRequests(pasid, [
            { va: VA + 4 * PAGE_SIZE, read: true, last: false },
            { va: VA + 5 * PAGE_SIZE, write: true, last: true },
          ]),
        );
        expect(yield* dev.dma(pasid, VA + 64 * PAGE_SIZE, false)).toBe(DMA_FAULT);
      });
      yield* sim.scheduler.join(t);
      yield* iommu.unbind('accel0', proc.mm);
    });
    runOk(sim);
    expect(got).toEqual(['invalid', 'invalid', 'invalid', null, null, 'success']);
    const deq = ofType(sim, 'iommu.prq.dequeue').map((e) => e.data.action);
    expect(deq.slice(0, 7)).toEqual([
      'fault',
      'fault',
      'invalid',
      'stop-marker',
      'partial',
      'partial',
      'fault',
    ]);
    const resp = ofType(sim, 'iommu.page_response').map((e) => e.data);
    // Exactly one response per answered group: the non-last request and the stop marker got none.
    expect(resp.slice(0, 4).map((r) => r.code)).toEqual([
      'invalid',
      'invalid',
      'invalid',
      'success',
    ]);
    const grp = ofType(sim, 'iommu.iopf.queue').map((e) => e.data.faults);
    expect(grp.slice(0, 3)).toEqual([1, 1, 2]);
  });
});

describe('scenario 31: SVA release on exit with the device still bound', () => {
  it.each(['vt-d', 'smmuv3'] as const)(
    '%s: release tears down the PASID entry (clear / quiet CD) and flushes IOTLB + ATC before the page tables are freed; later DMA faults',
    (flavour) => {
      const { sim, iommu, dev, proc } = iommuSim({ flavour });
      let pasid = -1;
      sim.spawn('app', 0, function* (): TaskGen<void> {
        yield* proc.mmap(VA, PAGE_SIZE, RW, ANON);
        yield* proc.store(VA, 5);
        pasid = yield* iommu.bind('accel0', proc.mm);
        const t = sim.spawn('accel', 'accel0', function* () {
          expect(yield* dev.dma(pasid, VA, false)).toBe(5);
        });
        yield* sim.scheduler.join(t);
        yield* proc.exit();
        const t2 = sim.spawn('accel2', 'accel0', function* () {
          expect(yield* dev.dma(pasid, VA, false)).toBe(DMA_FAULT);
        });
        yield* sim.scheduler.join(t2);
        expect(yield* iommu.unbind('accel0', proc.mm)).toBe(0);
      });
      runOk(sim);
      const t = trace(sim, (x) =>
        [
          'iommu.pasid.teardown',
          'iommu.qi.done',
          'iommu.sva.release',
          'mm.pt.unlink',
          'mm.exit',
          'iommu.dma',
        ].includes(x),
      );
      const td = t.findIndex((e) => e.type === 'iommu.pasid.teardown');
      expect(t[td]!.data).toMatchObject({ pasid, how: flavour === 'vt-d' ? 'clear' : 'quiet' });
      const rel = t.findIndex((e) => e.type === 'iommu.sva.release');
      const unlink = t.findIndex((e) => e.type === 'mm.pt.unlink');
      const done = t.slice(td, rel).map((e) => (e.data as { kind?: string }).kind);
      expect(done).toEqual(expect.arrayContaining(['pasid-cache', 'piotlb', 'devtlb', 'wait']));
      expect(rel).toBeLessThan(unlink);
      const last = t.filter((e) => e.type === 'iommu.dma').pop()!;
      expect(last.data).toMatchObject({ via: 'fault', pasid });
      expect(dev.atc!.size).toBe(0);
      expect(iommu.unit.iotlb.size).toBe(0);
    },
  );
});
