/**
 * The Chrome trace-event export of a log (the JSON that the Perfetto UI and `chrome://tracing`
 * open). Its own file: it is the one place that knows the trace-event format.
 */
import type { JsonValue, LoggedEvent } from '@mmnsim/core';
import { counterUpdates, newCounterState } from './counters.js';
import { pairIntervals } from './intervals.js';
import type { Interval, IntervalTrack } from './intervals.js';

/**
 * One trace event (the Trace Event Format's JSON object form). `ts` and `dur` are in
 * microseconds; here one scheduler step is 1000 µs (see {@link toChromeTrace}).
 */
export interface TraceEvent {
  /** The slice, instant, counter or metadata name. */
  readonly name: string;
  /** Category: the subsystem (`'lock'`, `'mmn'`, `'tlb'`, `'violation'` …). */
  readonly cat?: string;
  /** Phase: `B`/`E` slice, `b`/`e` async slice, `i` instant, `C` counter, `s`/`f` flow, `M` metadata. */
  readonly ph: 'B' | 'E' | 'b' | 'e' | 'i' | 'C' | 's' | 'f' | 'M';
  /** Timestamp in µs: the scheduler step × 1000, spread inside the step in log order. */
  readonly ts: number;
  /** The process: a CPU, a device engine, an mm, or a group such as `srcu`. */
  readonly pid: number;
  /** The thread: a task, or a track of an mm or group. */
  readonly tid?: number;
  /** Async-slice and flow id. */
  readonly id?: number;
  /** Instant scope: `'t'` thread, `'p'` process, `'g'` global. */
  readonly s?: 't' | 'p' | 'g';
  /** Flow binding point (`'e'`: the enclosing slice). */
  readonly bp?: 'e';
  /** Arguments shown in the viewer. */
  readonly args?: { readonly [key: string]: JsonValue };
}

/** A whole trace: what `JSON.stringify` turns into the file Perfetto opens. */
export interface ChromeTrace {
  /** Every event, sorted by `ts` (metadata first). */
  readonly traceEvents: TraceEvent[];
  /** Shown unit of the legacy viewer. */
  readonly displayTimeUnit: 'ms' | 'ns';
  /** The log's header and how to read the timestamps. */
  readonly otherData: { readonly [key: string]: JsonValue };
}

/** Options of {@link toChromeTrace}. */
export interface ChromeTraceOptions {
  /** The log's header fields (seed, scenario …), copied into `otherData`. */
  readonly header?: { readonly [key: string]: JsonValue };
}

/**
 * One scheduler step is 1000 µs of trace time: wide enough that the marks of a step with
 * thousands of events still get distinct nanosecond timestamps (Perfetto keeps ns).
 */
const STEP_US = 1000;

/** Rounds a µs timestamp to whole nanoseconds. */
function ns(us: number): number {
  return Math.round(us * 1000) / 1000;
}

interface Mark {
  readonly ev: Omit<TraceEvent, 'ts'>;
}

/** Assigns pids and tids to contexts, tasks, mms and groups, and writes their metadata. */
class Tracks {
  readonly meta: TraceEvent[] = [];
  private readonly pids = new Map<string, number>();
  private readonly tids = new Map<string, number>();
  private nextPid = 10;
  private readonly taskCtx = new Map<number, string>();
  private readonly taskName = new Map<number, string>();

  constructor() {
    this.process('simulation', 1, 0);
  }

  private process(name: string, pid?: number, sort?: number): number {
    let p = this.pids.get(name);
    if (p !== undefined) return p;
    p = pid ?? this.nextPid++;
    this.pids.set(name, p);
    this.meta.push({ name: 'process_name', ph: 'M', ts: 0, pid: p, args: { name } });
    this.meta.push({
      name: 'process_sort_index',
      ph: 'M',
      ts: 0,
      pid: p,
      args: { sort_index: sort ?? p },
    });
    return p;
  }

  context(ctx: string): number {
    return this.process(ctx === '-' ? 'simulation' : ctx);
  }

  spawn(id: number, name: string, on: string): void {
    this.taskCtx.set(id, on);
    this.taskName.set(id, name);
  }

