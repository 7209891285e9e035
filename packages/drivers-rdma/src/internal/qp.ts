import { ConfigError, WaitQueue } from '@mmnsim/core';
import type { SchedOp, Task, TaskGen } from '@mmnsim/core';
import { DMA_FAULT, PAGE_SIZE } from '@mmnsim/mm';
import { IbAccess, MttAccess } from './constants.js';
import type { WcStatus } from './constants.js';
import type { RdmaDevice } from './device.js';
import type { MemoryRegion } from './mr.js';

/** A plain scheduling point, as `Scheduler.preempt` yields it. */
const PREEMPT: SchedOp = { kind: 'preempt' };

/** The operations of a work request (`IB_WR_RDMA_WRITE`, `IB_WR_RDMA_READ`). */
export type RdmaOpcode = 'RDMA_WRITE' | 'RDMA_READ';

/**
 * One side of a transfer: an address inside a memory region of the same device (`lkey`/`rkey` +
 * address; the model uses the MR object as its key).
 */
export interface RdmaSge {
  /** The memory region (its key). */
  readonly mr: MemoryRegion;
  /** The first byte, inside the MR (4-byte aligned). */
  readonly addr: number;
}

/**
 * A work request for {@link QueuePair.postSend} (`struct ib_rdma_wr`). The peer is the NIC
 * itself (loopback): `remote` is accessed with the remote rights of its MR (`rkey`), `local`
 * with the local ones (`lkey`).
 *
 * - `RDMA_WRITE` copies `length` bytes from `local` — or, without `local`, the words of `data`
 *   (as if they arrived from the wire) — into `remote`.
 * - `RDMA_READ` copies `length` bytes of `remote` into `local` — or, without `local`, into the
 *   completion's `data`.
 *
 * Memory moves in 32-bit words, so addresses and `length` are multiples of 4. `length` defaults
 * to `data.length * 4`.
 *
 * ## Example
 * ```ts
 * qp.postSend({ opcode: 'RDMA_WRITE', remote: { mr, addr: buf + 8192 }, data: [1, 2, 3] });
 * qp.postSend({ opcode: 'RDMA_READ', remote: { mr, addr: buf }, length: 16 });
 * ```
 *
 * @see struct ib_rdma_wr
 */
export interface RdmaWorkRequest {
  /** What to do. */
  readonly opcode: RdmaOpcode;
  /** The target (`rkey`, `remote_addr`). */
  readonly remote: RdmaSge;
  /** The local scatter/gather element (`lkey`, address). */
  readonly local?: RdmaSge;
  /** Bytes to move (default `data.length * 4`). */
  readonly length?: number;
  /** The payload of an `RDMA_WRITE` without `local`, one 32-bit word per element. */
  readonly data?: ArrayLike<number>;
}

/**
 * A work completion (`struct ib_wc`).
 *
 * @see struct ib_wc
 */
export interface WorkCompletion {
  /** The id {@link QueuePair.postSend} returned (`wr_id`). */
  readonly wrId: number;
  /** The request's opcode. */
  readonly opcode: RdmaOpcode;
  /** How it ended. */
  readonly status: WcStatus;
  /** For an `RDMA_READ` without `local`: the words read (null otherwise or on error). */
  readonly data: number[] | null;
  /** Page faults the NIC raised while executing it. */
  readonly faults: number;
}

/** A posted work request. */
interface Posted {
  readonly id: number;
  readonly wr: RdmaWorkRequest;
  readonly length: number;
}

/**
 * A device page fault in flight: what the NIC reports in the page-fault event queue entry, and
 * the handler's verdict (`mlx5_ib_page_fault_resume`).
 */
export interface PageFaultRecord {
  /** The stalled queue pair. */
  readonly qp: QueuePair;
  /** The MR (key) that missed. */
  readonly mr: MemoryRegion;
  /** The faulting address. */
  readonly va: number;
  /** Bytes the NIC needs from `va`. */
  readonly bytes: number;
  /** True if the access was a write. */
  readonly write: boolean;
  /** Set by the handler: 0, or the negated errno of the failed fault. */
  result: number | null;
}

