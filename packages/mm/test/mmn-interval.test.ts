// The interval-notifier protocol of the MMU notifier subsystem (notifier-core.md §4, invariants
// 19–34): the Idle/Partial/Full state machine, the collision sequence, the deferred list,
// read_begin/read_retry/set_seq, remove, the exit-time RELEASE pass and the non-blockable path.
//
// Windows are opened directly with NotifierRange from their own task, under mmap_lock for read
// like a real caller, so each stays open until the test closes it. Drivers insert and remove from
// tasks that hold no mmap_lock (mmu_interval_notifier_insert may take it).
import { describe, expect, it } from '@jest/globals';
import { Completion, Errno, Mutex, Simulation } from '@mmnsim/core';
import type { RunResult, StrategySpec, TaskGen } from '@mmnsim/core';
import {
  HmmPfn,
  hmmPfnToPfn,
  hmmRangeFault,
  Map_,
  mmgetNotZero,
  mmPlugin,
  mmput,
  MmService,
  MmuIntervalNotifier,
  MmuNotifier,
  MmuNotifierSubsystem,
  NotifierRange,
  PAGE_SIZE,
  Prot,
  ptePfn,
  ptePresent,
  TASK_SIZE,
} from '@mmnsim/mm';
import type {
  HmmRange,
  MmuNotifierEvent,
  MmuNotifierOps,
  MmuNotifierSubscriptions,
  Process,
} from '@mmnsim/mm';
import { eventList, ofType } from './helpers.js';
import type { Ev } from './helpers.js';

const MB = 0x100000;

/** One call of an interval subscriber's `invalidate`, with the machinery's state at that moment. */
interface Call {
  sub: string;
  event: MmuNotifierEvent;
  start: number;
  end: number;
  blockable: boolean;
  curSeq: number;
  /** `invalidate_seq` when the callback ran. */
  S: number;
  /** `active_invalidate_ranges` when the callback ran. */
  A: number;
}

interface World {
  sim: Simulation;
  mmn: MmuNotifierSubsystem;
  svc: MmService;
  proc: Process;
  /** The driver lock every test subscriber takes around set_seq (and read_retry). */
  lock: Mutex;
  calls: Call[];
}

function world(
  opts: { cpus?: number; stopOnViolation?: boolean; seed?: number; strategy?: StrategySpec } = {},
): World {
  const sim = Simulation.create({
    seed: opts.seed ?? 1,
    cpus: opts.cpus ?? 2,
    strategy: opts.strategy ?? 'round-robin',
    stopOnViolation: opts.stopOnViolation ?? true,
    plugins: [mmPlugin({ totalFrames: 1024 })],
  });
  const svc = sim.get(MmService);
  return {
    sim,
    mmn: sim.get(MmuNotifierSubsystem),
    svc,
    proc: svc.createProcess('app'),
    lock: new Mutex(sim.kernel, 'drv'),
    calls: [],
  };
}

function subsOf(w: World): MmuNotifierSubscriptions {
  const s = w.mmn.subscriptions(w.proc.mm);
  if (s === null) throw new Error('no notifier container on the mm');
  return s;
}

/** Spins (scheduling points only, no sleep) until `cond` holds. */
function* until(w: World, cond: () => boolean): TaskGen<void> {
  while (!cond()) yield* w.sim.scheduler.preempt();
}

/**
 * A §4.4-style interval subscriber: takes the driver lock (trylock when not blockable, false if
 * that fails), records the call, set_seq, unlocks. `fail` makes it return false without doing
 * anything (it "would have had to sleep"); `after` runs after the unlock, still inside the callback.
 */
function driverSub(
  w: World,
  name: string,
  opts: {
    fail?: (range: NotifierRange) => boolean;
    after?: (range: NotifierRange, curSeq: number) => TaskGen<void>;
  } = {},
): MmuIntervalNotifier {
  const { mmn, lock, calls } = w;
  return new MmuIntervalNotifier({
    name,
    *invalidate(sub, range, curSeq) {
      const s = mmn.subscriptions(range.mm)!;
      const rec: Call = {
        sub: name,
        event: range.event,
        start: range.start,
        end: range.end,
        blockable: range.blockable,
        curSeq,
        S: s.invalidateSeq,
        A: s.activeInvalidateRanges,
      };
      if (opts.fail?.(range) === true) {
        calls.push({ ...rec, sub: `${name}:false` });
        return false;
      }
      if (range.blockable) yield* lock.lock();
      else if (!lock.tryLock()) return false;
      calls.push(rec);
      mmn.setSeq(sub, curSeq);
      lock.unlock();
      if (opts.after !== undefined) yield* opts.after(range, curSeq);
      return true;
    },
  });
}

/** A window held open by its own task (under mmap_lock for read) until `close()`. */
interface Win {
  readonly range: NotifierRange;
  opened: boolean;
  closed: boolean;
  result: number;
  close(): void;
}

function spawnWindow(
  w: World,
  cpu: number,
  start: number,
  end: number,
  opts: { event?: MmuNotifierEvent; nonblock?: boolean } = {},
): Win {
  const mm = w.proc.mm;
  let shouldClose = false;
  const win: Win = {
    range: new NotifierRange(opts.event ?? 'CLEAR', mm, start, end),
    opened: false,
    closed: false,
    result: 0,
    close: () => {
      shouldClose = true;
    },
  };
  w.sim.spawn(`win[${start.toString(16)},${end.toString(16)})`, cpu, function* () {
    yield* mm.mmapLock.downRead();
    win.result =
      opts.nonblock === true
        ? yield* w.mmn.invalidateRangeStartNonblock(win.range)
        : yield* w.mmn.invalidateRangeStart(win.range);
    win.opened = true;
    yield* until(w, () => shouldClose);
    // After a failed non-blocking start the caller must not call end (invariant 36); the
    // blocking start is void in the kernel, so its caller always ends the window.
    if (opts.nonblock !== true || win.result === 0) yield* w.mmn.invalidateRangeEnd(win.range);
    mm.mmapLock.upRead();
    win.closed = true;
  });
  return win;
}

/** Opens a window from its own task and waits until its start returned. */
function* openWin(
  w: World,
  cpu: number,
  start: number,
  end: number,
  opts: { event?: MmuNotifierEvent; nonblock?: boolean } = {},
): TaskGen<Win> {
  const win = spawnWindow(w, cpu, start, end, opts);
  yield* until(w, () => win.opened);
  return win;
}

function* closeWin(w: World, win: Win): TaskGen<void> {
  win.close();
  yield* until(w, () => win.closed);
}

function* insert(w: World, sub: MmuIntervalNotifier, start: number, len: number): TaskGen<void> {
  const r = yield* w.mmn.intervalInsert(sub, w.proc.mm, start, len);
  if (r !== 0) throw new Error(`intervalInsert(${sub.ops.name}) returned ${r}`);
}

function run(w: World, main: () => TaskGen<void>): RunResult {
  w.sim.spawn('main', 0, main);
  return w.sim.run();
}

function expectClean(r: RunResult): void {
  expect(r.violations.map((v) => `${v.kind}: ${v.message}`)).toEqual([]);
  expect(r.reason).toBe('done');
}

/** Index of the log position now: every event logged so far has a smaller index. */
function mark(w: World): number {
  return w.sim.log!.events.length;
}

function indexOf(evs: Ev[], pred: (e: Ev) => boolean, from = 0): number {
  for (let i = from; i < evs.length; i++) if (pred(evs[i]!)) return i;
  return -1;
}

function names(calls: Call[]): string[] {
  return calls.map((c) => c.sub);
}

function treeNames(w: World): string[] {
  return [...subsOf(w).itree.inOrder()].map((n) => n.value.ops.name);
}

interface Snap {
  label: string;
  A: number;
  S: number;
  state: string;
}

