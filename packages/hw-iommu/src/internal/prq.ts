/**
 * Page requests (PRI) and I/O page faults: the IOMMU's page request queue, the threaded
 * handler that validates and reports requests (`prq_event_thread`), the I/O page-fault queue
 * with its groups, and the kworker that resolves them on the bound mm
 * (`iommu_sva_handle_iopf`) and answers the group. Its own file: it is the whole fault path.
 */
import { WaitQueue } from '@mmnsim/core';
import type { Kernel, TaskGen } from '@mmnsim/core';
import { handleMmFault, mmgetNotZero, mmput, PAGE_SIZE, Vm } from '@mmnsim/mm';
import type { MmStruct } from '@mmnsim/mm';
import { CANONICAL_LIMIT } from './constants.js';
import type { PageResponseCode } from './constants.js';
import type { RawPageRequest } from './device.js';
import type { QiDesc } from './qi.js';
import type { IommuDeviceState, IommuUnit } from './unit.js';

/** One page request in the queue (`struct page_req_dsc`). */
export interface PageRequest {
  /** Serial. */
  readonly id: number;
  /** The requesting device. */
  readonly dev: IommuDeviceState;
  /** PASID, -1 if the request carries none. */
  readonly pasid: number;
  /** Page address. */
  readonly va: number;
  /** Read access requested. */
  readonly read: boolean;
  /** Write access requested. */
  readonly write: boolean;
  /** Execute access requested. */
  readonly exec: boolean;
  /** Privileged-mode request. */
  readonly priv: boolean;
  /** Page request group index. */
  readonly group: number;
  /** Last page in group. */
  readonly last: boolean;
}

/** A group of faults handed to the I/O page-fault handler (`struct iopf_group`). */
export interface IopfGroup {
  /** Serial. */
  readonly serial: number;
  /** The device. */
  readonly dev: IommuDeviceState;
  /** PASID. */
  readonly pasid: number;
  /** Group index. */
  readonly group: number;
  /** The mm of the domain the PASID was attached to when the group was reported. */
  readonly mm: MmStruct;
  /** The faults, the last-in-group one last. */
  readonly faults: PageRequest[];
}

/**
 * The page request queue of one IOMMU and the software that drains it.
 *
 * - The hardware appends a request to the ring; when the ring is full the request is dropped,
 *   the overflow bit set, and a last-in-group request is answered SUCCESS by the hardware so the
 *   device retries (VT-d "auto response"; not verified against source).
 * - The page-request thread (a daemon on `cpu`) walks head → tail: a request without PASID, with
 *   a non-canonical address, privileged with read/write, or exec+read is answered INVALID (when
 *   last in group); a stop marker (last, no read or write) is dropped; the others are reported
 *   to the I/O page-fault queue — partial requests wait for their group's last one, then the
 *   group is queued; a request whose PASID has no fault handler (not attached) is answered
 *   INVALID.
 * - The I/O page-fault kworker (a daemon on `cpu`) runs `iommu_sva_handle_mm` for every fault of
 *   a group (errors are sticky) and sends one group response.
 *
 * @see prq_event_thread
 * @see iommu_report_device_fault
 * @see iommu_sva_handle_iopf
 * @see intel_drain_pasid_prq
 */
export class PageRequestQueue {
  /** The ring (head first). */
  readonly ring: PageRequest[] = [];
  /** Groups reported and not yet answered. */
  readonly iopfQueue: IopfGroup[] = [];
  private readonly partial = new Map<string, PageRequest[]>();
  private readonly handling = new Set<IopfGroup>();
  private readonly prqWork: WaitQueue;
  private readonly iopfWork: WaitQueue;
  /** Woken whenever a request leaves the ring or a group is answered (drain waits here). */
  readonly progress: WaitQueue;
  /** The overflow bit (PRO). */
  overflow = false;
  private nextId = 1;
  private nextSerial = 1;
  /** Requests received, dropped (overflow), answered invalid, groups reported, faults handled. */
  readonly stats: Record<'requests' | 'dropped' | 'invalid' | 'groups' | 'handled', number> = {
    requests: 0,
    dropped: 0,
    invalid: 0,
    groups: 0,
    handled: 0,
  };

  /**
   * @param kernel the kernel services.
   * @param unit the IOMMU.
   * @param depth ring entries.
   * @param cpu the CPU the page-request thread and the I/O page-fault kworker run on.
   */
  constructor(
    private readonly kernel: Kernel,
    private readonly unit: IommuUnit,
    readonly depth: number,
    readonly cpu: number,
  ) {
    const sched = kernel.scheduler;
    this.prqWork = new WaitQueue(sched, `${unit.name} prq`);
    this.iopfWork = new WaitQueue(sched, `${unit.name} iopf queue`);
    this.progress = new WaitQueue(sched, `${unit.name} prq progress`);
  }

