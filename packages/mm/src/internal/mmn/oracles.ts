import type { Oracle, OracleContext, SimEvent, Simulation } from '@mmnsim/core';
import { PAGE_SIZE } from '../constants.js';
import type { MmCore } from '../core.js';
import type { MmuNotifierEvent } from '../notifier.js';
import { pteMapsPage, ptePfn } from '../pte.js';
import { SecondaryMmuContribution } from '../secondary.js';
import type { SecondaryMapping, SecondaryMmu } from '../secondary.js';
import { MmService } from '../service.js';
import type { MmuIntervalNotifier, MmuNotifierOps } from './types.js';

/** `0x…` for addresses in messages. */
function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** `[start, end)` in hex. */
function span(start: number, end: number): string {
  return `[${hex(start)}, ${hex(end)})`;
}

/** The task that emitted `e`, for a violation's `task` field. */
function taskOf(ctx: OracleContext, id: number): { id: number; name: string } {
  return { id, name: ctx.scheduler.task(id)?.name ?? '-' };
}

// ---------------------------------------------------------------------------------------------
// Pairing of start and end (invariants 35, 36)

/** One range object with at least one successful start still waiting for its end. */
interface OpenWindow {
  readonly range: number;
  readonly mm: number;
  readonly start: number;
  readonly end: number;
  readonly event: string;
  readonly task: number;
  /** `seq` of each successful start of this range object not yet ended, oldest first. */
  readonly starts: number[];
}

/** A range whose non-blocking start failed, remembered for the task that called it. */
interface FailedRange {
  readonly mm: number;
  readonly start: number;
  readonly end: number;
  /** `seq` of the failed `mmn.invalidate_start`. */
  readonly seq: number;
  readonly result: number;
}

/**
 * Options of {@link NotifierPairingOracle} (invariants 35, 36).
 *
 * ## Example
 * ```ts
 * sim.addOracle(new NotifierPairingOracle({ checkPtes: false })); // pairing only
 * ```
 */
export interface NotifierPairingOptions {
  /**
   * Also check the PTE half of invariant 36: after its non-blocking start failed, the task that
   * called it must not zap or replace a mapped PTE of that range unless a later successful start
   * of its own covers it (default true). Costs one `mm.pte.set` event per PTE change.
   */
  readonly checkPtes?: boolean;
}

/**
 * Checks that invalidation windows are opened and closed in pairs (notifier-core.md §9,
 * invariants 35 and 36; §2.6, §4.6).
 *
 * Every `mmu_notifier_invalidate_range_start` (blocking or not) that returned 0 must be followed
 * by exactly one `mmu_notifier_invalidate_range_end` of the **same range object** (events carry
 * its identity, `range`), and a start that returned non-zero (-EAGAIN from the non-blocking
 * wrapper) must be followed by none. Reported kinds:
 * - `mmn-end-without-start`: an end whose range object was never started — typically a second
 *   `NotifierRange` built for the end (invariant 35: the end must get the start's object, whose
 *   blockable bit the start wrapper set);
 * - `mmn-end-twice`: a second end for one successful start (invariant 35);
 * - `mmn-end-after-failed-start`: an end after the non-blocking start of that object failed
 *   (invariant 36);
 * - `mmn-pte-change-after-failed-start`: the task whose non-blocking start failed then zapped
 *   or replaced a mapped PTE in that range outside any window of its own (invariant 36; with
 *   {@link NotifierPairingOptions.checkPtes});
 * - `mmn-window-not-closed` (at the end of the run): a successful start whose end never came.
 *   Checked only when the run ended normally (`sim.end` reason `done`): a run stopped early by
 *   another violation, a deadlock or the step budget may leave windows open legitimately.
 *
 * Invariant 35's "same object" half follows from pairing by identity: an end with a different
 * object is an unpaired end, and the start it was meant for stays open.
 *
 * ## Example
 * ```ts
 * const sim = Simulation.create({ seed: 1, plugins: [mmPlugin()], stopOnViolation: false });
 * sim.addOracle(new NotifierPairingOracle());
 * sim.spawn('bad', 0, function* () {
 *   const r = new NotifierRange('CLEAR', mm, a, a + PAGE_SIZE);
 *   yield* mmn.invalidateRangeStart(r);
 *   yield* mmn.invalidateRangeEnd(new NotifierRange('CLEAR', mm, a, a + PAGE_SIZE));
 * });
 * sim.run(); // mmn-end-without-start, then mmn-window-not-closed
 * ```
 *
 * @see mmu_notifier_invalidate_range_end
 */
