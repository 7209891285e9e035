import { Simulation } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { Map_, mmPlugin, MmService, PAGE_SIZE, Prot } from '@mmnsim/mm';
import { IbAccess, rdmaPlugin, RdmaService } from '@mmnsim/drivers-rdma';
import type { RdmaWorkRequest } from '@mmnsim/drivers-rdma';
import type { Metric } from './metric.js';

const ACCESS = IbAccess.LOCAL_WRITE | IbAccess.REMOTE_WRITE | IbAccess.REMOTE_READ;
/** Work requests posted before the poster waits for the last one. */
const BATCH = 4096;

/**
 * One simulation (log off, lockdep on): a process maps `pages` anonymous pages (touched first
 * when `touched`), registers them as one ODP MR — the SNAPSHOT pass maps the touched ones into
 * the MTT — and posts `wrs` 4-byte RDMA WRITEs, one per page in turn, in batches of 4096. Returns
 * the wall-clock milliseconds from the first post to the last completion of each of `rounds`
 * rounds, timed from inside the posting task.
 */
function odpTraffic(pages: number, touched: boolean, wrs: number, rounds: number): number[] {
  const sim = Simulation.create({
    seed: 1,
    cpus: 2,
    devices: ['nic0'],
    log: false,
    lockdep: true,
    maxSteps: 1_000_000_000,
    plugins: [mmPlugin({ totalFrames: pages + 1024 }), rdmaPlugin()],
  });
  const proc = sim.get(MmService).createProcess('bench');
  const nic = sim.get(RdmaService).createDevice('mlx5_0', { engine: 'nic0' });
  const qp = nic.createQp();
  const times: number[] = [];
  sim.spawn('bench', 0, function* (): TaskGen<void> {
    const len = pages * PAGE_SIZE;
    const a = yield* proc.mmap(0, len, Prot.READ | Prot.WRITE, Map_.PRIVATE | Map_.ANONYMOUS);
    if (touched) for (let i = 0; i < pages; i++) yield* proc.store(a + i * PAGE_SIZE, i);
    const mr = yield* nic.registerOdpMr(proc, a, len, ACCESS);
    if (typeof mr === 'number') throw new Error(`registerOdpMr failed: ${mr}`);
    const reqs: RdmaWorkRequest[] = [];
    for (let i = 0; i < pages; i++) {
      reqs.push({ opcode: 'RDMA_WRITE', remote: { mr, addr: a + i * PAGE_SIZE + 8 }, data: [i] });
    }
    for (let round = 0; round < rounds; round++) {
      const t0 = performance.now();
      for (let done = 0; done < wrs;) {
        const n = Math.min(BATCH, wrs - done);
        let last = 0;
        for (let j = 0; j < n; j++) last = qp.postSend(reqs[(done + j) % pages]!);
        const wc = yield* qp.waitFor(last);
        if (wc.status !== 'SUCCESS') throw new Error(`RDMA WRITE failed: ${wc.status}`);
        while (qp.pollCq() !== undefined);
        done += n;
      }
      times.push(performance.now() - t0);
    }
  });
  const r = sim.run();
  if (r.reason !== 'done' || r.violations.length > 0)
    throw new Error(
      `rdma bench ended with ${r.reason} ${r.violations.map((v) => v.kind).join(' ')}`,
    );
  return times;
}

/**
 * `rdma.dma_page_per_s`: pages the NIC's DMA engine moves per second on the MTT hit path — 4-byte
 * RDMA WRITEs, one page each, to a 256-page ODP MR whose pages are all in the MTT (no fault):
 * per page the send-queue pop, the mkey checks, the MTT lookup, one word written through the DMA
 * agent (direct, with its DMA-API bookkeeping), the completion, and the engine's scheduling
 * point. Best of five rounds of 200,000 after a warm-up round, in one simulation.
 */
function dmaPageRate(): Metric {
  const wrs = 200_000;
  const times = odpTraffic(256, true, wrs, 6);
  const best = Math.min(...times.slice(1));
  return { name: 'rdma.dma_page_per_s', value: Math.round(wrs / (best / 1000)), unit: 'pages/s' };
}

/**
 * `rdma.odp_fault_per_s`: ODP device page faults served per second — 4-byte RDMA WRITEs to each
 * page of a fresh, untouched 4,096-page ODP MR: per page the NIC's fault, the kworker's
 * `mmu_interval_read_begin`, `hmm_range_fault` with a write fault (a zeroed page), `umem_mutex`,
 * `read_retry`, the DMA mapping, the MTT update UMR and its completion, the resume and the
 * retried DMA. Best of three fresh simulations after a warm-up one.
 */
function odpFaultRate(): Metric {
  const pages = 4096;
  let best = Infinity;
  for (let i = 0; i < 4; i++) {
    const t = odpTraffic(pages, false, pages, 1)[0]!;
    if (i > 0) best = Math.min(best, t);
  }
  return {
    name: 'rdma.odp_fault_per_s',
    value: Math.round(pages / (best / 1000)),
    unit: 'faults/s',
  };
}

/** The RDMA figures: DMA pages per second on the MTT hit path, and ODP faults per second. */
export function benchRdma(): Metric[] {
  return [dmaPageRate(), odpFaultRate()];
}