  /** Spawns the page-request thread and the I/O page-fault kworker. */
  start(): void {
    const sched = this.kernel.scheduler;
    sched.spawn(`${this.unit.name}-prq`, this.cpu, () => this.prqThread(), { daemon: true });
    sched.spawn(`${this.unit.name}-iopf`, this.cpu, () => this.iopfWorker(), { daemon: true });
  }

  /** The hardware receives a page request from `dev`; false if it was dropped (overflow). */
  push(dev: IommuDeviceState, pasid: number, r: RawPageRequest, group: number): boolean {
    const req: PageRequest = {
      id: this.nextId++,
      dev,
      pasid,
      va: r.va - (r.va % PAGE_SIZE),
      read: r.read === true,
      write: r.write === true,
      exec: r.exec === true,
      priv: r.priv === true,
      group,
      last: r.last,
    };
    const queued = this.ring.length < this.depth;
    this.stats.requests++;
    const bus = this.kernel.bus;
    if (bus.wants('iommu.prq.request'))
      bus.emit('iommu.prq.request', {
        unit: this.unit.name,
        device: dev.name,
        pasid,
        va: req.va,
        perm: `${req.read ? 'r' : ''}${req.write ? 'w' : ''}${req.exec ? 'x' : ''}${req.priv ? 'p' : ''}`,
        group,
        last: req.last,
        id: req.id,
        queued,
      });
    if (!queued) {
      this.overflow = true;
      this.stats.dropped++;
      if (req.last && (req.read || req.write)) this.respond(dev, pasid, group, 'success', -1);
      return false;
    }
    this.ring.push(req);
    this.prqWork.wakeAll();
    return true;
  }

  /** True if a request or group of (`dev`, `pasid`) is still queued or being handled (partial groups are not waited for). */
  pendingFor(dev: IommuDeviceState, pasid: number): boolean {
    for (const r of this.ring) if (r.dev === dev && r.pasid === pasid) return true;
    for (const g of this.iopfQueue) if (g.dev === dev && g.pasid === pasid) return true;
    for (const g of this.handling) if (g.dev === dev && g.pasid === pasid) return true;
    return false;
  }

  /**
   * Drops the partial groups of (`dev`, `pasid`) — requests whose last-in-group never came
   * (`iopf_queue_discard_partial`, done when the PASID is detached).
   */
  discardPartial(dev: IommuDeviceState, pasid: number): number {
    let n = 0;
    for (const [k, l] of [...this.partial]) {
      if (l[0]!.dev === dev && l[0]!.pasid === pasid) {
        this.partial.delete(k);
        n += l.length;
      }
    }
    return n;
  }

  /**
   * `intel_drain_pasid_prq`: waits until no request of (`dev`, `pasid`) is left in the ring or
   * the fault queue, then submits a fenced drain (wait descriptor, PASID IOTLB flush, device-TLB
   * flush) and repeats while the overflow bit is set.
   *
   * Context: may sleep.
   */
  *drain(dev: IommuDeviceState, pasid: number, did: number): TaskGen<void> {
    for (;;) {
      if (this.pendingFor(dev, pasid))
        yield* this.progress.waitEvent(() => !this.pendingFor(dev, pasid));
      const descs: Omit<QiDesc, 'id' | 'done'>[] = [
        { kind: 'piotlb', did, pasid, addr: 0, pages: 0, device: '' },
      ];
      if (dev.ats) descs.push({ kind: 'devtlb', did, pasid, addr: 0, pages: 0, device: dev.name });
      yield* this.unit.qi.submitSync(descs);
      if (!this.overflow) return;
      if (this.ring.length === 0) this.overflow = false;
    }
  }

  private respond(
    dev: IommuDeviceState,
    pasid: number,
    group: number,
    code: PageResponseCode,
    serial: number,
  ): void {
    const bus = this.kernel.bus;
    if (bus.wants('iommu.page_response'))
      bus.emit('iommu.page_response', { device: dev.name, pasid, group, serial, code });
    dev.endpoint?.pageResponse(pasid, group, code, serial);
  }

  private dequeued(r: PageRequest, action: string): void {
    const bus = this.kernel.bus;
    if (bus.wants('iommu.prq.dequeue'))
      bus.emit('iommu.prq.dequeue', { unit: this.unit.name, id: r.id, action });
  }

