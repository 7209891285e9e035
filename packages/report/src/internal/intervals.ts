/**
 * Pairs the begin and end events of a log into intervals (lock holds and waits, SRCU read
 * sections and grace periods, invalidation windows, subscriber callbacks, vCPU guest mode, DMA
 * and page requests, …). Its own file because both the trace export and the HTML report's swim
 * lanes draw the same intervals, and it must stay free of Node APIs (the report's browser script
 * bundles it).
 */
import type { LoggedEvent } from '@mmnsim/core';

/** Where an interval is drawn: on a task's track, on an mm's track, or on a named track. */
export type IntervalTrack =
  | {
      /** On the track of the task with this id. */
      readonly kind: 'task';
      /** The task id. */
      readonly task: number;
    }
  | {
      /** On a track of the address space `mm`. */
      readonly kind: 'mm';
      /** The mm id. */
      readonly mm: number;
      /** The track's name inside the mm (`'invalidate windows'`, `'sub#1 mini-odp'`). */
      readonly lane: string;
    }
  | {
      /** On a named track of a named group (`'srcu'`, `'kvm vm#1'`). */
      readonly kind: 'group';
      /** The group (a process in the trace). */
      readonly group: string;
      /** The track inside the group. */
      readonly lane: string;
    };

/** One paired begin/end: indexes into the log's events. */
export interface Interval {
  /** The slice's name. */
  readonly name: string;
  /** Its category: the subsystem (`'lock'`, `'srcu'`, `'mmn'`, `'kvm'`, `'rdma'`, `'sched'` …). */
  readonly cat: string;
  /** Where it is drawn. */
  readonly track: IntervalTrack;
  /** Index of the begin event in the events array. */
  readonly begin: number;
  /** Index of the end event, or -1 if the log ended first (the run stopped inside it). */
  readonly end: number;
}

/** What {@link pairIntervals} returns. */
export interface Pairing {
  /** Every interval, in order of their begin event. */
  readonly intervals: Interval[];
  /** For each event index, true if the event is the begin or end of an interval. */
  readonly paired: Uint8Array;
}

type D = Record<string, unknown>;

/** Open intervals by key: a stack per key, so re-entrant holds pair inner with inner. */
class OpenMap {
  private readonly map = new Map<string, { idx: number; extra: number }[]>();
  open(key: string, idx: number, extra = 0): void {
    let s = this.map.get(key);
    if (s === undefined) this.map.set(key, (s = []));
    s.push({ idx, extra });
  }
  close(key: string): { idx: number; extra: number } | undefined {
    const s = this.map.get(key);
    const top = s?.pop();
    if (s !== undefined && s.length === 0) this.map.delete(key);
    return top;
  }
  /** Every interval still open, in key order. */
  *remaining(): Iterable<[string, number, number]> {
    for (const [key, s] of this.map) for (const o of s) yield [key, o.idx, o.extra];
  }
}

/** Types whose pairing {@link pairIntervals} knows; other types pair only by the generic rule. */
const KNOWN_NAMESPACES = ['sim', 'sched', 'lock', 'srcu', 'ww', 'oracle', 'mm', 'mmn', 'smmu'];
const KNOWN_PAIRED = new Set([
  'kvm.vcpu.enter',
  'kvm.vcpu.exit',
  'kvm.invalidate.start',
  'kvm.invalidate.end',
  'kvm.flush',
  'kvm.flush.done',
  'rdma.pf.raise',
  'rdma.pf.resume',
  'rdma.wr.post',
  'rdma.wr.complete',
  'rdma.umr.post',
  'rdma.umr.done',
  'iommu.qi.submit',
  'iommu.qi.done',
  'iommu.prq.request',
  'iommu.page_response',
]);
const GENERIC_BEGIN = /^(.+)[._](start|begin|enter)$/;
const GENERIC_END = /^(.+)[._](end|exit|done|finish)$/;