function snap(w: World, out: Snap[], label: string): void {
  const s = subsOf(w);
  out.push({ label, A: s.activeInvalidateRanges, S: s.invalidateSeq, state: s.state });
}

/** A classic (list) subscriber whose start returns `startResult(range)`; no end op. */
function listSub(name: string, startResult: (r: NotifierRange) => number, log?: string[]) {
  const ops: MmuNotifierOps = {
    name,
    *invalidateRangeStart(_sub, range) {
      log?.push(`${name}:${range.event}`);
      return startResult(range);
    },
  };
  return new MmuNotifier(ops);
}

describe('MMU interval notifiers (notifier-core.md §4, invariants 19–34)', () => {
  it('19: active_invalidate_ranges counts every window started in interval mode, intersecting or not — and none before', () => {
    const w = world();
    const X = driverSub(w, 'X');
    const snaps: Snap[] = [];
    let beforeContainer: unknown = undefined;
    let beforeItreeA = -1;
    let reg = -1;
    const r = run(w, function* () {
      const mm = w.proc.mm;
      // No container: the window is a no-op.
      let win = yield* openWin(w, 1, 0, MB);
      beforeContainer = w.mmn.subscriptions(mm);
      yield* closeWin(w, win);
      // A container with only a list subscriber: has_itree is false, nothing is counted.
      reg = yield* w.mmn.register(
        listSub('L', () => 0),
        mm,
      );
      win = yield* openWin(w, 1, 0, MB);
      beforeItreeA = subsOf(w).activeInvalidateRanges;
      yield* closeWin(w, win);
      // Interval mode.
      yield* insert(w, X, 16 * MB, PAGE_SIZE);
      snap(w, snaps, 'inserted');
      const far = yield* openWin(w, 1, 32 * MB, 33 * MB); // intersects nothing
      snap(w, snaps, 'far open');
      const hit = yield* openWin(w, 1, 16 * MB, 17 * MB); // intersects X
      snap(w, snaps, 'hit open');
      const far2 = yield* openWin(w, 0, 40 * MB, 41 * MB); // intersects nothing
      snap(w, snaps, 'far2 open');
      yield* closeWin(w, hit);
      snap(w, snaps, 'hit closed');
      yield* closeWin(w, far2);
      snap(w, snaps, 'far2 closed');
      yield* closeWin(w, far);
      snap(w, snaps, 'far closed');
    });
    expectClean(r);
    expect(reg).toBe(0);
    expect(beforeContainer).toBeNull();
    expect(beforeItreeA).toBe(0);
    expect(snaps.map((s) => [s.label, s.A, s.state])).toEqual([
      ['inserted', 0, 'idle'],
      ['far open', 1, 'partial'],
      ['hit open', 2, 'full'],
      ['far2 open', 3, 'full'],
      ['hit closed', 2, 'full'],
      ['far2 closed', 1, 'full'],
      ['far closed', 0, 'idle'],
    ]);
    expect(names(w.calls)).toEqual(['X']);
  });

  it('19: a window whose non-blockable start failed in the interval pass is not counted (decremented internally)', () => {
    const w = world();
    const F = driverSub(w, 'F', { fail: (range) => !range.blockable });
    const snaps: Snap[] = [];
    let result = 0;
    const r = run(w, function* () {
      yield* insert(w, F, 16 * MB, PAGE_SIZE);
      const outer = yield* openWin(w, 1, 32 * MB, 33 * MB);
      snap(w, snaps, 'outer');
      const nb = yield* openWin(w, 1, 16 * MB, 17 * MB, { nonblock: true });
      result = nb.result;
      snap(w, snaps, 'failed nonblock start');
      yield* closeWin(w, nb); // no end: the start failed
      yield* closeWin(w, outer);
      snap(w, snaps, 'outer closed');
    });
    expectClean(r);
    expect(result).toBe(-Errno.EAGAIN);
    expect(snaps.map((s) => [s.label, s.A, s.S, s.state])).toEqual([
      ['outer', 1, 2, 'partial'],
      // Counted 2 while the pass ran, back to 1; it intersected F, so S is odd until A hits 0.
      ['failed nonblock start', 1, 3, 'full'],
      ['outer closed', 0, 4, 'idle'],
    ]);
    const states = ofType(w.sim, 'mmn.itree.state').map((e) => e.data.active);
    expect(states).toEqual([1, 2, 1, 0]);
  });

  it('19: interval pass succeeded, list pass failed (non-blockable): the window stays counted, Full for good, and the asymmetry is reported', () => {
    const w = world({ stopOnViolation: false });
    const X = driverSub(w, 'X');
    const listLog: string[] = [];
    const snaps: Snap[] = [];
    let result = 0;
    const r = run(w, function* () {
      yield* insert(w, X, 16 * MB, PAGE_SIZE);
      yield* w.mmn.register(
        listSub('L', (range) => (range.blockable ? 0 : -Errno.EAGAIN), listLog),
        w.proc.mm,
      );
      const nb = yield* openWin(w, 1, 16 * MB, 17 * MB, { nonblock: true });
      result = nb.result;
      snap(w, snaps, 'after failed start');
      yield* closeWin(w, nb); // the caller must not call end
      snap(w, snaps, 'caller gave up');
      const again = yield* openWin(w, 1, 32 * MB, 33 * MB);
      snap(w, snaps, 'another window');
      yield* closeWin(w, again);
      snap(w, snaps, 'another closed');
    });
    expect(r.reason).toBe('violation');
    expect(r.violations.map((v) => v.kind)).toEqual(['mmn-asymmetric-failure']);
    expect(result).toBe(-Errno.EAGAIN);
    expect(names(w.calls)).toEqual(['X']);
    expect(listLog).toEqual(['L:CLEAR', 'L:CLEAR']);
    expect(snaps.map((s) => [s.label, s.A, s.S, s.state])).toEqual([
      ['after failed start', 1, 3, 'full'],
      ['caller gave up', 1, 3, 'full'],
      ['another window', 2, 3, 'full'],
      ['another closed', 1, 3, 'full'],
    ]);
    expect(ofType(w.sim, 'mmn.wake')).toEqual([]);
  });

  it('19: a list failure in a blockable range is only the WARN — the caller still ends the window, so no asymmetry', () => {
    const w = world({ stopOnViolation: false });
    const X = driverSub(w, 'X');
    const snaps: Snap[] = [];
    const r = run(w, function* () {
      yield* insert(w, X, 16 * MB, PAGE_SIZE);
      yield* w.mmn.register(
        listSub('bad', () => -Errno.EAGAIN),
        w.proc.mm,
      );
      const win = yield* openWin(w, 1, 16 * MB, 17 * MB);
      snap(w, snaps, 'open');
      yield* closeWin(w, win);
      snap(w, snaps, 'closed');
    });
    expect(r.violations.map((v) => v.kind)).toEqual(['mmn-start-failure-warn']);
    expect(snaps.map((s) => [s.label, s.A, s.S, s.state])).toEqual([
      ['open', 1, 3, 'full'],
      ['closed', 0, 4, 'idle'],
    ]);
  });

  it('20: invalidate_seq is odd iff an open window intersected since A last became 0, and turns even exactly when A returns to 0', () => {
    const w = world();
    const X = driverSub(w, 'X');
    const r = run(w, function* () {
      yield* insert(w, X, 16 * MB, PAGE_SIZE);
      const w1 = yield* openWin(w, 1, 32 * MB, 33 * MB); // no hit: Partial
      const w2 = yield* openWin(w, 1, 16 * MB, 17 * MB); // hit: Full
      yield* closeWin(w, w2); // the intersecting one ended, but A > 0: still odd
      const w3 = yield* openWin(w, 0, 40 * MB, 41 * MB); // no hit, yet inside the Full period
      yield* closeWin(w, w1);
      yield* closeWin(w, w3); // A = 0: even
      const w4 = yield* openWin(w, 1, 0, TASK_SIZE);
      yield* closeWin(w, w4);
      const w5 = yield* openWin(w, 1, 32 * MB, 33 * MB); // no hit: stays even
      yield* closeWin(w, w5);
    });
    expectClean(r);
    const states = ofType(w.sim, 'mmn.itree.state').map((e) => [
      e.data.active,
      e.data.seq,
      e.data.state,
    ]);
    expect(states).toEqual([
      [1, 2, 'partial'],
      [2, 3, 'full'],
      [1, 3, 'full'],
      [2, 3, 'full'],
      [1, 3, 'full'],
      [0, 4, 'idle'],
      [1, 5, 'full'],
      [0, 6, 'idle'],
      [1, 6, 'partial'],
      [0, 6, 'idle'],
    ]);
    // Odd only while windows are open, and then it is the Full state; A = 0 always even.
    for (const [active, seq, state] of states as [number, number, string][]) {
      if (active === 0) expect(seq % 2).toBe(0);
      expect(seq % 2 === 1).toBe(state === 'full');
    }
  });

  it('21: every subscription seq is odd after insert — Idle: S−1; Partial: turns Full, S; Full: deferred with S', () => {
    const w = world();
    const [X, Y, P, D] = ['X', 'Y', 'P', 'D'].map((n) => driverSub(w, n)) as [
      MmuIntervalNotifier,
      MmuIntervalNotifier,
      MmuIntervalNotifier,
      MmuIntervalNotifier,
    ];
    const seen: Record<string, { seq: number; inTree: boolean; state: string; S: number }> = {};
    const look = (label: string, sub: MmuIntervalNotifier): void => {
      const s = subsOf(w);
      seen[label] = { seq: sub.seq, inTree: sub.inTree, state: s.state, S: s.invalidateSeq };
    };
    const r = run(w, function* () {
      yield* insert(w, X, 16 * MB, PAGE_SIZE);
      look('X idle', X);
      yield* closeWin(w, yield* openWin(w, 1, 16 * MB, 17 * MB)); // S: 2 -> 3 -> 4
      yield* insert(w, Y, 20 * MB, PAGE_SIZE);
      look('Y idle', Y);
      const win = yield* openWin(w, 1, 32 * MB, 33 * MB); // Partial
      look('before P', X);
      yield* insert(w, P, 32 * MB, PAGE_SIZE);
      look('P partial', P);
      yield* insert(w, D, 32 * MB + PAGE_SIZE, PAGE_SIZE);
      look('D full', D);
      yield* closeWin(w, win);
      look('D applied', D);
      look('X end', X);
      look('P end', P);
      look('Y end', Y);
    });
    expectClean(r);
    expect(seen).toEqual({
      'X idle': { seq: 1, inTree: true, state: 'idle', S: 2 },
      'Y idle': { seq: 3, inTree: true, state: 'idle', S: 4 },
      'before P': { seq: 3, inTree: true, state: 'partial', S: 4 },
      'P partial': { seq: 5, inTree: true, state: 'full', S: 5 },
      'D full': { seq: 5, inTree: false, state: 'full', S: 5 },
      'D applied': { seq: 5, inTree: true, state: 'idle', S: 6 },
      'X end': { seq: 3, inTree: true, state: 'idle', S: 6 },
      'P end': { seq: 5, inTree: true, state: 'idle', S: 6 },
      'Y end': { seq: 3, inTree: true, state: 'idle', S: 6 },
    });
    const inserts = ofType(w.sim, 'mmn.interval.insert').map((e) => [
      e.data.name,
      e.data.seq,
      e.data.deferred,
    ]);
    expect(inserts).toEqual([
      ['X', 1, false],
      ['Y', 3, false],
      ['P', 5, false],
      ['D', 5, true],
    ]);
    for (const e of ofType(w.sim, 'mmn.set_seq')) expect(e.data.seq % 2).toBe(1);
  });

  it('22: every invalidate call of one window gets the same odd cur_seq, equal to invalidate_seq; a concurrent window in the same Full period gets it too', () => {
    const w = world();
    let concurrent: Win | null = null;
    const [a, b, c] = [
      driverSub(w, 'a'),
      // b opens a second window from the other CPU while the first one's walk is in progress.
      driverSub(w, 'b', {
        *after(range) {
          if (range.start === 16 * MB && concurrent === null) {
            concurrent = spawnWindow(w, 1, 16 * MB + 2 * PAGE_SIZE, 17 * MB);
            yield* until(w, () => concurrent!.opened);
          }
        },
      }),
      driverSub(w, 'c'),
    ];
    const r = run(w, function* () {
      yield* insert(w, a, 16 * MB, PAGE_SIZE);
      yield* insert(w, b, 16 * MB + PAGE_SIZE, PAGE_SIZE);
      yield* insert(w, c, 16 * MB + 2 * PAGE_SIZE, PAGE_SIZE);
      const first = yield* openWin(w, 0, 16 * MB, 17 * MB);
      yield* closeWin(w, concurrent!);
      yield* closeWin(w, first);
      yield* closeWin(w, yield* openWin(w, 1, 16 * MB, 17 * MB));
    });
    expectClean(r);
    expect(w.calls.map((c) => [c.sub, c.start, c.curSeq, c.S])).toEqual([
      ['a', 16 * MB, 3, 3],
      ['b', 16 * MB, 3, 3],
      ['c', 16 * MB + 2 * PAGE_SIZE, 3, 3], // the concurrent window: same Full period
      ['c', 16 * MB, 3, 3],
      ['a', 16 * MB, 5, 5], // the next period
      ['b', 16 * MB, 5, 5],
      ['c', 16 * MB, 5, 5],
    ]);
    const cb = ofType(w.sim, 'mmn.callback').filter((e) => e.data.op === 'invalidate');
    expect(cb.map((e) => e.data.seq)).toEqual([3, 3, 3, 3, 5, 5, 5]);
  });

  it('23: ascending start order, equal starts in insertion order, only subscriptions overlapping [start, end − 1]', () => {
    const w = world({ cpus: 1 });
    const base = 16 * MB;
    const P = PAGE_SIZE;
    // name, start, length — inserted in this (scrambled) order
    const specs: [string, number, number][] = [
      ['s4', base + 0x4000, P], // the window's last page
      ['s6', base + 0x2000, 0xe000], // same start as s5, inserted first, longer
      ['s1', base, P], // last = window start − 1: not called
      ['s5', base + 0x2000, P],
      ['s2', base + 0x5000, P], // start = window end: not called
      ['s7', base + 1, P], // last = window start: called
      ['s3', base, 2 * P],
    ];
    const subs = specs.map(([n]) => driverSub(w, n));
    const r = run(w, function* () {
      for (let i = 0; i < specs.length; i++) {
        const [, start, len] = specs[i]!;
        yield* insert(w, subs[i]!, start, len);
      }
      yield* closeWin(w, yield* openWin(w, 0, base + 0x1000, base + 0x5000));
    });
    expectClean(r);
    expect(names(w.calls)).toEqual(['s3', 's7', 's6', 's5', 's4']);
  });

  it('24: while S is odd the tree is frozen; inserts and removes are applied newest first when it turns even, before the waiters wake', () => {
    const w = world();
    const X = driverSub(w, 'X');
    const R = driverSub(w, 'R');
    const N1 = driverSub(w, 'N1');
    const N2 = driverSub(w, 'N2');
    let frozen: { tree: string[]; deferred: string[]; inTree: boolean[]; state: string } | null =
      null;
    let readerSeq = 0;
    let readerDone = -1;
    let removeDone = -1;
    let closeAt = -1;
    const r = run(w, function* () {
      yield* insert(w, X, 16 * MB, PAGE_SIZE);
      yield* insert(w, R, 24 * MB, PAGE_SIZE);
      const win = yield* openWin(w, 1, 16 * MB, 17 * MB);
      const wq = subsOf(w).wq;
      w.sim.spawn('reader', 1, function* () {
        readerSeq = yield* w.mmn.readBegin(X);
        readerDone = mark(w);
      });
      yield* until(w, () => wq.length === 1);
      yield* insert(w, N1, 20 * MB, PAGE_SIZE);
      yield* insert(w, N2, 20 * MB, PAGE_SIZE); // same start as N1
      w.sim.spawn('remover', 0, function* () {
        yield* w.mmn.intervalRemove(R);
        removeDone = mark(w);
      });
      yield* until(w, () => wq.length === 2);
      const s = subsOf(w);
      frozen = {
        tree: treeNames(w),
        deferred: s.deferredList.map((x) => x.ops.name),
        inTree: [N1.inTree, N2.inTree, R.inTree],
        state: s.state,
      };
      closeAt = mark(w);
      yield* closeWin(w, win);
      yield* until(w, () => readerDone >= 0 && removeDone >= 0);
      // Equal starts: the order of the tree is the order the deferred list applied them.
      yield* closeWin(w, yield* openWin(w, 1, 20 * MB, 25 * MB));
    });
    expectClean(r);
    expect(frozen).toEqual({
      tree: ['X', 'R'],
      deferred: ['R', 'N2', 'N1'],
      inTree: [false, false, true],
      state: 'full',
    });
    const evs = eventList(w.sim);
    const applies = evs
      .map((e, i) => ({ e, i }))
      .filter(({ e }) => e.type === 'mmn.deferred.apply');
    expect(applies.map(({ e }) => [e.d.sub, e.d.op])).toEqual([
      [R.id, 'remove'],
      [N2.id, 'insert'],
      [N1.id, 'insert'],
    ]);
    const wake = indexOf(evs, (e) => e.type === 'mmn.wake');
    expect(evs[wake]!.d.woken).toBe(2);
    expect(applies[0]!.i).toBeGreaterThanOrEqual(closeAt);
    expect(applies[2]!.i).toBeLessThan(wake);
    expect(readerDone).toBeGreaterThan(wake);
    expect(removeDone).toBeGreaterThan(wake);
    const rb = indexOf(evs, (e) => e.type === 'mmn.read_begin');
    expect(rb).toBeGreaterThan(wake);
    expect(evs[rb]!.d).toMatchObject({ sub: X.id, seq: 3, waited: true });
    expect(readerSeq).toBe(3);
    expect(treeNames(w)).toEqual(['X', 'N2', 'N1']);
    expect(names(w.calls)).toEqual(['X', 'N2', 'N1']);
  });

  it('25: an insert during Partial turns the state Full at once; its read_begin waits for the in-flight windows', () => {
    const w = world();
    const X = driverSub(w, 'X');
    const P = driverSub(w, 'P');
    const snaps: Snap[] = [];
    let pSeq = 0;
    let pRetry = true;
    let xWaited = true;
    const r = run(w, function* () {
      yield* insert(w, X, 16 * MB, PAGE_SIZE);
      const win = yield* openWin(w, 1, 32 * MB, 33 * MB);
      snap(w, snaps, 'partial');
      yield* insert(w, P, 32 * MB, PAGE_SIZE); // the open window covers it
      snap(w, snaps, 'after insert');
      const wq = subsOf(w).wq;
      w.sim.spawn('readerP', 1, function* () {
        pSeq = yield* w.mmn.readBegin(P);
        snap(w, snaps, 'P read_begin returned');
        yield* w.lock.lock();
        pRetry = w.mmn.readRetry(P, pSeq);
        w.lock.unlock();
      });
      yield* until(w, () => wq.length === 1);
      const before = ofType(w.sim, 'mmn.read_begin').length;
      yield* w.mmn.readBegin(X); // X was not invalidated in this period: no wait
      xWaited = ofType(w.sim, 'mmn.read_begin')[before]!.data.waited;
      snap(w, snaps, 'closing');
      yield* closeWin(w, win);
    });
    expectClean(r);
    expect(snaps.map((s) => [s.label, s.A, s.S, s.state])).toEqual([
      ['partial', 1, 2, 'partial'],
      ['after insert', 1, 3, 'full'],
      ['closing', 1, 3, 'full'],
      ['P read_begin returned', 0, 4, 'idle'],
    ]);
    expect(P.seq).toBe(3);
    expect(pSeq).toBe(3);
    expect(pRetry).toBe(false);
    expect(xWaited).toBe(false);
    expect(ofType(w.sim, 'mmn.interval.insert').map((e) => e.data.deferred)).toEqual([
      false,
      false,
    ]);
    expect(w.calls).toEqual([]); // the window started before P was in the tree
  });

  it('26: read_begin sleeps only when sub.seq equals the current odd S, and returns once S has changed', () => {
    const w = world();
    const X = driverSub(w, 'X');
    const Y = driverSub(w, 'Y');
    const D = driverSub(w, 'D');
    const got: Record<string, { seq: number; S: number; inTree: boolean }> = {};
    let waitsWhileOneOpen = -1;
    const r = run(w, function* () {
      yield* insert(w, X, 16 * MB, PAGE_SIZE);
      yield* insert(w, Y, 20 * MB, PAGE_SIZE);
      got['X idle'] = { seq: yield* w.mmn.readBegin(X), S: subsOf(w).invalidateSeq, inTree: true };
      const w1 = yield* openWin(w, 1, 16 * MB, 17 * MB); // calls X only: X.seq = S = 3
      got['Y full, not hit'] = {
        seq: yield* w.mmn.readBegin(Y),
        S: subsOf(w).invalidateSeq,
        inTree: true,
      };
      yield* insert(w, D, 24 * MB, PAGE_SIZE); // deferred: D.seq = S
      const wq = subsOf(w).wq;
      for (const [name, sub] of [
        ['X', X],
        ['D', D],
      ] as const) {
        w.sim.spawn(`reader${name}`, 1, function* () {
          const seq = yield* w.mmn.readBegin(sub);
          got[`${name} full, hit`] = { seq, S: subsOf(w).invalidateSeq, inTree: sub.inTree };
        });
      }
      yield* until(w, () => wq.length === 2);
      const w2 = yield* openWin(w, 0, 16 * MB, 17 * MB); // nested in the same Full period
      yield* closeWin(w, w1);
      waitsWhileOneOpen = wq.length; // A = 1: still Full, still asleep
      yield* closeWin(w, w2);
      yield* until(w, () => Object.keys(got).length === 4);
    });
    expectClean(r);
    expect(got).toEqual({
      'X idle': { seq: 1, S: 2, inTree: true },
      'Y full, not hit': { seq: 1, S: 3, inTree: true },
      'X full, hit': { seq: 3, S: 4, inTree: true },
      'D full, hit': { seq: 3, S: 4, inTree: true },
    });
    expect(waitsWhileOneOpen).toBe(2);
    const rb = ofType(w.sim, 'mmn.read_begin').map((e) => [e.data.sub, e.data.waited]);
    expect(rb).toEqual([
      [X.id, false],
      [Y.id, false],
      [X.id, true],
      [D.id, true],
    ]);
    expect(ofType(w.sim, 'mmn.wait').map((e) => [e.data.sub, e.data.seq])).toEqual([
      [X.id, 3],
      [D.id, 3],
    ]);
  });

  it('27: read_begin never loops — woken into the next Full period it returns the old seq, and read_retry is already true', () => {
    // One CPU: the task that ends the first window opens the second one before the woken
    // reader can run, so the reader resumes with sub.seq equal to the (new) odd S.
    const w = world({ cpus: 1 });
    const X = driverSub(w, 'X');
    let ret = 0;
    let atReturn: { S: number; subSeq: number; state: string } | null = null;
    let retry = false;
    let check = false;
    let readerDone = false;
    let w2Open = false;
    const r = run(w, function* () {
      const mm = w.proc.mm;
      yield* insert(w, X, 16 * MB, PAGE_SIZE);
      const wq = subsOf(w).wq;
      yield* mm.mmapLock.downRead();
      const w1 = new NotifierRange('CLEAR', mm, 16 * MB, 17 * MB);
      yield* w.mmn.invalidateRangeStart(w1);
      w.sim.spawn('reader', 0, function* () {
        ret = yield* w.mmn.readBegin(X);
        const s = subsOf(w);
        atReturn = { S: s.invalidateSeq, subSeq: X.seq, state: s.state };
        check = w.mmn.checkRetry(X, ret);
        yield* until(w, () => w2Open);
        yield* w.lock.lock();
        retry = w.mmn.readRetry(X, ret);
        w.lock.unlock();
        readerDone = true;
      });
      yield* until(w, () => wq.length === 1);
      yield* w.mmn.invalidateRangeEnd(w1); // wakes the reader...
      const w2 = new NotifierRange('CLEAR', mm, 16 * MB, 17 * MB);
      yield* w.mmn.invalidateRangeStart(w2); // ...which has not run yet
      w2Open = true;
      yield* until(w, () => readerDone); // w2 stays open: a looping read_begin would hang here
      yield* w.mmn.invalidateRangeEnd(w2);
      mm.mmapLock.upRead();
    });
    expectClean(r);
    expect(ret).toBe(3);
    expect(atReturn).toEqual({ S: 5, subSeq: 5, state: 'full' });
    expect(check).toBe(true);
    expect(retry).toBe(true);
    expect(ofType(w.sim, 'mmn.wait')).toHaveLength(1);
    const evs = eventList(w.sim);
    const setSeq5 = indexOf(evs, (e) => e.type === 'mmn.set_seq' && e.d.seq === 5);
    const rb = indexOf(evs, (e) => e.type === 'mmn.read_begin');
    expect(setSeq5).toBeGreaterThan(-1);
    expect(rb).toBeGreaterThan(setSeq5);
    expect(evs[rb]!.d).toMatchObject({ seq: 3, waited: true });
  });

  it('28: a window intersecting the sub that starts after read_begin returned makes a later read_retry true', () => {
    const w = world();
    const X = driverSub(w, 'X');
    const Y = driverSub(w, 'Y');
    const res: Record<string, boolean> = {};
    const r = run(w, function* () {
      yield* insert(w, X, 16 * MB, PAGE_SIZE);
      yield* insert(w, Y, 20 * MB, PAGE_SIZE);
      const retry = function* (label: string, seq: number): TaskGen<void> {
        yield* w.lock.lock();
        res[label] = w.mmn.readRetry(X, seq);
        w.lock.unlock();
        res[`${label} (check_retry)`] = w.mmn.checkRetry(X, seq);
      };
      // A window that ended before read_begin: no collision.
      yield* closeWin(w, yield* openWin(w, 1, 16 * MB, 17 * MB));
      let seq = yield* w.mmn.readBegin(X);
      yield* retry('earlier window', seq);
      // A window over X after read_begin, still open, then ended.
      const hit = yield* openWin(w, 1, 16 * MB, 17 * MB);
      yield* retry('hit, open', seq);
      yield* closeWin(w, hit);
      yield* retry('hit, ended', seq);
      // A window over Y only: X's seq is untouched.
      seq = yield* w.mmn.readBegin(X);
      yield* closeWin(w, yield* openWin(w, 1, 20 * MB, 21 * MB));
      yield* retry('other sub', seq);
      // A window ending exactly where X starts: [start, end − 1] does not reach X.
      yield* closeWin(w, yield* openWin(w, 1, 15 * MB, 16 * MB));
      yield* retry('adjacent', seq);
    });
    expectClean(r);
    expect(res).toEqual({
      'earlier window': false,
      'earlier window (check_retry)': false,
      'hit, open': true,
      'hit, open (check_retry)': true,
      'hit, ended': true,
      'hit, ended (check_retry)': true,
      'other sub': false,
      'other sub (check_retry)': false,
      adjacent: false,
      'adjacent (check_retry)': false,
    });
  });

  describe('29: a §4.4 driver keeps no mapping of a replaced PTE past its invalidate (munmap)', () => {
    /**
     * A process with 8 touched pages, a mirroring driver following §4.4 over them, and a CPU side
     * that unmaps the middle 4 pages, maps them again and writes them.
     * - `race`: the device faults everything in, then snapshots the first page of the hole (F3)
     *   and stalls before taking its lock (F4) until munmap has returned (§4.5 case 1, F4 after I4).
     * - `free`: the device keeps re-faulting the interval while the CPU side runs.
     * Every device translation is checked against the CPU PTE (and the frame's generation) when
     * the device installs it, when the driver's invalidate returns, at every invalidate_range_end
     * and at the end of the run.
     */
    function scenario(
      mode: 'race' | 'free',
      seed: number,
      strategy: StrategySpec,
      opts: { skipRetry?: boolean } = {},
    ) {
      const w = world({ seed, strategy, stopOnViolation: false });
      const { sim, mmn, svc, proc } = w;
      const core = svc.core;
      const mm = proc.mm;
      const PAGES = 8;
      const dev = new Map<number, { pfn: number; gen: number }>();
      const L = new Mutex(sim.kernel, 'dmirror.lock');
      const stale: string[] = [];
      let checks = 0;
      const sub = new MmuIntervalNotifier({
        name: 'dmirror',
        *invalidate(s, range, curSeq) {
          if (range.blockable) yield* L.lock();
          else if (!L.tryLock()) return false;
          mmn.setSeq(s, curSeq);
          const lo = Math.max(range.start, s.start);
          const hi = Math.min(range.end - 1, s.last);
          for (const va of [...dev.keys()]) if (va >= lo && va <= hi) dev.delete(va);
          L.unlock();
          return true;
        },
      });
      /** Every device translation matches the CPU PTE now, with the frame not reallocated. */
      const check = (where: string): void => {
        checks++;
        for (const [va, m] of dev) {
          const pte = core.pt.pte(mm, va);
          if (!ptePresent(pte) || ptePfn(pte) !== m.pfn || core.phys.generation[m.pfn] !== m.gen)
            stale.push(`${where}: va ${va.toString(16)} -> pfn ${m.pfn}`);
        }
      };
      sim.bus.on('mmn.invalidate_end').subscribe(() => check('invalidate_range_end'));
      sim.bus.on('mmn.callback').subscribe((e) => {
        if (e.data.sub === sub.id && e.data.op === 'invalidate') check('invalidate returned');
      });
      let stalled = false;
      let resume = false;
      let retries = 0;
      /** F1–F7 of §4.4 for one page; returns 0 or hmm_range_fault's error. */
      function* devFault(va: number, stall = false): TaskGen<number> {
        if (!mmgetNotZero(mm)) return -Errno.EFAULT;
        for (;;) {
          const seq = yield* mmn.readBegin(sub);
          const hr: HmmRange = {
            mm,
            notifierSeqChanged: () => mmn.checkRetry(sub, seq),
            start: va,
            end: va + PAGE_SIZE,
            hmmPfns: [0],
            defaultFlags: HmmPfn.REQ_FAULT,
            pfnFlagsMask: 0,
          };
          yield* sim.scheduler.preempt(); // the fault path can be preempted anywhere: F2 → F3
          yield* mm.mmapLock.downRead();
          const ret = yield* hmmRangeFault(core, hr);
          mm.mmapLock.upRead();
          if (ret === -Errno.EBUSY) continue;
          if (ret !== 0) {
            yield* mmput(core, mm);
            return ret;
          }
          yield* sim.scheduler.preempt(); // F3 → F4
          if (stall && !stalled) {
            stalled = true;
            yield* until(w, () => resume);
          }
          yield* L.lock();
          if (mmn.readRetry(sub, seq) && opts.skipRetry !== true) {
            L.unlock();
            retries++;
            continue;
          }
          const pfn = hmmPfnToPfn(hr.hmmPfns[0]!);
          dev.set(va, { pfn, gen: core.phys.generation[pfn]! });
          // No window that changed this PTE ran its invalidate since read_begin (read_retry would
          // have said so), so the translation must match the CPU PTE now.
          check('device install');
          L.unlock();
          yield* mmput(core, mm);
          return 0;
        }
      }
      let base = 0;
      let hole: [number, number] = [0, 0];
      let mappedInHoleBefore = 0;
      let munmapRet = 1;
      let stalledFault = 1;
      let cpuDone = false;
      let deviceDone = false;
      const RW = Prot.READ | Prot.WRITE;
      const ANON = Map_.PRIVATE | Map_.ANONYMOUS;
      const r = run(w, function* () {
        base = yield* proc.mmap(0, PAGES * PAGE_SIZE, RW, ANON);
        for (let i = 0; i < PAGES; i++) yield* proc.store(base + i * PAGE_SIZE, i + 1);
        yield* insert(w, sub, base, PAGES * PAGE_SIZE);
        hole = [base + 2 * PAGE_SIZE, base + 6 * PAGE_SIZE];
        const firstRound = new Completion(sim.kernel, 'first round');
        sim.spawn('device', 1, function* () {
          for (let i = 0; i < PAGES; i++) yield* devFault(base + i * PAGE_SIZE);
          firstRound.complete();
          if (mode === 'race') stalledFault = yield* devFault(hole[0], true);
          else
            for (let round = 0; round < 4 && !cpuDone; round++)
              for (let i = 0; i < PAGES; i++) yield* devFault(base + i * PAGE_SIZE);
          deviceDone = true;
        });
        yield* firstRound.wait();
        for (const va of dev.keys()) if (va >= hole[0] && va < hole[1]) mappedInHoleBefore++;
        if (mode === 'race') yield* until(w, () => stalled);
        munmapRet = yield* proc.munmap(hole[0], hole[1] - hole[0]);
        resume = true;
        if (mode === 'race') yield* until(w, () => deviceDone);
        // Map the hole again with fresh pages and write them: new PTEs the device may fault in.
        yield* proc.mmap(hole[0], hole[1] - hole[0], RW, ANON | Map_.FIXED);
        for (let va = hole[0]; va < hole[1]; va += PAGE_SIZE) yield* proc.store(va, 7);
        cpuDone = true;
      });
      check('end of run');
      return { r, stale, mappedInHoleBefore, checks, munmapRet, stalledFault, retries, dev, hole };
    }

    it('29: the device snapshots a page, munmap runs to its end, then the device takes its lock: read_retry makes it retry, and nothing stale is mapped', () => {
      const s = scenario('race', 1, 'round-robin');
      expectClean(s.r);
      expect(s.munmapRet).toBe(0);
      expect(s.mappedInHoleBefore).toBe(4);
      expect(s.retries).toBe(1);
      expect(s.stalledFault).toBe(-Errno.EFAULT); // the retry found the hole
      expect(s.stale).toEqual([]);
      expect([...s.dev.keys()].filter((va) => va >= s.hole[0] && va < s.hole[1])).toEqual([]);
    });

    it('29: control — the same check flags a driver that skips read_retry', () => {
      const s = scenario('race', 1, 'round-robin', { skipRetry: true });
      expect(s.stale.length).toBeGreaterThan(0);
      expect(s.stale[0]).toMatch(/^device install: va /);
    });

    it('29: random and PCT interleavings of the fault loop with munmap leave no stale device mapping', () => {
      for (const strategy of ['random', 'pct'] as const)
        for (let seed = 1; seed <= 10; seed++) {
          const s = scenario('free', seed, strategy);
          expectClean(s.r);
          expect(s.munmapRet).toBe(0);
          expect(s.checks).toBeGreaterThan(8);
          expect(s.stale).toEqual([]);
        }
    });
  });

  it('30: remove in Idle takes effect at once; after it returns the sub is never called', () => {
    const w = world();
    const X = driverSub(w, 'X');
    let count0 = 0;
    let countAfter = 0;
    const r = run(w, function* () {
      count0 = w.proc.mm.count;
      yield* insert(w, X, 16 * MB, PAGE_SIZE);
      yield* closeWin(w, yield* openWin(w, 1, 16 * MB, 17 * MB));
      yield* w.mmn.intervalRemove(X);
      countAfter = w.proc.mm.count;
      yield* closeWin(w, yield* openWin(w, 1, 16 * MB, 17 * MB));
    });
    expectClean(r);
    expect(names(w.calls)).toEqual(['X']);
    expect(X.inTree).toBe(false);
    expect(countAfter).toBe(count0);
    expect(ofType(w.sim, 'mmn.interval.remove').map((e) => e.data.deferred)).toEqual([false]);
    expect(ofType(w.sim, 'mmn.wait')).toEqual([]);
  });

  it('30: remove during Full waits for the period to end; windows of that period still call the sub; after it returns nothing runs or calls it', () => {
    const w = world();
    let running = 0;
    let calls = 0;
    let releaseFirst = false;
    const X = driverSub(w, 'X', {
      *after() {
        calls++;
        running++;
        if (calls === 1) yield* until(w, () => releaseFirst); // a slow device invalidation
        running--;
      },
    });
    let removeCalled = -1;
    let removeReturned = -1;
    let atReturn: { running: number; inTree: boolean; state: string; calls: number } | null = null;
    const r = run(w, function* () {
      yield* insert(w, X, 16 * MB, PAGE_SIZE);
      const wq = subsOf(w).wq;
      const first = spawnWindow(w, 1, 16 * MB, 17 * MB);
      yield* until(w, () => running === 1); // inside X's first callback
      w.sim.spawn('remover', 1, function* () {
        removeCalled = mark(w);
        yield* w.mmn.intervalRemove(X);
        removeReturned = mark(w);
        const s = subsOf(w);
        atReturn = { running, inTree: X.inTree, state: s.state, calls };
      });
      yield* until(w, () => wq.length === 1);
      // A window opened after the remove call, in the same Full period: X is still in the tree.
      const second = yield* openWin(w, 0, 16 * MB, 17 * MB);
      releaseFirst = true;
      yield* until(w, () => first.opened);
      yield* closeWin(w, second);
      yield* closeWin(w, first);
      yield* until(w, () => removeReturned >= 0);
      yield* closeWin(w, yield* openWin(w, 1, 16 * MB, 17 * MB));
    });
    expectClean(r);
    expect(calls).toBe(2);
    expect(atReturn).toEqual({ running: 0, inTree: false, state: 'idle', calls: 2 });
    const evs = eventList(w.sim);
    const cbs = evs
      .map((e, i) => ({ e, i }))
      .filter(({ e }) => e.type === 'mmn.callback' && e.d.sub === X.id);
    expect(cbs).toHaveLength(2);
    for (const { i } of cbs) expect(i).toBeLessThan(removeReturned);
    const apply = indexOf(evs, (e) => e.type === 'mmn.deferred.apply');
    expect(evs[apply]!.d).toMatchObject({ sub: X.id, op: 'remove' });
    expect(apply).toBeGreaterThanOrEqual(removeCalled);
    expect(apply).toBeLessThan(removeReturned);
    expect(ofType(w.sim, 'mmn.interval.remove').map((e) => e.data.deferred)).toEqual([true]);
    expect(ofType(w.sim, 'mmn.wait').map((e) => e.data.why)).toEqual(['remove']);
  });

  it('31: removing, during Full, a sub whose insert is still deferred completes without sleeping; it is never inserted', () => {
    const w = world();
    const X = driverSub(w, 'X');
    const N = driverSub(w, 'N');
    let count0 = 0;
    let atReturn: {
      state: string;
      deferred: number;
      inTree: boolean;
      count: number;
      A: number;
    } | null = null;
    const r = run(w, function* () {
      yield* insert(w, X, 16 * MB, PAGE_SIZE);
      const win = yield* openWin(w, 1, 16 * MB, 17 * MB);
      count0 = w.proc.mm.count;
      yield* insert(w, N, 20 * MB, PAGE_SIZE);
      yield* w.mmn.intervalRemove(N); // the window is still open: a sleep would never end
      const s = subsOf(w);
      atReturn = {
        state: s.state,
        deferred: s.deferredList.length,
        inTree: N.inTree,
        count: w.proc.mm.count,
        A: s.activeInvalidateRanges,
      };
      yield* closeWin(w, win);
      yield* closeWin(w, yield* openWin(w, 1, 0, TASK_SIZE));
    });
    expectClean(r);
    expect(atReturn).toEqual({ state: 'full', deferred: 0, inTree: false, count: count0, A: 1 });
    expect(ofType(w.sim, 'mmn.interval.insert').map((e) => [e.data.name, e.data.deferred])).toEqual(
      [
        ['X', false],
        ['N', true],
      ],
    );
    expect(ofType(w.sim, 'mmn.interval.remove').map((e) => e.data.deferred)).toEqual([false]);
    expect(ofType(w.sim, 'mmn.wait')).toEqual([]);
    expect(ofType(w.sim, 'mmn.deferred.apply')).toEqual([]);
    expect(N.inTree).toBe(false);
    expect(names(w.calls)).toEqual(['X', 'X']);
  });

  it('32: after exit’s release the interval subs stay in the tree and also get exit_mmap’s UNMAP [0, TASK_SIZE); list subs are off the list', () => {
    const w = world();
    const X = driverSub(w, 'X');
    const Y = driverSub(w, 'Y');
    const order: string[] = [];
    const L = new MmuNotifier({
      name: 'L',
      *release() {
        order.push('L.release');
      },
    });
    let after: { x: boolean; y: boolean; listed: boolean; list: number; A: number } | null = null;
    let freed = false;
    const r = run(w, function* () {
      const { proc, mmn } = w;
      const a = yield* proc.mmap(
        0,
        4 * PAGE_SIZE,
        Prot.READ | Prot.WRITE,
        Map_.PRIVATE | Map_.ANONYMOUS,
      );
      for (let i = 0; i < 4; i++) yield* proc.store(a + i * PAGE_SIZE, i);
      yield* insert(w, X, a, 4 * PAGE_SIZE);
      yield* insert(w, Y, a + 64 * MB, PAGE_SIZE); // covers nothing mapped
      yield* mmn.register(L, proc.mm);
      yield* proc.exit();
      const s = subsOf(w);
      after = {
        x: X.inTree,
        y: Y.inTree,
        listed: L.hashed,
        list: s.list.length,
        A: s.activeInvalidateRanges,
      };
      yield* mmn.intervalRemove(X);
      yield* mmn.intervalRemove(Y);
      yield* mmn.unregister(L, proc.mm);
      freed = proc.mm.freed;
    });
    expectClean(r);
    expect(after).toEqual({ x: true, y: true, listed: false, list: 0, A: 0 });
    expect(freed).toBe(true);
    expect(w.calls.map((c) => [c.sub, c.event, c.start, c.end, c.blockable])).toEqual([
      ['X', 'RELEASE', 0, TASK_SIZE, true],
      ['Y', 'RELEASE', 0, TASK_SIZE, true],
      ['X', 'UNMAP', 0, TASK_SIZE, true],
      ['Y', 'UNMAP', 0, TASK_SIZE, true],
    ]);
    const evs = eventList(w.sim).filter(
      (e) =>
        e.type === 'mmn.callback' ||
        e.type === 'mmn.release' ||
        e.type === 'mmn.invalidate_start' ||
        e.type === 'mm.exit',
    );
    expect(
      evs.map((e) =>
        e.type === 'mmn.callback' ? `${String(e.d.name)}.${String(e.d.op)}` : e.type,
      ),
    ).toEqual([
      'X.invalidate',
      'Y.invalidate',
      'L.release',
      'mmn.release',
      'X.invalidate', // exit_mmap's UNMAP window (its start event follows the callbacks)
      'Y.invalidate',
      'mmn.invalidate_start',
      'mm.exit',
    ]);
    const start = evs.find((e) => e.type === 'mmn.invalidate_start')!;
    expect(start.d).toMatchObject({ event: 'UNMAP', start: 0, end: TASK_SIZE, blockable: true });
    expect(order).toEqual(['L.release']);
  });

  it('33: RELEASE is blockable over [0, TASK_SIZE); a false return only WARNs and the pass goes on', () => {
    const w = world({ stopOnViolation: false });
    const F = driverSub(w, 'F', { fail: (range) => range.event === 'RELEASE' });
    const G = driverSub(w, 'G');
    let exited = false;
    const r = run(w, function* () {
      const a = yield* w.proc.mmap(
        0,
        2 * PAGE_SIZE,
        Prot.READ | Prot.WRITE,
        Map_.PRIVATE | Map_.ANONYMOUS,
      );
      yield* w.proc.store(a, 1);
      yield* insert(w, F, a, PAGE_SIZE);
      yield* insert(w, G, a + PAGE_SIZE, PAGE_SIZE);
      yield* w.proc.exit();
      exited = w.proc.mm.exited;
    });
    expect(r.reason).toBe('violation');
    expect(r.violations.map((v) => v.kind)).toEqual(['mmn-interval-false-blockable']);
    expect(exited).toBe(true);
    expect(w.calls.map((c) => [c.sub, c.event, c.start, c.end, c.blockable])).toEqual([
      ['F:false', 'RELEASE', 0, TASK_SIZE, true],
      ['G', 'RELEASE', 0, TASK_SIZE, true], // called after F's false
      ['F', 'UNMAP', 0, TASK_SIZE, true],
      ['G', 'UNMAP', 0, TASK_SIZE, true],
    ]);
    expect(
      ofType(w.sim, 'mmn.itree.state').map((e) => [e.data.active, e.data.seq, e.data.state]),
    ).toEqual([
      [1, 3, 'full'],
      [0, 4, 'idle'], // the RELEASE pass ended normally
      [1, 5, 'full'],
      [0, 6, 'idle'],
    ]);
  });

  it('33: in any blockable window a false return is a WARN; later subs are still called and the window ends normally', () => {
    const w = world({ stopOnViolation: false });
    const F = driverSub(w, 'F', { fail: () => true });
    const G = driverSub(w, 'G');
    let result = 1;
    const r = run(w, function* () {
      yield* insert(w, F, 16 * MB, PAGE_SIZE);
      yield* insert(w, G, 16 * MB + PAGE_SIZE, PAGE_SIZE);
      const win = yield* openWin(w, 1, 16 * MB, 17 * MB);
      result = win.result;
      yield* closeWin(w, win);
    });
    expect(r.violations.map((v) => v.kind)).toEqual(['mmn-interval-false-blockable']);
    expect(result).toBe(0);
    expect(names(w.calls)).toEqual(['F:false', 'G']);
    expect(subsOf(w).state).toBe('idle');
  });

  it('34: a non-blockable start whose interval callback returns false: later subs and list subs not called, state rolled back, waiters woken, -EAGAIN', () => {
    const w = world();
    let readerStarted = false;
    let wq: { length: number } = { length: 0 };
    const a = driverSub(w, 'a', {
      *after(range) {
        // The device invalidation is in flight: spin (no sleep) until the reader has gone to
        // sleep on a's new sequence.
        if (!range.blockable) yield* until(w, () => wq.length === 1);
      },
    });
    const b = driverSub(w, 'b', { fail: (range) => !range.blockable }); // would have to sleep
    const c = driverSub(w, 'c');
    const listLog: string[] = [];
    let result = 0;
    let after: Snap | null = null;
    let readerSeq = 0;
    let readerAt = -1;
    const r = run(w, function* () {
      yield* insert(w, a, 16 * MB, PAGE_SIZE);
      yield* insert(w, b, 16 * MB + PAGE_SIZE, PAGE_SIZE);
      yield* insert(w, c, 16 * MB + 2 * PAGE_SIZE, PAGE_SIZE);
      yield* w.mmn.register(
        listSub('L', () => 0, listLog),
        w.proc.mm,
      );
      wq = subsOf(w).wq;
      w.sim.spawn('reader', 1, function* () {
        yield* until(w, () => a.seq === 3);
        readerStarted = true;
        readerSeq = yield* w.mmn.readBegin(a);
        readerAt = mark(w);
      });
      const nb = yield* openWin(w, 0, 16 * MB, 17 * MB, { nonblock: true });
      result = nb.result;
      const s = subsOf(w);
      after = { label: 'after', A: s.activeInvalidateRanges, S: s.invalidateSeq, state: s.state };
      yield* closeWin(w, nb);
      yield* until(w, () => readerAt >= 0);
      // The machinery works normally afterwards.
      yield* closeWin(w, yield* openWin(w, 1, 16 * MB, 17 * MB));
    });
    expectClean(r);
    expect(readerStarted).toBe(true);
    expect(result).toBe(-Errno.EAGAIN);
    expect(after).toEqual({ label: 'after', A: 0, S: 4, state: 'idle' });
    expect(w.calls.map((c) => [c.sub, c.blockable, c.curSeq])).toEqual([
      ['a', false, 3],
      ['b:false', false, 3],
      ['a', true, 5],
      ['b', true, 5],
      ['c', true, 5],
    ]);
    expect(listLog).toEqual(['L:CLEAR']); // only the later blockable window
    expect(readerSeq).toBe(3);
    const evs = eventList(w.sim);
    const bFalse = indexOf(evs, (e) => e.type === 'mmn.callback' && e.d.sub === b.id);
    expect(evs[bFalse]!.d.result).toBe(0);
    const wake = indexOf(evs, (e) => e.type === 'mmn.wake');
    expect(wake).toBeGreaterThan(bFalse);
    expect(evs[wake]!.d).toMatchObject({ seq: 4, woken: 1 });
    expect(readerAt).toBeGreaterThan(wake);
    const start = indexOf(evs, (e) => e.type === 'mmn.invalidate_start');
    expect(evs[start]!.d).toMatchObject({ blockable: false, result: -Errno.EAGAIN });
    expect(start).toBeGreaterThan(wake);
    // No end for the failed window: exactly one invalidate_end (the later window's).
    expect(ofType(w.sim, 'mmn.invalidate_end')).toHaveLength(1);
  });

  it('acceptance: nested and concurrent windows — Full lasts until every window ends, waiters wake exactly then, deferred ops apply in list order first', () => {
    const w = world();
    const X = driverSub(w, 'X');
    const Y = driverSub(w, 'Y');
    const N = driverSub(w, 'N');
    const mm = w.proc.mm;
    let phase = 0;
    let readerAt = -1;
    let removerAt = -1;
    let wiClosedAt = -1;
    let wnCloseAt = -1;
    let beforeLastEnd: { waiting: number; state: string; A: number; tree: string[] } | null = null;
    const r = run(w, function* () {
      yield* insert(w, X, 16 * MB, PAGE_SIZE);
      yield* insert(w, Y, 24 * MB, PAGE_SIZE);
      const wq = subsOf(w).wq;
      // CPU0: a window intersecting nothing, opened first and closed last.
      w.sim.spawn('T0', 0, function* () {
        yield* mm.mmapLock.downRead();
        const wn = new NotifierRange('PROTECTION_VMA', mm, 32 * MB, 40 * MB);
        yield* w.mmn.invalidateRangeStart(wn);
        phase = 1;
        yield* until(w, () => phase === 4);
        const s = subsOf(w);
        beforeLastEnd = {
          waiting: wq.length,
          state: s.state,
          A: s.activeInvalidateRanges,
          tree: treeNames(w),
        };
        wnCloseAt = mark(w);
        yield* w.mmn.invalidateRangeEnd(wn);
        mm.mmapLock.upRead();
      });
      // CPU1: an intersecting window with a nested one inside it.
      w.sim.spawn('T1', 1, function* () {
        yield* until(w, () => phase === 1);
        yield* mm.mmapLock.downRead();
        const wi = new NotifierRange('UNMAP', mm, 16 * MB, 17 * MB);
        yield* w.mmn.invalidateRangeStart(wi);
        const nested = new NotifierRange('CLEAR', mm, 16 * MB, 16 * MB + PAGE_SIZE);
        yield* w.mmn.invalidateRangeStart(nested);
        yield* w.mmn.invalidateRangeEnd(nested);
        phase = 2;
        yield* until(w, () => phase === 3);
        yield* w.mmn.invalidateRangeEnd(wi);
        wiClosedAt = mark(w);
        mm.mmapLock.upRead();
        phase = 4;
      });
      yield* until(w, () => phase === 2);
      w.sim.spawn('reader', 1, function* () {
        yield* w.mmn.readBegin(X);
        readerAt = mark(w);
      });
      yield* until(w, () => wq.length === 1);
      yield* insert(w, N, 20 * MB, PAGE_SIZE); // deferred insert
      w.sim.spawn('remover', 0, function* () {
        yield* w.mmn.intervalRemove(Y); // deferred remove, queued after N's insert
        removerAt = mark(w);
      });
      yield* until(w, () => wq.length === 2);
      phase = 3;
      yield* until(w, () => readerAt >= 0 && removerAt >= 0);
    });
    expectClean(r);
    expect(beforeLastEnd).toEqual({ waiting: 2, state: 'full', A: 1, tree: ['X', 'Y'] });
    expect(
      ofType(w.sim, 'mmn.itree.state').map((e) => [e.data.active, e.data.seq, e.data.state]),
    ).toEqual([
      [1, 2, 'partial'],
      [2, 3, 'full'],
      [3, 3, 'full'], // nested
      [2, 3, 'full'],
      [1, 3, 'full'], // the intersecting window ended: still Full
      [0, 4, 'idle'],
    ]);
    expect(w.calls.map((c) => [c.sub, c.event, c.curSeq])).toEqual([
      ['X', 'UNMAP', 3],
      ['X', 'CLEAR', 3],
    ]);
    const evs = eventList(w.sim);
    const applies = evs
      .map((e, i) => ({ e, i }))
      .filter(({ e }) => e.type === 'mmn.deferred.apply');
    expect(applies.map(({ e }) => [e.d.sub, e.d.op])).toEqual([
      [Y.id, 'remove'],
      [N.id, 'insert'],
    ]);
    const wakes = evs.map((e, i) => ({ e, i })).filter(({ e }) => e.type === 'mmn.wake');
    expect(wakes).toHaveLength(1);
    const wake = wakes[0]!.i;
    expect(wakes[0]!.e.d).toMatchObject({ seq: 4, woken: 2 });
    expect(wiClosedAt).toBeLessThan(wnCloseAt);
    for (const { i } of applies) {
      expect(i).toBeGreaterThanOrEqual(wnCloseAt);
      expect(i).toBeLessThan(wake);
    }
    const wnEnd = indexOf(
      evs,
      (e) => e.type === 'mmn.invalidate_end' && e.d.event === 'PROTECTION_VMA',
    );
    expect(wake).toBeLessThan(wnEnd);
    expect(readerAt).toBeGreaterThan(wake);
    expect(removerAt).toBeGreaterThan(wake);
    expect(treeNames(w)).toEqual(['X', 'N']);
    const rb = ofType(w.sim, 'mmn.read_begin');
    expect(rb.map((e) => [e.data.sub, e.data.seq, e.data.waited])).toEqual([[X.id, 3, true]]);
  });
});
