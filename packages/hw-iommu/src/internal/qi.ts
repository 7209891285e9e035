/**
 * The invalidation queue (VT-d "QI"; the SMMUv3 command queue plays the same part) as its own
 * engine task, in its own file: descriptors are submitted now and completed later by the
 * hardware, so a flush that was submitted but not completed is a state the scheduler can
 * interleave with device traffic.
 */
import { WaitQueue } from '@mmnsim/core';
import type { Kernel, TaskGen, WaitOptions } from '@mmnsim/core';
import { PREEMPT } from './constants.js';

/** What a descriptor invalidates (`QI_IOTLB_TYPE`, `QI_EIOTLB_TYPE`, `QI_DEV_EIOTLB_TYPE`, `QI_PC_TYPE`, `QI_IWD_TYPE`). */
export type QiKind = 'iotlb' | 'piotlb' | 'devtlb' | 'pasid-cache' | 'wait';

/** One invalidation descriptor (`struct qi_desc`). */
export interface QiDesc {
  /** Serial, for events. */
  id: number;
  /** See {@link QiKind}. */
  readonly kind: QiKind;
  /** Domain id (-1 if not domain-tagged). */
  readonly did: number;
  /** PASID (-1: none; for `iotlb` the RID's requests). */
  readonly pasid: number;
  /** First address (page aligned). */
  readonly addr: number;
  /** Pages, a power of two naturally aligned at `addr`; 0 invalidates everything of the tag. */
  readonly pages: number;
  /** The device a `devtlb` or `pasid-cache` descriptor names ('' otherwise). */
  readonly device: string;
  /** True once the hardware completed it (for `devtlb`: the device's completion arrived). */
  done: boolean;
}

/** The wait descriptor `qi_submit_sync` appends. */
const WAIT: readonly Omit<QiDesc, 'id' | 'done'>[] = [
  { kind: 'wait', did: -1, pasid: -1, addr: 0, pages: 0, device: '' },
];

/** `qi_submit_sync` spins for its wait descriptor. */
const SPIN: WaitOptions = { spin: true };

/** What executes descriptors: the IOMMU unit (its caches) and, through it, the devices. */
export interface QiBackend {
  /** The IOMMU's name. */
  readonly name: string;
  /** Executes a cache descriptor (`iotlb`, `piotlb`, `pasid-cache`) at once. */
  execute(d: QiDesc): void;
  /** Sends a device-TLB invalidation request to the device; it calls {@link InvalidationQueue.atsCompleted} later. */
  sendAtsInvalidation(d: QiDesc): void;
}

/**
 * The invalidation queue of one IOMMU: software appends descriptors at the tail
 * (`qi_submit_sync` adds a wait descriptor and spins until the hardware wrote its status); the
 * hardware — a daemon task on the IOMMU's execution context — executes them from the head, one
 * per scheduling step. A device-TLB descriptor is sent to the device as an ATS invalidation
 * request and completes when the device's completion message arrives; a wait descriptor
 * completes only when everything queued before it has (the fence of the queue).
 *
 * Context: {@link InvalidationQueue.submitSync} spin-waits (atomic context is fine, it never
 * sleeps); {@link InvalidationQueue.submit} never blocks.
 *
 * @see qi_submit_sync
 * @see struct q_inval
 */
export class InvalidationQueue {
  private readonly queue: QiDesc[] = [];
  private readonly outstanding: QiDesc[] = [];
  private readonly work: WaitQueue;
  private readonly completion: WaitQueue;
  private nextId = 1;
  /** Descriptors submitted, and executed by kind. */
  readonly stats: Record<
    'submitted' | 'iotlb' | 'piotlb' | 'devtlb' | 'pasidCache' | 'wait',
    number
  > = { submitted: 0, iotlb: 0, piotlb: 0, devtlb: 0, pasidCache: 0, wait: 0 };

  /**
   * @param kernel the kernel services.
   * @param backend what executes the descriptors.
   */
  constructor(
    private readonly kernel: Kernel,
    private readonly backend: QiBackend,
  ) {
    this.work = new WaitQueue(kernel.scheduler, `${backend.name} qi work`);
    this.completion = new WaitQueue(kernel.scheduler, `${backend.name} qi wait descriptor`);
  }