/**
 * A reliable-connected queue pair in RTS, looped back to its own NIC: a send queue the
 * application posts work requests to, a completion queue it polls, and a DMA engine — a daemon
 * task on the device's engine context — that executes the requests in order.
 *
 * The engine works page by page: for each page-sized piece of the transfer it translates both
 * sides through their MTTs and moves the words in one atomic step, then reaches a scheduling
 * point (where the kernel's invalidations, UMRs and the other engines interleave). A missing or
 * read-only translation of an ODP MR raises a page fault: the queue pair stalls until the
 * driver's fault handler resumes it, then translates again. A failed request completes with an
 * error and moves the queue pair to the error state, in which later requests are flushed
 * (`WR_FLUSH_ERR`) until {@link QueuePair.reset}.
 *
 * ## Example
 * ```ts
 * const qp = nic.createQp();
 * const wc = yield* qp.execute({ opcode: 'RDMA_READ', remote: { mr, addr: buf }, length: 8 });
 * // wc.status === 'SUCCESS', wc.data: the two words
 * ```
 *
 * @see ib_post_send
 * @see ib_poll_cq
 */
export class QueuePair {
  /** `'rts'` (ready to send) or `'error'`. */
  state: 'rts' | 'error' = 'rts';
  /** The DMA engine task. */
  readonly task: Task;
  private readonly sq: Posted[] = [];
  private sqHead = 0;
  /** Completions in order; a slot is null once {@link QueuePair.waitFor} took it. */
  private readonly cq: (WorkCompletion | null)[] = [];
  private cqHead = 0;
  /** Request ids a task sleeps in {@link QueuePair.waitFor} for. */
  private readonly waited = new Set<number>();
  private nextWr = 1;
  private readonly sqWork: WaitQueue;
  private readonly cqWait: WaitQueue;
  /** @internal The queue pair sleeps here while a page fault is handled. */
  readonly resume: WaitQueue;

  /**
   * Created by {@link RdmaDevice.createQp}.
   * @param device the NIC.
   * @param qpn the queue pair number.
   */
  constructor(
    readonly device: RdmaDevice,
    readonly qpn: number,
  ) {
    const sched = device.env.kernel.scheduler;
    this.sqWork = new WaitQueue(sched, `${device.name} qp${qpn} send queue`);
    this.cqWait = new WaitQueue(sched, `${device.name} qp${qpn} completion queue`);
    this.resume = new WaitQueue(sched, `${device.name} qp${qpn} page-fault resume`);
    this.task = sched.spawn(`${device.name}-qp${qpn}`, device.engine, () => this.engine(), {
      daemon: true,
    });
  }

  /** Work requests posted and not completed yet. */
  get outstanding(): number {
    return this.sq.length - this.sqHead;
  }

  /**
   * `ib_post_send`: queues `wr` and rings the doorbell; returns its id. Never sleeps. A request
   * that cannot be described (no payload for an `RDMA_WRITE` without `local`, no length) is a
   * programming error and throws.
   *
   * @throws ConfigError when the request is malformed.
   */
  postSend(wr: RdmaWorkRequest): number {
    const length = wr.length ?? (wr.data !== undefined ? wr.data.length * 4 : -1);
    if (!Number.isSafeInteger(length) || length < 0)
      throw new ConfigError(`postSend on ${this.name}: the work request needs a length or data`);
    if (wr.opcode === 'RDMA_WRITE' && wr.local === undefined && wr.data === undefined)
      throw new ConfigError(`postSend on ${this.name}: an RDMA_WRITE needs local or data`);
    const id = this.nextWr++;
    this.sq.push({ id, wr, length });
    const bus = this.device.env.kernel.bus;
    if (bus.wants('rdma.wr.post'))
      bus.emit('rdma.wr.post', {
        dev: this.device.name,
        qp: this.qpn,
        wr: id,
        opcode: wr.opcode,
        length,
      });
    this.sqWork.wakeAll();
    return id;
  }

  /** `ib_poll_cq` for one completion: the oldest one not consumed yet, or undefined. */
  pollCq(): WorkCompletion | undefined {
    const cq = this.cq;
    while (this.cqHead < cq.length) {
      const wc = cq[this.cqHead++]!;
      if (wc !== null) {
        this.compactCq();
        return wc;
      }
    }
    this.compactCq();
    return undefined;
  }

  /**
   * Sleeps until the completion of request `wrId` is there, takes it out of the completion
   * queue and returns it (the other completions stay for {@link QueuePair.pollCq}).
   */
  *waitFor(wrId: number): TaskGen<WorkCompletion> {
    this.device.env.kernel.mightSleep('ib_poll_cq (waiting)');
    for (;;) {
      const cq = this.cq;
      for (let i = cq.length - 1; i >= this.cqHead; i--) {
        const wc = cq[i];
        if (wc !== null && wc !== undefined && wc.wrId === wrId) {
          cq[i] = null;
          return wc;
        }
      }
      this.waited.add(wrId);
      yield* this.cqWait.wait();
    }
  }