export class NotifierPairingOracle implements Oracle {
  /** See {@link Oracle.id}. */
  readonly id = 'mmn-pairing';
  private readonly checkPtes: boolean;
  private open = new Map<number, OpenWindow>();
  private closed = new Map<number, number>();
  private failed = new Map<number, number>();
  private failedByTask = new Map<number, FailedRange[]>();
  private endReason = '';

  /** @param options see {@link NotifierPairingOptions}. */
  constructor(options: NotifierPairingOptions = {}) {
    this.checkPtes = options.checkPtes ?? true;
  }

  /** See {@link Oracle.attach}. */
  attach(ctx: OracleContext): void {
    this.open = new Map();
    this.closed = new Map();
    this.failed = new Map();
    this.failedByTask = new Map();
    this.endReason = '';
    const bus = ctx.bus;
    bus.on('mmn.invalidate_start').subscribe((e) => this.onStart(e));
    bus.on('mmn.invalidate_end').subscribe((e) => this.onEnd(ctx, e));
    bus.on('sim.end').subscribe((e) => {
      this.endReason = e.data.reason;
    });
    if (this.checkPtes) bus.on('mm.pte.set').subscribe((e) => this.onPte(ctx, e));
  }

  /** See {@link Oracle.finish}: every window still open after a normal end is reported. */
  finish(ctx: OracleContext): void {
    if (this.endReason !== 'done') return;
    for (const w of this.open.values()) {
      for (const seq of w.starts) {
        ctx.report({
          kind: 'mmn-window-not-closed',
          message: `invalidate_range_start(${w.event} ${span(w.start, w.end)}) on mm#${w.mm} (range #${w.range}) returned 0 but the run ended without its invalidate_range_end: every successful start is paired with exactly one end of the same range object (invariant 35)`,
          evidence: [seq],
          task: taskOf(ctx, w.task),
        });
      }
    }
  }

  private onStart(e: SimEvent<'mmn.invalidate_start'>): void {
    const d = e.data;
    if (d.result !== 0) {
      this.failed.set(d.range, e.seq);
      if (this.checkPtes) {
        let list = this.failedByTask.get(e.task);
        if (list === undefined) {
          list = [];
          this.failedByTask.set(e.task, list);
        }
        const i = list.findIndex((f) => f.mm === d.mm && f.start === d.start && f.end === d.end);
        const f: FailedRange = {
          mm: d.mm,
          start: d.start,
          end: d.end,
          seq: e.seq,
          result: d.result,
        };
        if (i >= 0) list[i] = f;
        else list.push(f);
      }
      return;
    }
    this.failed.delete(d.range);
    this.closed.delete(d.range);
    const w = this.open.get(d.range);
    if (w !== undefined) w.starts.push(e.seq);
    else {
      this.open.set(d.range, {
        range: d.range,
        mm: d.mm,
        start: d.start,
        end: d.end,
        event: d.event,
        task: e.task,
        starts: [e.seq],
      });
    }
    // The caller moved on: a successful window of its own now covers what had failed.
    const list = this.failedByTask.get(e.task);
    if (list !== undefined) {
      const rest = list.filter((f) => !(f.mm === d.mm && d.start <= f.start && f.end <= d.end));
      if (rest.length === 0) this.failedByTask.delete(e.task);
      else this.failedByTask.set(e.task, rest);
    }
  }

  private onEnd(ctx: OracleContext, e: SimEvent<'mmn.invalidate_end'>): void {
    const d = e.data;
    const what = `invalidate_range_end(${d.event} ${span(d.start, d.end)}) on mm#${d.mm}`;
    const w = d.range === 0 ? undefined : this.open.get(d.range);
    if (w !== undefined) {
      w.starts.shift();
      if (w.starts.length === 0) {
        this.open.delete(d.range);
        this.closed.set(d.range, e.seq);
      }
      return;
    }
    const failedAt = this.failed.get(d.range);
    if (failedAt !== undefined) {
      ctx.report({
        kind: 'mmn-end-after-failed-start',
        message: `${what} after the non-blocking invalidate_range_start of the same range object failed: a caller whose start returned non-zero must not call end (invariant 36)`,
        evidence: [failedAt, e.seq],
      });
      return;
    }
    const endedAt = this.closed.get(d.range);
    if (endedAt !== undefined) {
      ctx.report({
        kind: 'mmn-end-twice',
        message: `${what}: range #${d.range} was already ended: every successful start is paired with exactly one end (invariant 35)`,
        evidence: [endedAt, e.seq],
      });
      return;
    }
    ctx.report({
      kind: 'mmn-end-without-start',
      message: `${what} with a range object that no invalidate_range_start opened: end must be called with the same range object its start got (invariant 35)`,
      evidence: [e.seq],
    });
  }