/** True for the subscriber callbacks that run inside the start side of a window. */
function isCallbackBoundary(e: LoggedEvent): boolean {
  return (
    e.type === 'mmn.callback' ||
    e.type === 'mmn.itree.state' ||
    e.type === 'mmn.invalidate_start' ||
    e.type === 'mmn.invalidate_end' ||
    (e.type === 'srcu.read_lock' && String((e.data as D).domain).startsWith('mmu_notifier'))
  );
}

/**
 * Pairs the log's begin/end events into intervals.
 *
 * Rules (one per event family; the kernel function each pair brackets is named):
 * - `lock.acquired` → `lock.released` of the same lock by the same task (a hold), and
 *   `lock.contended` → that task's next `lock.acquired` of the lock (a wait);
 * - `srcu.read_lock` → `srcu.read_unlock` (same domain, index and reader task):
 *   `srcu_read_lock`/`srcu_read_unlock`; `srcu.gp_start` → `gp_end`, `sync_start` → `sync_end`,
 *   `barrier_start` → `barrier_end`;
 * - `mmn.invalidate_start` → `mmn.invalidate_end` of the same range: the window between
 *   `mmu_notifier_invalidate_range_start` returning and `mmu_notifier_invalidate_range_end`,
 *   drawn on the mm and on the task;
 * - each `mmn.callback` closes a callback that began right after the previous notifier boundary
 *   of its task (the previous callback, the itree state change, the notifier SRCU read lock):
 *   the log records only a callback's return, so its start is inferred;
 * - `mm.syscall.enter` → the task's `mm.syscall.exit`: a system call of the `Process` facade
 *   (`mmap`, `munmap`, `fork` …), the slice the other intervals of that task nest in;
 * - `sched.block` → the `sched.wake` of the task; `sched.sleep` → the task's next event;
 * - `kvm.vcpu.enter` → `exit`, `kvm.invalidate.start` → `end`, `kvm.flush` → `flush.done`,
 *   `rdma.pf.raise` → `pf.resume`, `rdma.wr.post` → `wr.complete`, `rdma.umr.post` → `done`;
 * - `iommu.qi.submit` → `iommu.qi.done` of the descriptor (`qi_submit_sync`), on the IOMMU's
 *   lane; the first queued `iommu.prq.request` of a page request group → its
 *   `iommu.page_response`, on the device's lane;
 * - any other namespace (a new driver): `<x>.start|begin|enter` →
 *   `<x>.end|exit|done|finish` of the same task.
 *
 * An interval still open at the end of the log has `end: -1`.
 *
 * @param events the log's events, in order.
 * @returns the intervals and which events they consumed.
 */