  /** pid/tid of task `t` (its context from `sched.spawn`, else from the event). */
  task(t: number, ctx: string): { pid: number; tid: number } {
    if (t < 0) return { pid: 1, tid: 0 };
    const on = this.taskCtx.get(t) ?? ctx;
    const pid = this.context(on);
    const key = `${pid}|task|${t}`;
    if (!this.tids.has(key)) {
      this.tids.set(key, t + 1);
      const name = `${this.taskName.get(t) ?? 'task'}#${t}`;
      this.meta.push({ name: 'thread_name', ph: 'M', ts: 0, pid, tid: t + 1, args: { name } });
      this.meta.push({
        name: 'thread_sort_index',
        ph: 'M',
        ts: 0,
        pid,
        tid: t + 1,
        args: { sort_index: t },
      });
    }
    return { pid, tid: t + 1 };
  }

  /** pid/tid of a named lane inside a named process. */
  lane(process: string, lane: string): { pid: number; tid: number } {
    const pid = this.process(process);
    const key = `${pid}|lane|${lane}`;
    let tid = this.tids.get(key);
    if (tid === undefined) {
      tid = 100 + [...this.tids.keys()].filter((k) => k.startsWith(`${pid}|lane|`)).length;
      this.tids.set(key, tid);
      this.meta.push({ name: 'thread_name', ph: 'M', ts: 0, pid, tid, args: { name: lane } });
    }
    return { pid, tid };
  }

  mmName(mm: number, name: string | undefined): string {
    return `mm#${mm}${name !== undefined && name !== '' ? ` (${name})` : ''}`;
  }
}

/** Converts a payload to trace args (objects stay, anything else goes under `value`). */
function argsOf(e: LoggedEvent): { [key: string]: JsonValue } {
  const d = e.data;
  const base: { [key: string]: JsonValue } =
    d !== null && typeof d === 'object' && !Array.isArray(d) ? { ...d } : { value: d };
  base.seq = e.seq;
  base.step = e.step;
  base.time_ns = e.time;
  return base;
}

/**
 * Turns a log into Chrome trace-event JSON (for the Perfetto UI or `chrome://tracing`).
 *
 * Layout: a process per simulated CPU and device engine with a thread per task; a process per
 * mm with an `invalidate windows` track and a track per subscription (its callbacks); processes
 * for SRCU grace periods, each KVM VM, each RDMA device and the secondary MMUs' counters.
 * Slices ({@link pairIntervals}): lock holds and waits, SRCU read sections and grace periods,
 * invalidation windows and subscriber callbacks, blocked and sleeping time, vCPU guest mode,
 * KVM invalidations and remote flushes, RDMA page requests, DMA work requests and UMRs.
 * Slices that nest on their track are `B`/`E` pairs; those that overlap without nesting (a lock
 * released out of order, two invalidations of one mm in flight) become async `b`/`e` slices.
 * TLB shootdowns are flow arrows from the sending CPU's task to each target's acknowledgement.
 * Counters: `invalidate_seq` and `active_invalidate_ranges` per mm, KVM's
 * `mmu_invalidate_in_progress` and `mmu_invalidate_seq`, ODP `npages` per MR, each CPU's TLB
 * entries and each secondary MMU's mappings. Each violation is a global instant whose args
 * list the `seq` of the events it cites. Every other event is a thread instant with its payload.
 *
 * Time comes from the log, never the wall clock: `ts` is the scheduler step (one step shows as
 * 1 ms), and the events of one step are spread evenly inside it in log order, so that every
 * mark has its own nanosecond timestamp; `args.time_ns` keeps the virtual time.
 *
 * ## Example
 * ```ts
 * const { header, events } = readNdjson(text);
 * writeFileSync('trace.json', JSON.stringify(toChromeTrace(events, { header })));
 * ```
 *
 * @param events the log's events (from `EventLog.events` or `readNdjson`).
 * @param options the header to keep in `otherData`.
 * @returns the trace; `JSON.stringify` it to write the file.
 */