  private onPte(ctx: OracleContext, e: SimEvent<'mm.pte.set'>): void {
    if (this.failedByTask.size === 0) return;
    const list = this.failedByTask.get(e.task);
    if (list === undefined) return;
    const { mm, va, old, pte } = e.data;
    // Installing a PTE, or changing one that keeps mapping the same page (protection, young,
    // dirty), needs no invalidation; removing or replacing a mapped page does.
    if (!pteMapsPage(old) || (pteMapsPage(pte) && ptePfn(pte) === ptePfn(old))) return;
    const f = list.find((r) => r.mm === mm && va >= r.start && va < r.end);
    if (f === undefined) return;
    for (const w of this.open.values()) {
      if (w.task === e.task && w.mm === mm && va >= w.start && va < w.end) return;
    }
    ctx.report({
      kind: 'mmn-pte-change-after-failed-start',
      message: `the PTE of ${hex(va)} on mm#${mm} was zapped or replaced after invalidate_range_start_nonblock(${span(f.start, f.end)}) returned ${f.result}: on a failed non-blocking start the caller must leave the range alone (invariant 36)`,
      evidence: [f.seq, e.seq],
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Secondary MMUs: stale mappings and use-after-free (invariants 17, 18, 29, 48)

/**
 * An interval subscription through which one secondary MMU mirrors an mm: what
 * {@link SecondaryMmuOracle} checks invariant 48 against (device mappings only inside the
 * subscription's interval).
 *
 * ## Example
 * ```ts
 * const intervals: SecondaryInterval[] = [{ mmu: 'dmirror0', sub: dev.sub }];
 * ```
 */
export interface SecondaryInterval {
  /** The secondary MMU's name (as in its `smmu.*` events). */
  readonly mmu: string;
  /** Its subscription; its live `mm`, `start` and `last` are read at each mapping. */
  readonly sub: MmuIntervalNotifier;
}

/**
 * Options of {@link SecondaryMmuOracle} (invariants 17, 18, 29, 48).
 *
 * ## Example
 * ```ts
 * const opts: SecondaryMmuOracleOptions = {
 *   mmus: sim.getAll(SecondaryMmuContribution),
 *   core: sim.get(MmService).core,
 *   intervals: [{ mmu: 'dmirror0', sub: dev.sub }],
 *   skipEvents: ['MIGRATE'],
 * };
 * ```
 */
export interface SecondaryMmuOracleOptions {
  /**
   * The secondary MMUs to inspect (`sim.getAll(SecondaryMmuContribution)`, or the test's own
   * list). Iterated again whenever needed, so an array filled after construction works. MMUs
   * not listed are unknown: their kind is unknown, so the window checks skip them.
   */
  readonly mmus?: Iterable<SecondaryMmu>;
  /**
   * The memory model, for exact frame state (free, generation, pins) and CPU PTE lookups.
   * Without it, frame state is followed from `mm.frame.alloc`/`mm.frame.free` events, and frames
   * allocated before the oracle was attached are not checked.
   */
  readonly core?: MmCore;
  /**
   * Interval subscriptions per MMU, for invariant 48: an MMU listed here may map only addresses
   * inside one of its own subscriptions' intervals on that mm. MMUs not listed are not checked.
   */
  readonly intervals?: Iterable<SecondaryInterval>;
  /**
   * What a mapping that is still there when a start returned is reported for:
   * `'any'` (default: invariant 29's strong form — a shadow MMU drops all its mappings of the
   * range before its callback returns) or `'stale'` (only mappings whose frame is already free
   * or reallocated, or — with {@link SecondaryMmuOracleOptions.core} — no longer what the CPU
   * maps at that address; for subscribers that hold page references and drop them in end,
   * notifier-core.md §2.5).
   */
  readonly survivors?: 'any' | 'stale';
  /**
   * Invalidation events a driver legitimately ignores (as `lib/test_hmm.c` ignores MIGRATE of
   * its own device pages): no window check for them. Default none.
   */
  readonly skipEvents?: readonly MmuNotifierEvent[];
}

/** A translation as the `smmu.map` events described it. */
interface IndexedMapping {
  readonly mmu: string;
  readonly mm: number;
  readonly va: number;
  readonly pfn: number;
  readonly gen: number;
  /** `seq` of its `smmu.map` event. */
  readonly seq: number;
}

/** An open window as this oracle sees it. */
interface SmmuWindow {
  readonly range: number;
  readonly mm: number;
  readonly start: number;
  readonly end: number;
  readonly event: string;
  /** `seq` of the start event. */
  readonly seq: number;
  /** Successful starts of the object not yet ended. */
  opens: number;
  /**
   * True once its end pass has visibly begun (an `invalidate_range_end` callback returned, or
   * the mm's interval machinery left Full): subscribers may map again.
   */
  ending: boolean;
}

/**
 * Checks what secondary MMUs hold against what the primary MMU does (notifier-core.md §9,
 * invariants 17, 18, 29 and 48; §2.5, §4.5), from the `smmu.*` events and the
 * {@link SecondaryMmu} objects:
 *
 * - `secondary-map-in-window` (17): a `'shadow'` MMU created a translation for an address inside
 *   an open invalidation window of the same mm (from the `mmn.invalidate_start` that returned 0
 *   until the end pass visibly begins: the window's first `invalidate_range_end` callback
 *   returned, the mm's interval machinery left Full, or the end returned). `'tlb'` MMUs fill
 *   from the CPU page tables and are exempt.
 * - `secondary-mapping-survived-start` (29, 17): when a start returned 0, a `'shadow'` MMU still
 *   maps an address of the range. At that point the CPU PTEs have not changed yet, so which of
 *   them the window will replace is unknown; what invariant 29 (strong form) and the subscriber
 *   duty of §2.5 allow to check is that every subscriber dropped its mappings of the whole range
 *   before its callback returned — pages may be freed before end. See
 *   {@link SecondaryMmuOracleOptions.survivors} for subscribers that hold page references.
 * - `secondary-mapping-to-freed-frame` (29, 18): a frame was freed while a secondary MMU (any
 *   kind) still maps that allocation of it (same generation), or a translation was created to a
 *   frame that is already free.
 * - `secondary-use-after-free` (29): a device access through a translation whose frame is free,
 *   or was reallocated since the translation was made (generation differs).
 * - `secondary-map-outside-interval` (48): an MMU with listed
 *   {@link SecondaryMmuOracleOptions.intervals} mapped an address outside all of its intervals on
 *   that mm.
 *
 * Every check is sound for a driver that follows §4.4 (or a classic subscriber that counts its
 * open windows, as KVM does): it reports only what such a driver never does.
 *
 * ## Example
 * ```ts
 * const dev = new MyDevice(sim);                      // implements SecondaryMmu, kind 'shadow'
 * sim.addOracle(new SecondaryMmuOracle({
 *   mmus: [dev],
 *   core: sim.get(MmService).core,
 *   intervals: [{ mmu: dev.name, sub: dev.sub }],
 * }));
 * ```
 *
 * @see mmu_interval_read_retry
 * @see mmu_notifier_ops.invalidate_range_start
 */
export class SecondaryMmuOracle implements Oracle {
  /** See {@link Oracle.id}. */
  readonly id = 'secondary-mmu';
  private readonly mmus: Iterable<SecondaryMmu>;
  private readonly core: MmCore | null;
  private readonly intervals: Iterable<SecondaryInterval>;
  private readonly stale: boolean;
  private readonly skip: ReadonlySet<string>;
  private byName = new Map<string, SecondaryMmu>();
  private index = new Map<string, IndexedMapping>();
  private byPfn = new Map<number, Set<string>>();
  private windows = new Map<number, SmmuWindow>();
  private gens: number[] = [];
  private free: boolean[] = [];

  /** @param options see {@link SecondaryMmuOracleOptions}. */
  constructor(options: SecondaryMmuOracleOptions = {}) {
    this.mmus = options.mmus ?? [];
    this.core = options.core ?? null;
    this.intervals = options.intervals ?? [];
    this.stale = options.survivors === 'stale';
    this.skip = new Set(options.skipEvents ?? []);
  }

  /** See {@link Oracle.attach}. */
  attach(ctx: OracleContext): void {
    this.byName = new Map();
    this.index = new Map();
    this.byPfn = new Map();
    this.windows = new Map();
    this.gens = [];
    this.free = [];
    const bus = ctx.bus;
    if (this.core === null) {
      bus.on('mm.frame.alloc').subscribe((e) => {
        this.gens[e.data.pfn] = e.data.gen;
        this.free[e.data.pfn] = false;
      });
    }
    bus.on('mm.frame.free').subscribe((e) => this.onFree(ctx, e));
    bus.on('smmu.map').subscribe((e) => this.onMap(ctx, e));
    bus.on('smmu.unmap').subscribe((e) => this.forget(`${e.data.mmu}|${e.data.mm}|${e.data.va}`));
    bus.on('smmu.access').subscribe((e) => this.onAccess(ctx, e));
    bus.on('mmn.invalidate_start').subscribe((e) => this.onStart(ctx, e));
    bus.on('mmn.invalidate_end').subscribe((e) => {
      const w = this.windows.get(e.data.range);
      if (w !== undefined && --w.opens <= 0) this.windows.delete(e.data.range);
    });
    bus.on('mmn.callback').subscribe((e) => {
      if (e.data.op !== 'invalidate_range_end') return;
      const w = this.windows.get(e.data.range);
      if (w !== undefined) w.ending = true;
    });
    bus.on('mmn.itree.state').subscribe((e) => {
      if (e.data.active !== 0) return;
      // Every window of the mm has begun its end: interval subscribers may map again.
      for (const w of this.windows.values()) if (w.mm === e.data.mm) w.ending = true;
    });
  }

  // --- frame state ----------------------------------------------------------------------------

  /** True if `pfn` is free, false if allocated, undefined if unknown. */
  private isFree(pfn: number): boolean | undefined {
    if (this.core !== null) return this.core.phys.isFree(pfn);
    return this.free[pfn];
  }

  /** The current (or, for a free frame, last) allocation generation of `pfn`, if known. */
  private genOf(pfn: number): number | undefined {
    if (this.core !== null) return this.core.phys.generation[pfn];
    return this.gens[pfn];
  }

  private mmu(name: string): SecondaryMmu | undefined {
    let m = this.byName.get(name);
    if (m === undefined) {
      for (const x of this.mmus) this.byName.set(x.name, x);
      m = this.byName.get(name);
    }
    return m;
  }

  // --- the index of translations ------------------------------------------------------------

  private forget(key: string): void {
    const old = this.index.get(key);
    if (old === undefined) return;
    this.index.delete(key);
    const set = this.byPfn.get(old.pfn);
    if (set !== undefined) {
      set.delete(key);
      if (set.size === 0) this.byPfn.delete(old.pfn);
    }
  }

  private onMap(ctx: OracleContext, e: SimEvent<'smmu.map'>): void {
    const d = e.data;
    const key = `${d.mmu}|${d.mm}|${d.va}`;
    this.forget(key);
    this.index.set(key, { mmu: d.mmu, mm: d.mm, va: d.va, pfn: d.pfn, gen: d.gen, seq: e.seq });
    let set = this.byPfn.get(d.pfn);
    if (set === undefined) {
      set = new Set();
      this.byPfn.set(d.pfn, set);
    }
    set.add(key);

    // A translation to a frame that is already free: whatever the device reaches next through
    // it belongs to the frame's next owner. A correct driver cannot get here: freeing a mapped
    // page needs an invalidation first, which makes its read_retry (or in-progress check) fail.
    if (this.isFree(d.pfn) === true) {
      ctx.report({
        kind: 'secondary-mapping-to-freed-frame',
        message: `${d.mmu} mapped ${hex(d.va)} of mm#${d.mm} to frame ${d.pfn}, which is already free: it installed a translation from a snapshot an invalidation had already made stale (invariant 29)`,
        evidence: [e.seq],
      });
    }

    // (e) invariant 48: only inside the MMU's own intervals.
    let listed = false;
    let inside = false;
    const mine: string[] = [];
    for (const iv of this.intervals) {
      if (iv.mmu !== d.mmu) continue;
      listed = true;
      const s = iv.sub;
      if (s.mm === null || s.mm.id !== d.mm) continue;
      mine.push(`[${hex(s.start)}, ${hex(s.last)}]`);
      if (d.va >= s.start && d.va <= s.last) inside = true;
    }
    if (listed && !inside) {
      ctx.report({
        kind: 'secondary-map-outside-interval',
        message: `${d.mmu} mapped ${hex(d.va)} of mm#${d.mm} (pfn ${d.pfn}), outside its interval subscription${mine.length === 0 ? ' (it has none on that mm)' : `s ${mine.join(', ')}`}: invalidations there never reach it, so the mapping would go stale (invariant 48)`,
        evidence: [e.seq],
      });
    }

    // (a) invariant 17: no new translation inside an open window.
    if (this.mmu(d.mmu)?.kind !== 'shadow') return;
    for (const w of this.windows.values()) {
      if (w.ending || w.mm !== d.mm || d.va >= w.end || d.va + PAGE_SIZE <= w.start) continue;
      ctx.report({
        kind: 'secondary-map-in-window',
        message: `${d.mmu} mapped ${hex(d.va)} → pfn ${d.pfn} of mm#${d.mm} inside the open invalidation window ${w.event} ${span(w.start, w.end)} (range #${w.range}): between invalidate_range_start and the matching end a subscriber must not establish mappings in the range (invariant 17)`,
        evidence: [w.seq, e.seq],
      });
      return;
    }
  }

  // --- checks ---------------------------------------------------------------------------------

  private onStart(ctx: OracleContext, e: SimEvent<'mmn.invalidate_start'>): void {
    const d = e.data;
    if (d.result !== 0 || this.skip.has(d.event)) return;
    const w = this.windows.get(d.range);
    if (w !== undefined) {
      w.opens++;
      w.ending = false;
    } else {
      this.windows.set(d.range, {
        range: d.range,
        mm: d.mm,
        start: d.start,
        end: d.end,
        event: d.event,
        seq: e.seq,
        opens: 1,
        ending: false,
      });
    }
    // (b) invariant 29 (strong form): nothing of the range survives the callbacks.
    for (const mmu of this.mmus) {
      if (mmu.kind !== 'shadow') continue;
      let first: SecondaryMapping | null = null;
      let n = 0;
      for (const m of mmu.mappings()) {
        if (m.mm.id !== d.mm || m.va >= d.end || m.va + PAGE_SIZE <= d.start) continue;
        if (this.stale && !this.isStale(m)) continue;
        if (first === null) first = m;
        n++;
      }
      if (first === null) continue;
      const mapSeq = this.index.get(`${mmu.name}|${d.mm}|${first.va}`)?.seq;
      ctx.report({
        kind: 'secondary-mapping-survived-start',
        message: `${mmu.name} still maps ${hex(first.va)} → pfn ${first.pfn}${n > 1 ? ` (and ${n - 1} more page${n > 2 ? 's' : ''})` : ''} of mm#${d.mm} after invalidate_range_start(${d.event} ${span(d.start, d.end)}) returned: a subscriber must drop its mappings of the range before its start/invalidate callback returns, since the pages may be freed before end (invariants 17, 29)`,
        evidence: mapSeq !== undefined && mapSeq < e.seq ? [mapSeq, e.seq] : [e.seq],
      });
    }
  }

  /** For `survivors: 'stale'`: the frame is gone, or the CPU no longer maps it at that address. */
  private isStale(m: SecondaryMapping): boolean {
    if (this.isFree(m.pfn) === true) return true;
    const g = this.genOf(m.pfn);
    if (g !== undefined && g !== m.gen) return true;
    if (this.core === null || m.mm.exited) return false;
    const pte = this.core.pt.pte(m.mm, m.va);
    return !pteMapsPage(pte) || ptePfn(pte) !== m.pfn;
  }

  private onFree(ctx: OracleContext, e: SimEvent<'mm.frame.free'>): void {
    const pfn = e.data.pfn;
    if (this.core === null) this.free[pfn] = true;
    const keys = this.byPfn.get(pfn);
    if (keys === undefined) return;
    const gen = this.genOf(pfn);
    for (const key of [...keys]) {
      const m = this.index.get(key)!;
      if (gen !== undefined && m.gen !== gen) continue;
      if (!this.confirm(m)) {
        this.forget(key); // the MMU dropped it without an smmu.unmap event
        continue;
      }
      ctx.report({
        kind: 'secondary-mapping-to-freed-frame',
        message: `frame ${pfn} was freed while ${m.mmu} still maps it at ${hex(m.va)} of mm#${m.mm}: the secondary MMU missed or ignored an invalidation, and the next owner of the frame is reachable through it (invariants 18, 29)`,
        evidence: [m.seq, e.seq],
      });
      return;
    }
  }

  /** True if the MMU object (when known) still holds the indexed translation. */
  private confirm(m: IndexedMapping): boolean {
    const mmu = this.mmu(m.mmu);
    if (mmu === undefined) return true;
    for (const x of mmu.mappings()) {
      if (x.mm.id === m.mm && x.va === m.va && x.pfn === m.pfn && x.gen === m.gen) return true;
    }
    return false;
  }

  private onAccess(ctx: OracleContext, e: SimEvent<'smmu.access'>): void {
    const d = e.data;
    const free = this.isFree(d.pfn);
    const gen = this.genOf(d.pfn);
    let why: string;
    if (free === true) why = 'is free';
    else if (gen !== undefined && gen !== d.gen)
      why = `was freed and reallocated (generation ${d.gen} → ${gen})`;
    else return;
    const mapSeq = this.index.get(`${d.mmu}|${d.mm}|${d.va}`)?.seq;
    ctx.report({
      kind: 'secondary-use-after-free',
      message: `${d.mmu} ${d.write ? 'wrote' : 'read'} ${hex(d.va)} of mm#${d.mm} through its translation to frame ${d.pfn}, which ${why}: a stale secondary mapping outlived its invalidation (invariant 29)`,
      evidence: mapSeq !== undefined ? [mapSeq, e.seq] : [e.seq],
    });
  }
}

// ---------------------------------------------------------------------------------------------
// get/put and module lifetime (invariants 44, 45)

/** What the lifetime oracle knows about one classic subscription. */
interface SubLife {
  readonly name: string;
  readonly mm: number;
  users: number;
  /** `listed` (registered), `gone` (unregistered or freed), `pending` (last put, free queued). */
  state: 'listed' | 'pending' | 'gone';
  /** `seq` of the event that last changed it. */
  seq: number;
}

/**
 * Checks the get/put lifetime of classic subscriptions against the life of the module that
 * provides their ops (notifier-core.md §3.3; §9 invariants 44 and 45).
 *
 * A module's ops may be called until its subscriptions are gone: after the last
 * `mmu_notifier_put`, `free_notifier` still runs from an SRCU callback, so a module that used
 * put must call `mmu_notifier_synchronize` before it unloads. The simulation has no modules; a
 * test declares the moment a module unloads with {@link NotifierLifetimeOracle.unload}, and this
 * oracle reports:
 * - `mmn-get-put-unbalanced` (44): at unload, a subscription with these ops still has users
 *   (a `get` without its `put`) or is still registered;
 * - `mmn-unload-before-synchronize` (45): at unload, the last put's `free_notifier` has not run
 *   yet (no `mmu_notifier_synchronize` since);
 * - `mmn-free-after-unload` (45): `free_notifier` of an unloaded module's ops ran — a call into
 *   unloaded code.
 *
 * A put with `users == 0` is reported by the subsystem itself (`mmn-put-zero-users`).
 *
 * ## Example
 * ```ts
 * const life = new NotifierLifetimeOracle();
 * sim.addOracle(life);
 * sim.spawn('module', 0, function* () {
 *   const sub = yield* mmn.get(ops, proc.mm);
 *   mmn.put(sub as MmuNotifier);
 *   yield* mmn.synchronize();  // without it: mmn-unload-before-synchronize
 *   life.unload('mydrv', [ops]);
 * });
 * ```
 *
 * @see mmu_notifier_synchronize
 * @see mmu_notifier_put
 */
export class NotifierLifetimeOracle implements Oracle {
  /** See {@link Oracle.id}. */
  readonly id = 'mmn-lifetime';
  private ctx: OracleContext | null = null;
  private subs = new Map<number, SubLife>();
  private unloaded = new Map<string, string>();

  /** See {@link Oracle.attach}. */
  attach(ctx: OracleContext): void {
    this.ctx = ctx;
    this.subs = new Map();
    this.unloaded = new Map();
    const bus = ctx.bus;
    bus.on('mmn.register').subscribe((e) => {
      if (e.data.kind !== 'list') return;
      this.subs.set(e.data.sub, {
        name: e.data.name,
        mm: e.data.mm,
        users: 1,
        state: 'listed',
        seq: e.seq,
      });
    });
    bus.on('mmn.get').subscribe((e) => this.update(e.data.sub, e.data.users, null, e.seq));
    bus
      .on('mmn.put')
      .subscribe((e) =>
        this.update(e.data.sub, e.data.users, e.data.users === 0 ? 'pending' : null, e.seq),
      );
    bus.on('mmn.unregister').subscribe((e) => this.update(e.data.sub, null, 'gone', e.seq));
    bus.on('mmn.free').subscribe((e) => {
      this.update(e.data.sub, null, 'gone', e.seq);
      const module = this.unloaded.get(e.data.name);
      if (module !== undefined) {
        ctx.report({
          kind: 'mmn-free-after-unload',
          message: `free_notifier of ${e.data.name} ran from its SRCU callback after module ${module} was unloaded: a call into unloaded code (invariant 45: call mmu_notifier_synchronize before unloading)`,
          evidence: [e.seq],
        });
      }
    });
  }

  private update(sub: number, users: number | null, state: SubLife['state'] | null, seq: number) {
    const s = this.subs.get(sub);
    if (s === undefined) return;
    if (users !== null) s.users = users;
    if (state !== null) s.state = state;
    s.seq = seq;
  }

  /**
   * Declares that module `module`, which provides `ops` (or ops names), unloads now (its
   * `module_exit` returned). Call it from the task that unloads; violations are reported at once.
   */
  unload(module: string, ops: readonly (MmuNotifierOps | string)[]): void {
    const ctx = this.ctx;
    if (ctx === null) throw new Error('NotifierLifetimeOracle.unload: the oracle is not attached');
    const names = new Set(ops.map((o) => (typeof o === 'string' ? o : o.name)));
    for (const n of names) this.unloaded.set(n, module);
    for (const [id, s] of this.subs) {
      if (!names.has(s.name) || s.state === 'gone') continue;
      if (s.state === 'pending') {
        ctx.report({
          kind: 'mmn-unload-before-synchronize',
          message: `module ${module} unloads while the free_notifier of ${s.name} (subscription #${id} on mm#${s.mm}) is still queued after its last mmu_notifier_put: call mmu_notifier_synchronize before unloading (invariant 45)`,
          evidence: [s.seq],
        });
      } else {
        ctx.report({
          kind: 'mmn-get-put-unbalanced',
          message: `module ${module} unloads while subscription #${id} of ${s.name} on mm#${s.mm} still has ${s.users} user(s): each mmu_notifier_get must be paired with one mmu_notifier_put (or the subscription unregistered) before its ops go away (invariant 44)`,
          evidence: [s.seq],
        });
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * The notifier oracles of this module, ready to attach: {@link NotifierPairingOracle},
 * {@link SecondaryMmuOracle} and {@link NotifierLifetimeOracle} (use
 * {@link NotifierLifetimeOracle.unload} through the returned instance to check module unloads).
 *
 * With `sim`, the secondary-MMU oracle inspects every {@link SecondaryMmuContribution} and
 * reads frame state from the simulation's memory model (`MmService`, which must be bound — the
 * `mm` plugin binds it); `secondary` overrides or extends those options.
 *
 * ## Example
 * ```ts
 * for (const o of notifierOracles(sim, { intervals: [{ mmu: dev.name, sub: dev.sub }] }))
 *   sim.addOracle(o);
 * ```
 *
 * @param sim the simulation whose secondary MMUs and memory model to use (optional).
 * @param secondary options of the {@link SecondaryMmuOracle}.
 * @returns the three oracles, pairing first.
 */
export function notifierOracles(
  sim?: Simulation,
  secondary: SecondaryMmuOracleOptions = {},
): [NotifierPairingOracle, SecondaryMmuOracle, NotifierLifetimeOracle] {
  const opts: SecondaryMmuOracleOptions =
    sim === undefined
      ? secondary
      : {
          mmus: sim.getAll(SecondaryMmuContribution),
          core: sim.get(MmService).core,
          ...secondary,
        };
  return [new NotifierPairingOracle(), new SecondaryMmuOracle(opts), new NotifierLifetimeOracle()];
}