export function pairIntervals(events: readonly LoggedEvent[]): Pairing {
  const intervals: Interval[] = [];
  const paired = new Uint8Array(events.length);
  const open = new OpenMap();
  const meta = new Map<string, { name: string; cat: string; track: IntervalTrack }>();
  const lastBoundary = new Map<number, number>();
  const sleeping = new Map<number, number>();
  const tasks = (t: number): IntervalTrack => ({ kind: 'task', task: t });
  const openGroups = new Set<string>();

  const begin = (key: string, i: number, name: string, cat: string, track: IntervalTrack) => {
    open.open(key, i);
    meta.set(key + '#' + i, { name, cat, track });
    paired[i] = 1;
  };
  const end = (key: string, i: number): boolean => {
    const o = open.close(key);
    if (o === undefined) return false;
    const m = meta.get(key + '#' + o.idx)!;
    meta.delete(key + '#' + o.idx);
    intervals.push({ ...m, begin: o.idx, end: i });
    paired[i] = 1;
    return true;
  };

  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    const d = (e.data ?? {}) as D;
    const t = e.task;
    const s = sleeping.get(t);
    if (s !== undefined) {
      sleeping.delete(t);
      intervals.push({ name: 'sleep', cat: 'sched', track: tasks(t), begin: s, end: i });
    }
    switch (e.type) {
      case 'lock.acquired': {
        const lock = String(d.lock);
        end(`wait|${t}|${lock}`, i);
        begin(`lock|${t}|${lock}`, i, lock, 'lock', tasks(t));
        break;
      }
      case 'lock.released':
        end(`lock|${t}|${String(d.lock)}`, i);
        break;
      case 'mm.syscall.enter':
        begin(`sys|${t}`, i, String(d.name), 'syscall', tasks(t));
        break;
      case 'mm.syscall.exit':
        end(`sys|${t}`, i);
        break;
      case 'lock.contended':
        begin(`wait|${t}|${String(d.lock)}`, i, `wait ${String(d.lock)}`, 'lock', tasks(t));
        break;
      case 'srcu.read_lock':
      case 'srcu.read_unlock': {
        const key = `srcu|${String(d.domain)}|${String(d.idx)}|${d.reader === 'scope' ? -2 : t}`;
        if (e.type === 'srcu.read_lock')
          begin(key, i, `srcu read ${String(d.domain)}`, 'srcu', tasks(t));
        else end(key, i);
        break;
      }
      case 'srcu.gp_start':
        begin(`gp|${String(d.domain)}|${String(d.gp)}`, i, `grace period ${String(d.gp)}`, 'srcu', {
          kind: 'group',
          group: 'srcu',
          lane: String(d.domain),
        });
        break;
      case 'srcu.gp_end':
        end(`gp|${String(d.domain)}|${String(d.gp)}`, i);
        break;
      case 'srcu.sync_start':
      case 'srcu.barrier_start': {
        const what = e.type === 'srcu.sync_start' ? 'synchronize_srcu' : 'srcu_barrier';
        begin(`${what}|${String(d.domain)}|${t}`, i, what, 'srcu', tasks(t));
        break;
      }
      case 'srcu.sync_end':
      case 'srcu.barrier_end': {
        const what = e.type === 'srcu.sync_end' ? 'synchronize_srcu' : 'srcu_barrier';
        end(`${what}|${String(d.domain)}|${t}`, i);
        break;
      }
      case 'mmn.invalidate_start': {
        const name = `invalidate ${String(d.event)} [0x${Number(d.start).toString(16)}, 0x${Number(d.end).toString(16)})`;
        begin(`win|${String(d.range)}`, i, name, 'mmn', {
          kind: 'mm',
          mm: Number(d.mm),
          lane: 'invalidate windows',
        });
        begin(`winT|${String(d.range)}`, i, name, 'mmn', tasks(t));
        break;
      }
      case 'mmn.invalidate_end':
        end(`win|${String(d.range)}`, i);
        end(`winT|${String(d.range)}`, i);
        break;
      case 'sched.block':
        begin(`block|${t}`, i, `blocked on ${String(d.on)}`, 'sched', tasks(t));
        break;
      case 'sched.wake':
        end(`block|${String(d.id)}`, i);
        break;
      case 'sched.sleep':
        sleeping.set(t, i);
        paired[i] = 1;
        break;
      case 'kvm.vcpu.enter':
        begin(
          `vcpu|${String(d.vm)}|${String(d.vcpu)}`,
          i,
          `guest vcpu${String(d.vcpu)}`,
          'kvm',
          tasks(t),
        );
        break;
      case 'kvm.vcpu.exit':
        end(`vcpu|${String(d.vm)}|${String(d.vcpu)}`, i);
        break;
      case 'kvm.invalidate.start':
        begin(`kvminv|${String(d.vm)}`, i, 'mmu_invalidate in progress', 'kvm', {
          kind: 'group',
          group: `kvm vm#${String(d.vm)}`,
          lane: 'invalidations',
        });
        break;
      case 'kvm.invalidate.end':
        end(`kvminv|${String(d.vm)}`, i);
        break;
      case 'kvm.flush':
        begin(`kvmflush|${String(d.vm)}|${t}`, i, 'kvm_flush_remote_tlbs', 'kvm', tasks(t));
        break;
      case 'kvm.flush.done':
        end(`kvmflush|${String(d.vm)}|${t}`, i);
        break;
      case 'rdma.pf.raise':
        begin(
          `pf|${String(d.dev)}|${String(d.qp)}|${String(d.mr)}`,
          i,
          `page request 0x${Number(d.va).toString(16)}`,
          'rdma',
          tasks(t),
        );
        break;
      case 'rdma.pf.resume':
        end(`pf|${String(d.dev)}|${String(d.qp)}|${String(d.mr)}`, i);
        break;
      case 'rdma.wr.post':
        begin(
          `wr|${String(d.dev)}|${String(d.qp)}|${String(d.wr)}`,
          i,
          `DMA ${String(d.opcode)}`,
          'rdma',
          {
            kind: 'group',
            group: `rdma ${String(d.dev)}`,
            lane: `qp${String(d.qp)}`,
          },
        );
        break;
      case 'rdma.wr.complete':
        end(`wr|${String(d.dev)}|${String(d.qp)}|${String(d.wr)}`, i);
        break;
      case 'rdma.umr.post':
        begin(`umr|${String(d.dev)}|${String(d.mr)}`, i, `UMR ${String(d.op)}`, 'rdma', {
          kind: 'group',
          group: `rdma ${String(d.dev)}`,
          lane: 'UMR',
        });
        break;
      case 'rdma.umr.done':
        end(`umr|${String(d.dev)}|${String(d.mr)}`, i);
        break;
      case 'mmn.callback': {
        const from = (lastBoundary.get(t) ?? i - 1) + 1;
        const b = Math.min(from, i);
        intervals.push({
          name: `${String(d.op)} ${String(d.name)}`,
          cat: 'mmn',
          track: { kind: 'mm', mm: Number(d.mm), lane: `sub#${String(d.sub)} ${String(d.name)}` },
          begin: b,
          end: i,
        });
        break;
      }
      case 'iommu.qi.submit':
        // qi_submit_sync: a descriptor from its submission to the hardware's completion.
        begin(`qi|${String(d.unit)}|${String(d.id)}`, i, `qi ${String(d.kind)}`, 'iommu', {
          kind: 'group',
          group: 'iommu',
          lane: String(d.unit),
        });
        break;
      case 'iommu.qi.done':
        end(`qi|${String(d.unit)}|${String(d.id)}`, i);
        break;
      case 'iommu.prq.request': {
        // A PRI page request group, from its first queued request to the page response.
        const key = `prq|${String(d.device)}|${String(d.pasid)}|${String(d.group)}`;
        if (d.queued === true && !openGroups.has(key)) {
          openGroups.add(key);
          begin(key, i, `page request g${String(d.group)}`, 'iommu', {
            kind: 'group',
            group: 'device',
            lane: String(d.device),
          });
        }
        break;
      }
      case 'iommu.page_response': {
        const key = `prq|${String(d.device)}|${String(d.pasid)}|${String(d.group)}`;
        if (openGroups.delete(key)) end(key, i);
        break;
      }
      default: {
        const ns = e.type.slice(0, e.type.indexOf('.'));
        if (KNOWN_NAMESPACES.includes(ns) || KNOWN_PAIRED.has(e.type)) break;
        const b = GENERIC_BEGIN.exec(e.type);
        if (b !== null) {
          begin(`gen|${b[1]!}|${t}`, i, b[1]!, ns, tasks(t));
          break;
        }
        const en = GENERIC_END.exec(e.type);
        if (en !== null) end(`gen|${en[1]!}|${t}`, i);
      }
    }
    if (isCallbackBoundary(e)) lastBoundary.set(t, i);
  }
  for (const [key, idx] of open.remaining()) {
    const m = meta.get(key + '#' + idx)!;
    intervals.push({ ...m, begin: idx, end: -1 });
  }
  for (const [t, s] of sleeping) {
    intervals.push({ name: 'sleep', cat: 'sched', track: tasks(t), begin: s, end: -1 });
  }
  intervals.sort((a, b) => a.begin - b.begin || longer(a, b, events.length));
  return { intervals, paired };
}

/** Orders intervals with the same begin: the longer (outer) one first. */
function longer(a: Interval, b: Interval, n: number): number {
  const ea = a.end < 0 ? n : a.end;
  const eb = b.end < 0 ? n : b.end;
  return eb - ea;
}