  private compactCq(): void {
    if (this.cqHead > 1024 && this.cqHead * 2 > this.cq.length) {
      this.cq.splice(0, this.cqHead);
      this.cqHead = 0;
    }
  }

  /** Posts `wr` and sleeps until it completed: {@link QueuePair.postSend} + {@link QueuePair.waitFor}. */
  *execute(wr: RdmaWorkRequest): TaskGen<WorkCompletion> {
    return yield* this.waitFor(this.postSend(wr));
  }

  /** Modifies the queue pair from the error state back to RTS (RESET → INIT → RTR → RTS). */
  reset(): void {
    this.state = 'rts';
  }

  private get name(): string {
    return `${this.device.name} qp${this.qpn}`;
  }

  private complete(wc: WorkCompletion): void {
    this.cq.push(wc);
    const bus = this.device.env.kernel.bus;
    if (bus.wants('rdma.wr.complete'))
      bus.emit('rdma.wr.complete', {
        dev: this.device.name,
        qp: this.qpn,
        wr: wc.wrId,
        status: wc.status,
      });
    if (this.waited.delete(wc.wrId)) this.cqWait.wakeAll();
  }

  /** The DMA engine: executes posted requests in order, forever (a daemon). */
  private *engine(): TaskGen<void> {
    for (;;) {
      while (this.sqHead >= this.sq.length) yield* this.sqWork.wait();
      const p = this.sq[this.sqHead++]!;
      if (this.sqHead > 64 && this.sqHead * 2 > this.sq.length) {
        this.sq.splice(0, this.sqHead);
        this.sqHead = 0;
      }
      const wc: WorkCompletion =
        this.state === 'error'
          ? { wrId: p.id, opcode: p.wr.opcode, status: 'WR_FLUSH_ERR', data: null, faults: 0 }
          : yield* this.run(p);
      if (wc.status !== 'SUCCESS' && wc.status !== 'WR_FLUSH_ERR') this.state = 'error';
      this.complete(wc);
    }
  }

  /** Executes one request: checks, then the per-page loop. */
  private *run(p: Posted): TaskGen<WorkCompletion> {
    const dev = this.device;
    const { wr, length, id } = p;
    const { remote, local } = wr;
    const isWrite = wr.opcode === 'RDMA_WRITE';
    const op = wr.opcode;
    if (
      length % 4 !== 0 ||
      remote.addr % 4 !== 0 ||
      (local !== undefined && local.addr % 4 !== 0) ||
      (isWrite && local === undefined && wr.data!.length * 4 < length)
    )
      return done(id, op, 'LOC_LEN_ERR', 0);
    if (
      !this.usable(
        remote.mr,
        remote.addr,
        length,
        isWrite ? IbAccess.REMOTE_WRITE : IbAccess.REMOTE_READ,
      )
    )
      return done(id, op, 'REM_ACCESS_ERR', 0);
    if (
      local !== undefined &&
      !this.usable(local.mr, local.addr, length, isWrite ? 0 : IbAccess.LOCAL_WRITE)
    )
      return done(id, op, 'LOC_PROT_ERR', 0);

    const agent = dev.agent;
    const name = dev.name;
    const { maxFaultsPerPage, odpFaultMaxPages } = dev.env.options;
    const data = wr.data;
    const out = !isWrite && local === undefined ? new Array<number>(length >>> 2).fill(0) : null;
    let faults = 0;
    for (let off = 0; off < length;) {
      const ra = remote.addr + off;
      const la = local !== undefined ? local.addr + off : 0;
      let chunk = Math.min(length - off, PAGE_SIZE - (ra % PAGE_SIZE));
      if (local !== undefined) chunk = Math.min(chunk, PAGE_SIZE - (la % PAGE_SIZE));
      let rdma: number;
      let ldma: number;
      for (let tries = 0; ; tries++) {
        if (remote.mr.state !== 'live') return done(id, op, 'REM_ACCESS_ERR', faults);
        if (local !== undefined && local.mr.state !== 'live')
          return done(id, op, 'LOC_PROT_ERR', faults);
        rdma = translate(remote.mr, ra, isWrite);
        ldma = local !== undefined ? translate(local.mr, la, !isWrite) : 0;
        if (rdma >= 0 && ldma >= 0) break;
        if (tries >= maxFaultsPerPage) return done(id, op, 'RETRY_EXC_ERR', faults);
        const onRemote = rdma < 0;
        const side = onRemote ? remote : local!;
        const va = onRemote ? ra : la;
        const status: WcStatus = onRemote ? 'REM_ACCESS_ERR' : 'LOC_PROT_ERR';
        if (side.mr.kind !== 'odp') return done(id, op, status, faults);
        faults++;
        const bytes = Math.min(length - off, odpFaultMaxPages * PAGE_SIZE - (va % PAGE_SIZE));
        const r = yield* this.pageFault(side.mr, va, bytes, onRemote ? isWrite : !isWrite);
        if (r !== 0) return done(id, op, status, faults);
      }
      // The translation above and this access are one atomic step of the device.
      this.accessed(remote.mr, ra, isWrite);
      if (local !== undefined) this.accessed(local.mr, la, !isWrite);
      const words = chunk >>> 2;
      const o = off >>> 2;
      if (isWrite) {
        for (let w = 0; w < words; w++) {
          const v = local !== undefined ? agent.read(name, ldma + 4 * w) : data![o + w]! >>> 0;
          if (v === DMA_FAULT || !agent.write(name, rdma + 4 * w, v))
            return done(id, op, 'GENERAL_ERR', faults);
        }
      } else {
        for (let w = 0; w < words; w++) {
          const v = agent.read(name, rdma + 4 * w);
          if (v === DMA_FAULT) return done(id, op, 'GENERAL_ERR', faults);
          if (out !== null) out[o + w] = v;
          else if (!agent.write(name, ldma + 4 * w, v)) return done(id, op, 'GENERAL_ERR', faults);
        }
      }
      off += chunk;
      // The next page: others may run between two DMA bursts (`Scheduler.preempt`, yielded
      // directly: this is the hot path, and a generator per page costs).
      yield PREEMPT;
    }
    return done(id, op, 'SUCCESS', faults, out);
  }