export function toChromeTrace(
  events: readonly LoggedEvent[],
  options: ChromeTraceOptions = {},
): ChromeTrace {
  const n = events.length;
  const tracks = new Tracks();
  const mmNames = new Map<number, string>();
  for (const e of events) {
    if (e.type === 'sched.spawn') {
      const d = e.data as { id: number; name: string; on: string };
      tracks.spawn(d.id, d.name, d.on);
      tracks.task(d.id, d.on);
    } else if (e.type === 'mm.create') {
      const d = e.data as { mm: number; name: string };
      mmNames.set(d.mm, d.name);
    } else if (e.type === 'sim.start') {
      const d = e.data as { cpus: number; devices: string[] };
      for (let c = 0; c < d.cpus; c++) tracks.context(`cpu${c}`);
      for (const dev of d.devices) tracks.context(dev);
    }
  }
  const where = (track: IntervalTrack, e: LoggedEvent): { pid: number; tid: number } => {
    if (track.kind === 'task') return tracks.task(track.task, e.ctx);
    if (track.kind === 'mm')
      return tracks.lane(tracks.mmName(track.mm, mmNames.get(track.mm)), track.lane);
    return tracks.lane(track.group, track.lane);
  };

  const marks: Mark[][] = Array.from({ length: n + 1 }, () => []);
  const { intervals, paired } = pairIntervals(events);

  // Decide per track which intervals nest (B/E) and which become async (b/e).
  const stacks = new Map<string, { end: number; order: number }[]>();
  const endKey = (iv: Interval): number => (iv.end < 0 ? Number.POSITIVE_INFINITY : iv.end);
  const ends: { order: number; at: number; ev: Omit<TraceEvent, 'ts'> }[] = [];
  let order = 0;
  let asyncId = 1;
  for (const iv of intervals) {
    const e = events[iv.begin]!;
    const { pid, tid } = where(iv.track, e);
    const args = {
      seq: e.seq,
      ...(iv.end >= 0 ? { end_seq: events[iv.end]!.seq } : { unfinished: true }),
    };
    if (iv.begin === iv.end) {
      marks[iv.begin]!.push({
        ev: { name: iv.name, cat: iv.cat, ph: 'i', s: 't', pid, tid, args },
      });
      continue;
    }
    const key = `${pid}|${tid}`;
    let stack = stacks.get(key);
    if (stack === undefined) stacks.set(key, (stack = []));
    while (stack.length > 0 && stack[stack.length - 1]!.end <= iv.begin) stack.pop();
    const top = stack[stack.length - 1];
    const at = iv.end < 0 ? n : iv.end;
    if (top === undefined || endKey(iv) <= top.end) {
      const o = order++;
      stack.push({ end: endKey(iv), order: o });
      marks[iv.begin]!.push({ ev: { name: iv.name, cat: iv.cat, ph: 'B', pid, tid, args } });
      ends.push({ order: o, at, ev: { name: iv.name, cat: iv.cat, ph: 'E', pid, tid } });
    } else {
      const id = asyncId++;
      marks[iv.begin]!.push({ ev: { name: iv.name, cat: iv.cat, ph: 'b', id, pid, tid, args } });
      ends.push({ order: -1, at, ev: { name: iv.name, cat: iv.cat, ph: 'e', id, pid, tid } });
    }
  }
  // At each event, ends go first, innermost (pushed last) first.
  ends.sort((a, b) => a.at - b.at || b.order - a.order);
  const endMarks: Mark[][] = Array.from({ length: n + 1 }, () => []);
  for (const x of ends) endMarks[x.at]!.push({ ev: x.ev });

  // Counters, flows and instants.
  const counters = newCounterState();
  const pendingIpi = new Map<string, number[]>();
  let flowId = 1;
  const counterPid = (group: string): number => {
    if (/^cpu\d+$/.test(group)) return tracks.context(group);
    const m = /^mm#(\d+)$/.exec(group);
    const name = m !== null ? tracks.mmName(Number(m[1]), mmNames.get(Number(m[1]))) : group;
    return tracks.lane(name, 'counters').pid;
  };
  for (let i = 0; i < n; i++) {
    const e = events[i]!;
    const d = (e.data ?? {}) as Record<string, unknown>;
    const at = marks[i]!;
    const self = tracks.task(e.task, e.ctx);
    for (const c of counterUpdates(counters, e)) {
      at.push({
        ev: {
          name: c.name,
          cat: 'counter',
          ph: 'C',
          pid: counterPid(c.group),
          args: { value: c.value },
        },
      });
    }
    switch (e.type) {
      case 'tlb.ipi.send': {
        const key = `${String(d.from)}|${String(d.to)}|${String(d.mm)}`;
        const id = flowId++;
        let q = pendingIpi.get(key);
        if (q === undefined) pendingIpi.set(key, (q = []));
        q.push(id);
        const name = `TLB shootdown IPI → cpu${String(d.to)}`;
        at.push({ ev: { name, cat: 'tlb', ph: 'B', ...self, args: argsOf(e) } });
        at.push({ ev: { name: 'shootdown', cat: 'tlb', ph: 's', id, ...self } });
        at.push({ ev: { name, cat: 'tlb', ph: 'E', ...self } });
        continue;
      }
      case 'tlb.ipi.ack': {
        const key = `${String(d.from)}|${String(d.cpu)}|${String(d.mm)}`;
        const id = pendingIpi.get(key)?.shift();
        const name = `TLB flush for cpu${String(d.from)}`;
        at.push({ ev: { name, cat: 'tlb', ph: 'B', ...self, args: argsOf(e) } });
        if (id !== undefined)
          at.push({ ev: { name: 'shootdown', cat: 'tlb', ph: 'f', bp: 'e', id, ...self } });
        at.push({ ev: { name, cat: 'tlb', ph: 'E', ...self } });
        continue;
      }
      case 'oracle.violation': {
        const args = { ...argsOf(e), task: e.task };
        at.push({
          ev: {
            name: `violation: ${String(d.kind)}`,
            cat: 'violation',
            ph: 'i',
            s: 'g',
            pid: 1,
            tid: 0,
            args,
          },
        });
        at.push({
          ev: {
            name: `violation: ${String(d.kind)}`,
            cat: 'violation',
            ph: 'i',
            s: 't',
            ...self,
            args,
          },
        });
        continue;
      }
      default:
        break;
    }
    if (paired[i] === 0) {
      const cat = e.type.slice(0, Math.max(0, e.type.indexOf('.'))) || e.type;
      at.push({ ev: { name: e.type, cat, ph: 'i', s: 't', ...self, args: argsOf(e) } });
    }
  }

  // Timestamps: step s occupies [s, s + 1); its events are spread evenly in log order, and the
  // marks of one event are spread evenly inside the event's slot (ends, then begins, then the rest).
  const out: TraceEvent[] = [...tracks.meta];
  let i = 0;
  let lastStep = 0;
  while (i < n) {
    const step = Math.max(lastStep, events[i]!.step);
    let j = i;
    while (j < n && Math.max(lastStep, events[j]!.step) === step) j++;
    const count = j - i;
    for (let k = i; k < j; k++) {
      const list = [...endMarks[k]!, ...marks[k]!];
      const slot = (step + (k - i) / count) * STEP_US;
      for (let m = 0; m < list.length; m++) {
        out.push({
          ...list[m]!.ev,
          ts: ns(slot + ((m + 1) / (list.length + 1) / count) * STEP_US),
        });
      }
    }
    lastStep = step;
    i = j;
  }
  const tail = endMarks[n]!;
  for (let m = 0; m < tail.length; m++) {
    out.push({ ...tail[m]!.ev, ts: ns((lastStep + 1 + (m + 1) / (tail.length + 1)) * STEP_US) });
  }
  return {
    traceEvents: out,
    displayTimeUnit: 'ns',
    otherData: {
      format: 'mmnsim-trace',
      version: 1,
      clock:
        'ts = scheduler step × 1000 µs (1 step shows as 1 ms); args.time_ns is the virtual time',
      ...(options.header ?? {}),
    },
  };
}