  /** `prq_event_thread`. */
  private *prqThread(): TaskGen<void> {
    const ring = this.ring;
    const sched = this.kernel.scheduler;
    for (;;) {
      if (ring.length === 0) {
        // Overflow is cleared once the queue is empty; partial groups are then discarded.
        if (this.overflow) {
          this.overflow = false;
          this.partial.clear();
        }
        yield* this.prqWork.waitEvent(() => ring.length > 0);
      }
      const r = ring[0]!;
      this.handleRequest(r);
      ring.shift();
      this.progress.wakeAll();
      yield* sched.preempt();
    }
  }

  private handleRequest(r: PageRequest): void {
    const bad =
      r.pasid < 0 ||
      r.va >= CANONICAL_LIMIT ||
      (r.priv && (r.read || r.write)) ||
      (r.exec && r.read);
    if (bad) {
      this.stats.invalid++;
      this.dequeued(r, 'invalid');
      if (r.last) this.respond(r.dev, r.pasid, r.group, 'invalid', -1);
      return;
    }
    if (r.last && !r.read && !r.write) {
      this.dequeued(r, 'stop-marker');
      return;
    }
    // iommu_report_device_fault: find the fault handler of the PASID's domain.
    const e = r.dev.pasids.get(r.pasid);
    const domain = e?.domain;
    if (e === undefined || domain === undefined || domain.type !== 'sva' || domain.mm === null) {
      this.dequeued(r, 'no-handler');
      if (r.last) this.respond(r.dev, r.pasid, r.group, 'invalid', -1);
      return;
    }
    const key = `${r.dev.index}:${r.pasid}:${r.group}`;
    if (!r.last) {
      let l = this.partial.get(key);
      if (l === undefined) {
        l = [];
        this.partial.set(key, l);
      }
      l.push(r);
      this.dequeued(r, 'partial');
      return;
    }
    const faults = this.partial.get(key) ?? [];
    this.partial.delete(key);
    faults.push(r);
    const serial = this.nextSerial++;
    const bus = this.kernel.bus;
    if (bus.wants('iommu.iopf.queue'))
      bus.emit('iommu.iopf.queue', {
        device: r.dev.name,
        pasid: r.pasid,
        group: r.group,
        serial,
        faults: faults.length,
      });
    this.iopfQueue.push({
      serial,
      dev: r.dev,
      pasid: r.pasid,
      group: r.group,
      mm: domain.mm,
      faults,
    });
    this.stats.groups++;
    this.dequeued(r, 'fault');
    this.iopfWork.wakeAll();
  }

  /** The I/O page-fault workqueue's worker: `iommu_sva_handle_iopf` for each group. */
  private *iopfWorker(): TaskGen<void> {
    const q = this.iopfQueue;
    for (;;) {
      if (q.length === 0) yield* this.iopfWork.waitEvent(() => q.length > 0);
      const g = q.shift()!;
      this.handling.add(g);
      const early = this.unit.bug('response-before-fault');
      if (early) this.respond(g.dev, g.pasid, g.group, 'success', g.serial);
      let code: PageResponseCode = 'success';
      for (const f of g.faults) {
        if (code !== 'success') break;
        code = yield* this.handleMm(f, g.mm);
        this.stats.handled++;
        const bus = this.kernel.bus;
        if (bus.wants('iommu.iopf.handle'))
          bus.emit('iommu.iopf.handle', {
            device: g.dev.name,
            pasid: g.pasid,
            va: f.va,
            serial: g.serial,
            code,
          });
      }
      if (!early) this.respond(g.dev, g.pasid, g.group, code, g.serial);
      this.handling.delete(g);
      this.progress.wakeAll();
    }
  }

  /** `iommu_sva_handle_mm`. */
  private *handleMm(f: PageRequest, mm: MmStruct): TaskGen<PageResponseCode> {
    if (f.pasid < 0) return 'invalid';
    if (!mmgetNotZero(mm)) return 'invalid';
    const core = this.unit.core;
    yield* mm.mmapLock.downRead();
    let code: PageResponseCode = 'invalid';
    const vma = mm.vmas.find(f.va);
    if (vma !== undefined) {
      const access = (f.read ? Vm.READ : 0) | (f.write ? Vm.WRITE : 0) | (f.exec ? Vm.EXEC : 0);
      if ((access & ~vma.flags) === 0) {
        const r = yield* handleMmFault(core, mm, vma, f.va, { write: f.write, remote: true });
        code = r === 'ok' || r === 'retry' ? 'success' : 'invalid';
      }
    }
    mm.mmapLock.upRead();
    yield* mmput(core, mm);
    return code;
  }
}