  /** The mkey checks: live MR of this device, the whole range inside it, the rights. */
  private usable(mr: MemoryRegion, addr: number, length: number, right: number): boolean {
    return (
      mr.device === this.device &&
      mr.state === 'live' &&
      addr >= mr.addr &&
      addr + length <= mr.addr + mr.length &&
      (mr.access & right) === right
    );
  }

  /** Reports a device access through the MTT entry of `va` (`smmu.access`). */
  private accessed(mr: MemoryRegion, va: number, write: boolean): void {
    const idx = mr.index(va);
    const mtt = mr.mtt;
    const ev = mr.kind === 'odp' ? this.device.events : this.device.pinnedEvents;
    ev.access(mr.mm, mr.start + idx * PAGE_SIZE, mtt.pfn[idx]!, mtt.gen[idx]!, write);
  }

  /**
   * Raises a page fault (an event-queue entry for the driver) and stalls until the handler
   * resumes the queue pair; returns the handler's verdict.
   */
  private *pageFault(mr: MemoryRegion, va: number, bytes: number, write: boolean): TaskGen<number> {
    const dev = this.device;
    const pf: PageFaultRecord = { qp: this, mr, va, bytes, write, result: null };
    const bus = dev.env.kernel.bus;
    if (bus.wants('rdma.pf.raise'))
      bus.emit('rdma.pf.raise', { dev: dev.name, qp: this.qpn, mr: mr.key, va, bytes, write });
    dev.raiseFault(pf);
    yield* this.resume.waitEvent(() => pf.result !== null);
    return pf.result!;
  }
}

/** Builds a work completion. */
function done(
  wrId: number,
  opcode: RdmaOpcode,
  status: WcStatus,
  faults: number,
  data: number[] | null = null,
): WorkCompletion {
  return { wrId, opcode, status, data, faults };
}

/**
 * The NIC's MTT lookup: the DMA address of `va` in `mr`, or -1 if the entry has no translation
 * (or only a read-only one, for a write).
 */
export function translate(mr: MemoryRegion, va: number, write: boolean): number {
  const idx = mr.index(va);
  const mtt = mr.mtt;
  const a = mtt.access[idx]!;
  if (a === 0 || (write && (a & MttAccess.WRITE) === 0)) return -1;
  return mtt.dma[idx]! + (va % PAGE_SIZE);
}