  /** Descriptors queued and not yet executed. */
  get pending(): number {
    return this.queue.length;
  }

  /** Appends descriptors (ids assigned here) and rings the doorbell; returns them. */
  submit(descs: readonly Omit<QiDesc, 'id' | 'done'>[]): QiDesc[] {
    const out: QiDesc[] = [];
    for (const x of descs) out.push(this.append(x));
    this.work.wakeAll();
    return out;
  }

  /** Appends one descriptor at the tail (its id assigned here); the doorbell is the caller's. */
  private append(x: Omit<QiDesc, 'id' | 'done'>): QiDesc {
    const d: QiDesc = {
      id: this.nextId++,
      kind: x.kind,
      did: x.did,
      pasid: x.pasid,
      addr: x.addr,
      pages: x.pages,
      device: x.device,
      done: false,
    };
    this.queue.push(d);
    this.stats.submitted++;
    const bus = this.kernel.bus;
    if (bus.wants('iommu.qi.submit'))
      bus.emit('iommu.qi.submit', {
        unit: this.backend.name,
        id: d.id,
        kind: d.kind,
        did: d.did,
        pasid: d.pasid,
        addr: d.addr,
        pages: d.pages,
        device: d.device,
      });
    return d;
  }

  /**
   * `qi_submit_sync`: submits `descs` followed by a wait descriptor and spins until the hardware
   * completed the wait (so every descriptor before it). With `wait` false (a planted bug) it
   * returns right after submitting.
   */
  *submitSync(descs: readonly Omit<QiDesc, 'id' | 'done'>[], wait = true): TaskGen<void> {
    for (let i = 0; i < descs.length; i++) this.append(descs[i]!);
    this.work.wakeAll();
    if (!wait) return;
    const w = this.append(WAIT[0]!);
    this.work.wakeAll();
    while (!w.done) yield* this.completion.wait(SPIN);
  }

  /** Called by a device when it finished an ATS invalidation request (its completion message). */
  atsCompleted(d: QiDesc): void {
    if (d.done) return;
    d.done = true;
    const i = this.outstanding.indexOf(d);
    if (i >= 0) this.outstanding.splice(i, 1);
    this.emitDone(d);
    this.work.wakeAll();
  }

  /**
   * The hardware: executes descriptors from the head, forever (a daemon on the IOMMU's context).
   * Consecutive cache descriptors run in one step; the engine reaches a scheduling point after
   * each device-TLB descriptor (the request is on its way to the device) and each wait.
   */
  *engine(): TaskGen<void> {
    const q = this.queue;
    for (;;) {
      while (q.length === 0) yield* this.work.wait();
      while (q.length > 0) {
        const d = q[0]!;
        if (d.kind === 'devtlb') {
          this.stats.devtlb++;
          this.outstanding.push(d);
          q.shift();
          this.backend.sendAtsInvalidation(d);
          break;
        }
        if (d.kind === 'wait') {
          this.stats.wait++;
          // The fence: every earlier descriptor, device-TLB completions included.
          const out = this.outstanding;
          const id = d.id;
          if (out.length > 0 && out.some((o) => o.id < id))
            yield* this.work.waitEvent(() => !out.some((o) => o.id < id));
          d.done = true;
          q.shift();
          this.emitDone(d);
          this.completion.wakeAll();
          break;
        }
        if (d.kind === 'iotlb') this.stats.iotlb++;
        else if (d.kind === 'piotlb') this.stats.piotlb++;
        else this.stats.pasidCache++;
        this.backend.execute(d);
        d.done = true;
        q.shift();
        this.emitDone(d);
      }
      yield PREEMPT;
    }
  }

  private emitDone(d: QiDesc): void {
    const bus = this.kernel.bus;
    if (bus.wants('iommu.qi.done'))
      bus.emit('iommu.qi.done', {
        unit: this.backend.name,
        id: d.id,
        kind: d.kind,
        pasid: d.pasid,
        addr: d.addr,
        pages: d.pages,
      });
  }
}
