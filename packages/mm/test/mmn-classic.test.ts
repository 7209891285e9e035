// Classic (list) MMU notifier subscriptions: notifier-core.md §1–§3, §5 and §9 invariants 1–18,
// checked through the subsystem's entry points, the mm operations that call them and the event
// log. Linux mm/mmu_notifier.c and include/linux/mmu_notifier.h (v6.17) decide where the spec is
// unsure.
import { describe, expect, it } from '@jest/globals';
import { Completion, Errno, explore, replay, Simulation } from '@mmnsim/core';
import type { Scenario, StrategySpec, TaskGen, Violation } from '@mmnsim/core';
import {
  Map_,
  Madv,
  mmPlugin,
  MmService,
  MmuNotifier,
  MmuNotifierSubsystem,
  NotifierRange,
  PAGE_SIZE,
  Prot,
  PTE_NONE,
  folioReferenced,
  mmgetNotZero,
  mmput,
  ptePfn,
  ptePresent,
} from '@mmnsim/mm';
import type { MmuNotifierOps, Process } from '@mmnsim/mm';
import { eventList, IpiTlb, ofType, runOk } from './helpers.js';
import type { Ev } from './helpers.js';

const RW = Prot.READ | Prot.WRITE;
const ANON = Map_.PRIVATE | Map_.ANONYMOUS;

interface SetupOptions {
  seed?: number;
  cpus?: number;
  strategy?: StrategySpec;
  /** stopOnViolation (default true); misuse tests turn it off to see every report. */
  stop?: boolean;
  frames?: number;
}

function setup(o: SetupOptions = {}) {
  const sim = Simulation.create({
    seed: o.seed ?? 1,
    cpus: o.cpus ?? 2,
    strategy: o.strategy ?? 'round-robin',
    stopOnViolation: o.stop ?? true,
    plugins: [mmPlugin({ totalFrames: o.frames ?? 1024 })],
  });
  const svc = sim.get(MmService);
  const mmn = sim.get(MmuNotifierSubsystem);
  return { sim, svc, core: svc.core, mmn, proc: svc.createProcess('app') };
}

/** One subscriber callback as a test sees it. */
interface Call {
  sub: string;
  op: string;
  range: NotifierRange | null;
  blockable: boolean;
}

/**
 * Ops that log every start, end and release into `log` (start returns 0); `extra` overrides or
 * adds ops (an `undefined` value removes one).
 */
function traced(name: string, log: Call[], extra: Partial<MmuNotifierOps> = {}): MmuNotifierOps {
  return {
    name,
    *invalidateRangeStart(_s, range) {
      log.push({ sub: name, op: 'start', range, blockable: range.blockable });
      return 0;
    },
    *invalidateRangeEnd(_s, range) {
      log.push({ sub: name, op: 'end', range, blockable: range.blockable });
    },
    *release() {
      log.push({ sub: name, op: 'release', range: null, blockable: true });
    },
    ...extra,
  };
}

const kinds = (vs: readonly Violation[]) => vs.map((v) => v.kind);

function* touch(proc: Process, addr: number, pages: number): TaskGen<void> {
  for (let i = 0; i < pages; i++) expect(yield* proc.store(addr + i * PAGE_SIZE, 1 + i)).toBe(0);
}

/**
 * A mix of mm operations on six touched pages at `base`, each opening windows of another kind:
 * CLEAR (MADV_DONTNEED, COW fault, reclaim — the last under the rmap lock only), PROTECTION_VMA
 * (mprotect), PROTECTION_PAGE (fork), UNMAP (munmap, the child's exit). `beforeUnmap` runs
 * before the munmap: scenarios with a concurrent reclaimer wait for it there (see the note on
 * the swap model at the invariant-5 test).
 */
function* mmWorkload(svc: MmService, proc: Process, base: number): TaskGen<void> {
  expect(yield* proc.madvise(base, PAGE_SIZE, Madv.DONTNEED)).toBe(0);
  expect(yield* proc.store(base, 5)).toBe(0);
  expect(yield* proc.mprotect(base + PAGE_SIZE, PAGE_SIZE, Prot.READ)).toBe(0);
  const child = yield* proc.fork('child');
  expect(yield* proc.store(base + 2 * PAGE_SIZE, 6)).toBe(0);
  yield* svc.reclaim(2);
  expect(yield* proc.munmap(base + 3 * PAGE_SIZE, PAGE_SIZE)).toBe(0);
  if (typeof child !== 'number') yield* child.exit();
}

describe('container and registration (invariants 1–2)', () => {
  it('1: mm_has_notifiers is false until the first successful register, then stays true after unregister', () => {
    const { sim, mmn, proc } = setup({ stop: false });
    const seen: boolean[] = [];
    sim.spawn('drv', 0, function* () {
      seen.push(mmn.hasNotifiers(proc.mm));
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 2);
      expect(yield* proc.munmap(a, PAGE_SIZE)).toBe(0);
      seen.push(mmn.hasNotifiers(proc.mm));
      // A rejected registration creates no container.
      const bad = new MmuNotifier({
        name: 'bad',
        archInvalidateSecondaryTlbs() {},
        *invalidateRangeEnd() {},
      });
      expect(yield* mmn.register(bad, proc.mm)).toBe(-Errno.EINVAL);
      seen.push(mmn.hasNotifiers(proc.mm));
      const sub = new MmuNotifier({ name: 'a' });
      expect(yield* mmn.register(sub, proc.mm)).toBe(0);
      seen.push(mmn.hasNotifiers(proc.mm));
      yield* mmn.unregister(sub, proc.mm);
      seen.push(mmn.hasNotifiers(proc.mm));
      expect(yield* proc.munmap(a + PAGE_SIZE, PAGE_SIZE)).toBe(0);
      seen.push(mmn.hasNotifiers(proc.mm));
      yield* proc.exit();
    });
    const r = sim.run();
    expect(kinds(r.violations)).toEqual(['mmn-arch-hook-with-start-end']);
    expect(seen).toEqual([false, false, false, true, true, true]);
    // The container went away only with the mm_struct.
    expect(proc.mm.freed).toBe(true);
    expect(mmn.hasNotifiers(proc.mm)).toBe(false);
  });

  it('2: with no container every entry point is a no-op: start 0, young ops 0, end/release/hook do nothing', () => {
    const { sim, mmn, proc } = setup();
    const got: Record<string, number> = {};
    let a = 0;
    sim.spawn('t', 0, function* () {
      a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 2);
      const range = new NotifierRange('CLEAR', proc.mm, a, a + 2 * PAGE_SIZE);
      got.start = yield* mmn.invalidateRangeStart(range);
      yield* mmn.invalidateRangeEnd(range);
      const nb = new NotifierRange('UNMAP', proc.mm, a, a + PAGE_SIZE);
      got.nonblock = yield* mmn.invalidateRangeStartNonblock(nb);
      got.clearFlushYoung = mmn.clearFlushYoung(proc.mm, a, a + PAGE_SIZE);
      got.clearYoung = mmn.clearYoung(proc.mm, a, a + PAGE_SIZE);
      got.testYoung = mmn.testYoung(proc.mm, a);
      mmn.archInvalidateSecondaryTlbs(proc.mm, a, a + PAGE_SIZE);
      expect(yield* proc.munmap(a, 2 * PAGE_SIZE)).toBe(0);
      expect(mmn.subscriptions(proc.mm)).toBeNull();
      yield* proc.exit();
    });
    runOk(sim);
    expect(got).toEqual({ start: 0, nonblock: 0, clearFlushYoung: 0, clearYoung: 0, testYoung: 0 });
    const evs = eventList(sim);
    // Our two calls and the munmap's window (exit has no VMA left, so no window).
    expect(evs.filter((e) => e.type === 'mmn.invalidate_start').map((e) => e.d.result)).toEqual([
      0, 0, 0,
    ]);
    expect(evs.filter((e) => e.type === 'mmn.young').map((e) => e.d.result)).toEqual([0, 0, 0]);
    // Nothing behind the wrappers ran: no callback, no SRCU section, no registration.
    for (const t of ['mmn.callback', 'mmn.register', 'srcu.read_lock', 'mmn.free'])
      expect(evs.filter((e) => e.type === t)).toEqual([]);
    expect(evs.filter((e) => e.type === 'mmn.release').length).toBe(1);
  });
});

describe('container, registration and the mm_struct lifetime (invariants 3–8)', () => {
  it('3: a fresh container has seq 2, no active ranges, an empty tree and deferred list, no itree; it is kept after the last unregister', () => {
    const { sim, mmn, proc } = setup();
    const snaps: unknown[] = [];
    const snap = () => {
      const s = mmn.subscriptions(proc.mm)!;
      return {
        seq: s.invalidateSeq,
        active: s.activeInvalidateRanges,
        list: s.list.map((x) => x.ops.name),
        tree: s.itree.size,
        deferred: s.deferredList.length,
        hasItree: s.hasItree,
        state: s.state,
      };
    };
    // At the moment of publication (the register event), before anything else can run.
    sim.bus.on('mmn.register').subscribe(() => snaps.push(snap()));
    sim.spawn('drv', 0, function* () {
      const a = new MmuNotifier({ name: 'a' });
      expect(mmn.subscriptions(proc.mm)).toBeNull();
      expect(yield* mmn.register(a, proc.mm)).toBe(0);
      const container = mmn.subscriptions(proc.mm);
      yield* mmn.unregister(a, proc.mm);
      snaps.push(snap());
      expect(mmn.subscriptions(proc.mm)).toBe(container);
      expect(yield* mmn.register(new MmuNotifier({ name: 'b' }), proc.mm)).toBe(0);
      expect(mmn.subscriptions(proc.mm)).toBe(container);
    });
    runOk(sim);
    const fresh = { seq: 2, active: 0, tree: 0, deferred: 0, hasItree: false, state: 'idle' };
    expect(snaps).toEqual([
      { ...fresh, list: ['a'] },
      { ...fresh, list: [] },
      { ...fresh, list: ['b'] },
    ]);
  });

  it('4: ops with arch_invalidate_secondary_tlbs plus start or end are refused with -EINVAL, a WARN naming the rule, and no state change', () => {
    const { sim, mmn, proc } = setup({ stop: false });
    const states: unknown[] = [];
    const state = (sub: MmuNotifier) => ({
      container: mmn.subscriptions(proc.mm) !== null,
      list: mmn.subscriptions(proc.mm)?.list.map((x) => x.ops.name) ?? null,
      count: proc.mm.count,
      subMm: sub.mm === null ? null : sub.mm.id,
      hashed: sub.hashed,
      users: sub.users,
    });
    sim.spawn('drv', 0, function* () {
      const withStart = new MmuNotifier({
        name: 'arch+start',
        archInvalidateSecondaryTlbs() {},
        *invalidateRangeStart() {
          return 0;
        },
      });
      states.push(state(withStart));
      expect(yield* mmn.register(withStart, proc.mm)).toBe(-Errno.EINVAL);
      states.push(state(withStart));
      expect(yield* mmn.register(new MmuNotifier({ name: 'ok' }), proc.mm)).toBe(0);
      const withEnd = new MmuNotifier({
        name: 'arch+end',
        archInvalidateSecondaryTlbs() {},
        *invalidateRangeEnd() {},
      });
      states.push(state(withEnd));
      expect(yield* mmn.register(withEnd, proc.mm)).toBe(-Errno.EINVAL);
      states.push(state(withEnd));
      // The hook alone is fine.
      const sva = new MmuNotifier({ name: 'sva', archInvalidateSecondaryTlbs() {} });
      expect(yield* mmn.register(sva, proc.mm)).toBe(0);
      states.push(state(sva));
    });
    const r = sim.run();
    expect(kinds(r.violations)).toEqual([
      'mmn-arch-hook-with-start-end',
      'mmn-arch-hook-with-start-end',
    ]);
    for (const v of r.violations) {
      expect(v.message).toContain('arch_invalidate_secondary_tlbs');
      expect(v.message).toContain('invariant 4');
    }
    const none = { subMm: null, hashed: false, users: 0 };
    expect(states).toEqual([
      { container: false, list: null, count: 1, ...none },
      { container: false, list: null, count: 1, ...none },
      { container: true, list: ['ok'], count: 2, ...none },
      { container: true, list: ['ok'], count: 2, ...none },
      { container: true, list: ['sva', 'ok'], count: 3, subMm: proc.mm.id, hashed: true, users: 1 },
    ]);
    expect(ofType(sim, 'mmn.register').map((e) => e.data.name)).toEqual(['ok', 'sva']);
  });

  it('6: register holds mm_count until unregister returns; get/put holds it until the SRCU free after the last put', () => {
    const { sim, mmn, proc } = setup();
    const mm = proc.mm;
    const c: Record<string, number> = {};
    sim.bus.on('mmn.unregister').subscribe(() => (c.atUnregisterEvent = mm.count));
    sim.bus.on('srcu.sync_end').subscribe(() => (c.atSyncEnd ??= mm.count));
    const ops: MmuNotifierOps = {
      name: 'getput',
      allocNotifier: () => new MmuNotifier(ops),
      freeNotifier: (s) => (c.inFree = s.mm!.count),
    };
    sim.spawn('drv', 0, function* () {
      c.before = mm.count;
      const sub = new MmuNotifier({ name: 'classic' });
      expect(yield* mmn.register(sub, mm)).toBe(0);
      c.registered = mm.count;
      yield* mmn.unregister(sub, mm);
      c.unregistered = mm.count;
      const g1 = yield* mmn.get(ops, mm);
      const g2 = yield* mmn.get(ops, mm);
      expect(g1).toBeInstanceOf(MmuNotifier);
      expect(g2).toBe(g1);
      c.got = mm.count;
      const s = g1 as MmuNotifier;
      c.users = s.users;
      mmn.put(s);
      mmn.put(s);
      c.afterLastPut = mm.count;
      c.pending = mmn.srcu.pendingCallbacks();
      yield* mmn.synchronize();
      c.afterSync = mm.count;
      yield* proc.exit();
    });
    runOk(sim);
    expect(c).toEqual({
      before: 1,
      registered: 2,
      atSyncEnd: 2, // unregister's synchronize_srcu: the reference is still held
      atUnregisterEvent: 2,
      unregistered: 1,
      got: 2,
      users: 2,
      afterLastPut: 2,
      pending: 1,
      inFree: 2, // free_notifier runs before the mmdrop
      afterSync: 1,
    });
    expect(mm.freed).toBe(true);
  });

  it('7: freeing the mm_struct while a subscription is still listed is a BUG (a driver that unregisters twice)', () => {
    const { sim, mmn, proc } = setup();
    const counts: number[] = [];
    sim.spawn('drv', 0, function* () {
      const a = new MmuNotifier({ name: 'a' });
      const b = new MmuNotifier({ name: 'b' });
      expect(yield* mmn.register(a, proc.mm)).toBe(0);
      expect(yield* mmn.register(b, proc.mm)).toBe(0);
      counts.push(proc.mm.count);
      yield* mmn.unregister(a, proc.mm);
      counts.push(proc.mm.count);
      // Each extra unregister drops an mm_count reference the driver does not own; the last one
      // frees the mm_struct with b still on the list.
      yield* mmn.unregister(a, proc.mm);
      counts.push(proc.mm.count);
      yield* mmn.unregister(a, proc.mm);
    });
    const r = sim.run();
    expect(counts).toEqual([3, 2, 1]);
    expect(kinds(r.violations)).toEqual(['bug']);
    expect(r.violations[0]!.message).toContain('mmu_notifier_subscriptions_destroy');
    expect(r.violations[0]!.message).toContain('still on its list');
  });

  it('7: the mm_struct is freed cleanly once every subscription is off the list (exit, then unregister and put)', () => {
    const { sim, mmn, proc } = setup();
    const mm = proc.mm;
    const at: string[] = [];
    const ops: MmuNotifierOps = {
      name: 'getput',
      allocNotifier: () => new MmuNotifier(ops),
      freeNotifier: () => at.push(`free:${mm.count}`),
    };
    sim.spawn('drv', 0, function* () {
      const a = new MmuNotifier({ name: 'a' });
      expect(yield* mmn.register(a, mm)).toBe(0);
      const g = (yield* mmn.get(ops, mm)) as MmuNotifier;
      const addr = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, addr, 2);
      yield* proc.exit(); // exit_mmap takes both off the list; their references keep the mm_struct
      at.push(`exit:${mm.count}:${mm.freed}:${mmn.subscriptions(mm)!.list.length}`);
      yield* mmn.unregister(a, mm);
      at.push(`unregister:${mm.count}:${mm.freed}`);
      mmn.put(g);
      yield* mmn.synchronize();
      at.push(`put:${mm.count}:${mm.freed}`);
    });
    runOk(sim);
    expect(at).toEqual(['exit:2:false:0', 'unregister:1:false', 'free:1', 'put:0:true']);
    expect(mm.notifierSubscriptions).toBeNull();
  });

  it('8: every list walk visits subscriptions newest first (start, end, young ops, arch hook, release)', () => {
    const { sim, mmn, proc } = setup();
    const log: Call[] = [];
    const young = (name: string): Partial<MmuNotifierOps> => ({
      clearFlushYoung: () => (log.push({ sub: name, op: 'cfy', range: null, blockable: false }), 0),
      clearYoung: () => (log.push({ sub: name, op: 'cy', range: null, blockable: false }), 0),
      testYoung: () => (log.push({ sub: name, op: 'ty', range: null, blockable: false }), 0),
    });
    const hook = (name: string): MmuNotifierOps => ({
      name,
      archInvalidateSecondaryTlbs: () => {
        log.push({ sub: name, op: 'hook', range: null, blockable: false });
      },
      *release() {
        log.push({ sub: name, op: 'release', range: null, blockable: true });
      },
    });
    const by = (op: string) => log.filter((c) => c.op === op).map((c) => c.sub);
    const seen: Record<string, string[]> = {};
    sim.spawn('drv', 0, function* () {
      const subs: Record<string, MmuNotifier> = {};
      for (const [n, ops] of [
        ['A', traced('A', log, young('A'))],
        ['X', hook('X')],
        ['B', traced('B', log, young('B'))],
        ['Y', hook('Y')],
        ['C', traced('C', log, young('C'))],
      ] as const) {
        subs[n] = new MmuNotifier(ops);
        expect(yield* mmn.register(subs[n], proc.mm)).toBe(0);
      }
      seen.list = mmn.subscriptions(proc.mm)!.list.map((s) => s.ops.name);
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 2);
      log.length = 0;
      expect(yield* proc.munmap(a, PAGE_SIZE)).toBe(0);
      mmn.clearFlushYoung(proc.mm, a, a + PAGE_SIZE);
      mmn.clearYoung(proc.mm, a, a + PAGE_SIZE);
      mmn.testYoung(proc.mm, a);
      for (const op of ['start', 'end', 'hook', 'cfy', 'cy', 'ty']) seen[op] = by(op);
      // After B leaves, the others keep their order.
      yield* mmn.unregister(subs.B!, proc.mm);
      log.length = 0;
      expect(yield* proc.munmap(a + PAGE_SIZE, PAGE_SIZE)).toBe(0);
      seen.start2 = by('start');
      seen.hook2 = by('hook');
      yield* proc.exit();
      seen.release = by('release');
    });
    runOk(sim);
    expect(seen).toEqual({
      list: ['C', 'Y', 'B', 'X', 'A'],
      start: ['C', 'B', 'A'],
      end: ['C', 'B', 'A'],
      hook: ['Y', 'X'],
      cfy: ['C', 'B', 'A'],
      cy: ['C', 'B', 'A'],
      ty: ['C', 'B', 'A'],
      start2: ['C', 'A'],
      hook2: ['Y', 'X', 'Y', 'X'], // the last VMA goes: a second flush for the page tables
      release: ['C', 'Y', 'X', 'A'],
    });
  });
});

describe('young ops, start/end passes and their failure rules (invariants 13–16)', () => {
  it('13: clear_flush_young and clear_young OR the results of every subscriber; test_young returns the first non-zero and stops', () => {
    const { sim, mmn, proc } = setup();
    const calls: string[] = [];
    const young = (name: string, v: number): MmuNotifierOps => ({
      name,
      clearFlushYoung: () => (calls.push(`${name}.cfy`), v),
      clearYoung: () => (calls.push(`${name}.cy`), v),
      testYoung: () => (calls.push(`${name}.ty`), v),
    });
    const got: Record<string, unknown> = {};
    sim.spawn('drv', 0, function* () {
      const mm = proc.mm;
      // Registered A..E, walked E, D, C, B, A; D has no young ops.
      for (const ops of [young('A', 4), young('B', 0), young('C', 2), { name: 'D' }, young('E', 0)])
        expect(yield* mmn.register(new MmuNotifier(ops), mm)).toBe(0);
      const take = () => calls.splice(0).join(' ');
      got.cfy = [mmn.clearFlushYoung(mm, 0, PAGE_SIZE), take()];
      got.cy = [mmn.clearYoung(mm, 0, PAGE_SIZE), take()];
      got.ty = [mmn.testYoung(mm, 0), take()];
    });
    runOk(sim);
    expect(got).toEqual({
      cfy: [6, 'E.cfy C.cfy B.cfy A.cfy'],
      cy: [6, 'E.cy C.cy B.cy A.cy'],
      ty: [2, 'E.ty C.ty'], // A is never asked
    });
    expect(ofType(sim, 'mmn.young').map((e) => [e.data.op, e.data.result])).toEqual([
      ['clear_flush_young', 6],
      ['clear_young', 6],
      ['test_young', 2],
    ]);
  });

  it('13: test_young with no young subscriber returns 0 after asking all of them; aging ORs the notifier into the CPU accessed bit', () => {
    const { sim, mmn, core, proc } = setup();
    const calls: string[] = [];
    let secondaryYoung = 1;
    const got: number[] = [];
    sim.spawn('drv', 0, function* () {
      for (const name of ['A', 'B'])
        expect(
          yield* mmn.register(
            new MmuNotifier({
              name,
              testYoung: () => (calls.push(name), 0),
              clearFlushYoung: () => (calls.push(`${name}.cfy`), name === 'A' ? secondaryYoung : 0),
            }),
            proc.mm,
          ),
        ).toBe(0);
      got.push(mmn.testYoung(proc.mm, 0));
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 1);
      const pfn = ptePfn(core.pt.pte(proc.mm, a));
      got.push(yield* folioReferenced(core, pfn)); // CPU accessed bit
      got.push(yield* folioReferenced(core, pfn)); // CPU bit clear: the secondary MMU's says young
      secondaryYoung = 0;
      got.push(yield* folioReferenced(core, pfn)); // nobody young
    });
    runOk(sim);
    expect(got).toEqual([0, 1, 1, 0]);
    expect(calls).toEqual(['B', 'A', 'B.cfy', 'A.cfy', 'B.cfy', 'A.cfy', 'B.cfy', 'A.cfy']);
  });

  it('14: in blockable ranges every subscriber with start is called exactly once per start, with end once per end', () => {
    const { sim, svc, mmn, proc } = setup({ frames: 256 });
    const log: Call[] = [];
    let child: Process | null = null;
    sim.spawn('app', 0, function* () {
      const mm = proc.mm;
      expect(yield* mmn.register(new MmuNotifier(traced('A', log)), mm)).toBe(0);
      const startOnly = traced('B', log, { invalidateRangeEnd: undefined });
      expect(yield* mmn.register(new MmuNotifier(startOnly), mm)).toBe(0);
      const endOnly = traced('C', log, { invalidateRangeStart: undefined });
      expect(yield* mmn.register(new MmuNotifier(endOnly), mm)).toBe(0);
      const a = yield* proc.mmap(0, 8 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 8);
      expect(yield* proc.madvise(a, 2 * PAGE_SIZE, Madv.DONTNEED)).toBe(0);
      expect(yield* proc.mprotect(a + 2 * PAGE_SIZE, 2 * PAGE_SIZE, Prot.READ)).toBe(0);
      const c = yield* proc.fork('child');
      expect(typeof c).not.toBe('number');
      child = c as Process;
      expect(yield* proc.store(a + 4 * PAGE_SIZE, 99)).toBe(0); // COW fault: CLEAR one page
      expect(yield* svc.reclaim(2)).toBeGreaterThanOrEqual(0);
      expect(yield* proc.munmap(a + 5 * PAGE_SIZE, 3 * PAGE_SIZE)).toBe(0);
      yield* child.exit();
      yield* proc.exit();
    });
    runOk(sim);
    // Up to exit's release, which takes the subscriptions off the list: exit's own UNMAP
    // window reaches nobody.
    const released = ofType(sim, 'mmn.release').find((e) => e.data.mm === proc.mm.id)!.seq;
    const mine = (e: { seq: number; data: { mm: number } }) =>
      e.data.mm === proc.mm.id && e.seq < released;
    const starts = ofType(sim, 'mmn.invalidate_start').filter(mine);
    const ends = ofType(sim, 'mmn.invalidate_end').filter(mine);
    const events = new Set(starts.map((e) => e.data.event));
    for (const ev of ['CLEAR', 'PROTECTION_VMA', 'PROTECTION_PAGE', 'UNMAP'])
      expect(events.has(ev)).toBe(true);
    expect(starts.length).toBeGreaterThanOrEqual(6);
    for (const s of starts) expect(s.data).toMatchObject({ blockable: true, result: 0 });
    const per = (sub: string, op: string, id: number) =>
      log.filter((c) => c.sub === sub && c.op === op && c.range!.id === id).length;
    for (const s of starts) {
      expect([per('A', 'start', s.data.range), per('B', 'start', s.data.range)]).toEqual([1, 1]);
      expect(per('C', 'start', s.data.range)).toBe(0);
    }
    for (const e of ends) {
      expect([per('A', 'end', e.data.range), per('C', 'end', e.data.range)]).toEqual([1, 1]);
      expect(per('B', 'end', e.data.range)).toBe(0);
    }
    expect(ends.map((e) => e.data.range).sort()).toEqual(starts.map((e) => e.data.range).sort());
    // The callback events name their window (the range has its identity before the first call).
    const cbs = ofType(sim, 'mmn.callback').filter((e) => e.data.op !== 'release');
    for (const s of starts) {
      const mineCbs = cbs.filter((e) => e.data.range === s.data.range);
      expect(mineCbs.map((e) => `${e.data.name}.${e.data.op}`).sort()).toEqual([
        'A.invalidate_range_end',
        'A.invalidate_range_start',
        'B.invalidate_range_start',
        'C.invalidate_range_end',
      ]);
    }
    // No other start or end call.
    const calls = log.filter((c) => c.op !== 'release');
    expect(calls.length).toBe(2 * starts.length + 2 * ends.length);
    expect(ofType(sim, 'mmn.invalidate_start').filter((e) => e.seq > released).length).toBe(1);
    for (const c of calls) expect(c.blockable).toBe(true);
  });
});

describe('non-blockable start failure (invariants 15–16)', () => {
  it('15: a failing non-blockable start still calls every start, then end of every subscriber that has one, and returns the error', () => {
    const { sim, mmn, proc } = setup();
    const log: Call[] = [];
    let result = 0;
    let range: NotifierRange | null = null;
    sim.spawn('drv', 0, function* () {
      const mm = proc.mm;
      // Registered A..D, walked D, C, B, A.
      expect(yield* mmn.register(new MmuNotifier(traced('A', log)), mm)).toBe(0);
      const fails = traced('B', log, {
        *invalidateRangeStart(_s, r) {
          log.push({ sub: 'B', op: 'start', range: r, blockable: r.blockable });
          return -Errno.EAGAIN;
        },
        invalidateRangeEnd: undefined,
      });
      expect(yield* mmn.register(new MmuNotifier(fails), mm)).toBe(0);
      const startOnly = traced('C', log, { invalidateRangeEnd: undefined });
      expect(yield* mmn.register(new MmuNotifier(startOnly), mm)).toBe(0);
      const endOnly = traced('D', log, { invalidateRangeStart: undefined });
      expect(yield* mmn.register(new MmuNotifier(endOnly), mm)).toBe(0);
      range = new NotifierRange('UNMAP', mm, 0, 4 * PAGE_SIZE);
      result = yield* mmn.invalidateRangeStartNonblock(range);
    });
    runOk(sim); // -EAGAIN from a start without an end in a non-blockable range is legal
    expect(result).toBe(-Errno.EAGAIN);
    expect(log.map((c) => `${c.sub}.${c.op}`)).toEqual([
      'C.start',
      'B.start',
      'A.start',
      'D.end',
      'A.end',
    ]);
    for (const c of log) expect([c.range, c.blockable]).toEqual([range, false]);
    expect(
      ofType(sim, 'mmn.invalidate_start').map((e) => [e.data.blockable, e.data.result]),
    ).toEqual([[false, -Errno.EAGAIN]]);
    expect(ofType(sim, 'mmn.invalidate_end')).toEqual([]);
  });

  it('15: the OOM reaper skips a VMA whose start failed (no end, no PTE change) and reaps it on the next attempt', () => {
    const { sim, svc, core, mmn, proc } = setup();
    const log: Call[] = [];
    let failuresLeft = 1;
    let a = 0;
    let reaped: boolean | null = null;
    sim.spawn('victim', 0, function* () {
      const mm = proc.mm;
      expect(yield* mmn.register(new MmuNotifier(traced('A', log)), mm)).toBe(0);
      const busy = traced('B', log, {
        *invalidateRangeStart(_s, r) {
          log.push({ sub: 'B', op: 'start', range: r, blockable: r.blockable });
          // A driver that would need to sleep for its lock: -EAGAIN when it may not.
          if (!r.blockable && failuresLeft > 0) {
            failuresLeft--;
            return -Errno.EAGAIN;
          }
          return 0;
        },
        invalidateRangeEnd: undefined,
      });
      expect(yield* mmn.register(new MmuNotifier(busy), mm)).toBe(0);
      a = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 4);
      reaped = yield* svc.oomReap(proc);
      yield* proc.exit();
    });
    runOk(sim);
    expect(reaped).toBe(true);
    const evs = eventList(sim);
    const starts = evs.filter((e) => e.type === 'mmn.invalidate_start' && e.d.blockable === false);
    expect(starts.map((e) => e.d.result)).toEqual([-Errno.EAGAIN, 0]);
    const [failed, ok] = starts;
    // The failed window: both subscribers asked, A (which has an end) told to end by the core.
    const inFailed = log.filter((c) => c.range?.id === failed!.d.range);
    expect(inFailed.map((c) => `${c.sub}.${c.op}`)).toEqual(['B.start', 'A.start', 'A.end']);
    // ... and the caller neither ends it nor touches a PTE before the next attempt's start.
    expect(
      evs.filter((e) => e.type === 'mmn.invalidate_end' && e.d.range === failed!.d.range),
    ).toEqual([]);
    const between = evs.filter((e) => e.seq > failed!.seq && e.seq < ok!.seq);
    expect(between.filter((e) => e.type === 'mm.pte.set' || e.type === 'mm.frame.free')).toEqual(
      [],
    );
    const inOk = log.filter((c) => c.range?.id === ok!.d.range);
    expect(inOk.map((c) => `${c.sub}.${c.op}`)).toEqual(['B.start', 'A.start', 'A.end']);
    expect(
      evs.filter((e) => e.type === 'mmn.invalidate_end' && e.d.range === ok!.d.range).length,
    ).toBe(1);
    for (let i = 0; i < 4; i++) expect(core.pt.pte(proc.mm, a + i * PAGE_SIZE)).toBe(PTE_NONE);
  });

  it('15: callbacks of a non-blockable range run in non_block context: one that sleeps is reported', () => {
    const { sim, mmn, proc } = setup();
    sim.spawn('drv', 0, function* () {
      const sleepy: MmuNotifierOps = {
        name: 'sleepy',
        *invalidateRangeStart() {
          sim.kernel.mightSleep('mutex_lock(sleepy->lock)');
          return 0;
        },
      };
      expect(yield* mmn.register(new MmuNotifier(sleepy), proc.mm)).toBe(0);
      yield* mmn.invalidateRangeStartNonblock(new NotifierRange('UNMAP', proc.mm, 0, PAGE_SIZE));
    });
    const r = sim.run();
    expect(kinds(r.violations)).toEqual(['sleep-in-atomic']);
    expect(r.violations[0]!.message).toContain('non-blockable invalidate_range_start of sleepy');
  });

  it('16: a failing start with an end method WARNs; so does a failure in a blockable range, and any code but -EAGAIN', () => {
    const { sim, mmn, proc } = setup({ stop: false });
    const results: number[] = [];
    let a = 0;
    sim.spawn('drv', 0, function* () {
      const mm = proc.mm;
      a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 2);
      let code = 0;
      const bad: MmuNotifierOps = {
        name: 'bad',
        *invalidateRangeStart() {
          return code;
        },
      };
      const sub = new MmuNotifier(bad);
      expect(yield* mmn.register(sub, mm)).toBe(0);
      // (1) -EAGAIN in a blockable range: the blocking wrapper's callers (munmap) never fail.
      code = -Errno.EAGAIN;
      expect(yield* proc.munmap(a, PAGE_SIZE)).toBe(0);
      // (2) a code other than -EAGAIN in a non-blockable range.
      code = -Errno.ENOMEM;
      results.push(
        yield* mmn.invalidateRangeStartNonblock(new NotifierRange('UNMAP', mm, a, a + 1)),
      );
      yield* mmn.unregister(sub, mm);
      // (3) -EAGAIN, non-blockable, but the subscriber has an end method.
      const withEnd = new MmuNotifier({
        name: 'with-end',
        *invalidateRangeStart() {
          return -Errno.EAGAIN;
        },
        *invalidateRangeEnd() {},
      });
      expect(yield* mmn.register(withEnd, mm)).toBe(0);
      results.push(
        yield* mmn.invalidateRangeStartNonblock(new NotifierRange('UNMAP', mm, a, a + 1)),
      );
    });
    const r = sim.run();
    expect(results).toEqual([-Errno.ENOMEM, -Errno.EAGAIN]);
    expect(r.violations.map((v) => [v.kind, v.message])).toEqual([
      [
        'mmn-start-failure-warn',
        expect.stringContaining(`returned ${-Errno.EAGAIN} for a blockable range`),
      ],
      [
        'mmn-start-failure-warn',
        expect.stringContaining(`returned ${-Errno.ENOMEM} for a non-blockable range`),
      ],
      [
        'mmn-failing-start-has-end',
        expect.stringContaining(
          'with-end failed invalidate_range_start but implements invalidate_range_end',
        ),
      ],
    ]);
    for (const v of r.violations) expect(v.message).toContain('invariant 16');
  });
});

describe('unregister, put and release against concurrent callbacks (invariants 9–12)', () => {
  it('9: unregister waits for a start still sleeping on another CPU; nothing of the subscription runs after it returns', () => {
    const { sim, mmn, proc } = setup();
    const log: string[] = [];
    let entered = false;
    let sub: MmuNotifier | null = null;
    sim.bus.on('srcu.sync_start').subscribe(() => log.push('sync_start'));
    sim.bus.on('srcu.sync_end').subscribe(() => log.push('sync_end'));
    sim.spawn('unmapper', 0, function* () {
      sub = new MmuNotifier({
        name: 'S',
        *invalidateRangeStart() {
          log.push('S.start-enter');
          entered = true;
          yield* sim.scheduler.sleepFor(1_000_000); // waits for its device
          log.push('S.start-exit');
          return 0;
        },
        *invalidateRangeEnd() {
          log.push('S.end');
        },
        *release() {
          log.push('S.release');
        },
      });
      expect(yield* mmn.register(sub, proc.mm)).toBe(0);
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 2);
      expect(yield* proc.munmap(a, 2 * PAGE_SIZE)).toBe(0);
      log.push('munmap-done');
    });
    sim.spawn('driver', 1, function* () {
      while (!entered) yield* sim.scheduler.preempt();
      log.push('unregister');
      yield* mmn.unregister(sub!, proc.mm);
      log.push('unregister-returned');
    });
    runOk(sim);
    expect(log.filter((l) => l !== 'munmap-done')).toEqual([
      'S.start-enter',
      'unregister',
      'S.release',
      'sync_start',
      'S.start-exit', // the grace period waits for the running start
      'sync_end',
      'unregister-returned',
    ]);
    // The munmap finished without an end call for the unlinked subscription.
    expect(log.indexOf('munmap-done')).toBeGreaterThan(log.indexOf('S.start-exit'));
    expect(log).not.toContain('S.end');
    const unreg = ofType(sim, 'mmn.unregister')[0]!.seq;
    const late = ofType(sim, 'mmn.callback').filter((e) => e.data.name === 'S' && e.seq > unreg);
    expect(late).toEqual([]);
  });

  it('9: over 150 PCT schedules, no op of a subscription runs, or is still running, once unregister returned', () => {
    let unregistered = 0;
    let callsBefore = 0;
    let inFlight = 0; // unregister called while an op of that subscription was running
    const scenario: Scenario = {
      id: 'mmn-unregister-vs-ops',
      options: () => ({ cpus: 3, log: false, plugins: [mmPlugin({ totalFrames: 256 })] }),
      setup(sim) {
        const svc = sim.get(MmService);
        const mmn = sim.get(MmuNotifierSubsystem);
        const proc = svc.createProcess('app');
        const running = new Map<string, number>();
        const gone = new Set<string>();
        const enter = (name: string, op: string) => {
          if (gone.has(name)) sim.warn('op-after-unregister', `${name}.${op} after unregister`);
          running.set(name, (running.get(name) ?? 0) + 1);
          callsBefore++;
        };
        const leave = (name: string) => running.set(name, running.get(name)! - 1);
        const sleepy = (name: string): MmuNotifierOps => ({
          name,
          *invalidateRangeStart() {
            enter(name, 'start');
            yield* sim.scheduler.preempt();
            leave(name);
            return 0;
          },
          *invalidateRangeEnd() {
            enter(name, 'end');
            yield* sim.scheduler.preempt();
            leave(name);
          },
          *release() {
            enter(name, 'release');
            yield* sim.scheduler.preempt();
            leave(name);
          },
          clearFlushYoung: () => (enter(name, 'young'), leave(name), 0),
        });
        const hook = (name: string): MmuNotifierOps => ({
          name,
          archInvalidateSecondaryTlbs: () => {
            enter(name, 'hook');
            leave(name);
          },
        });
        const ready = new Completion(sim.kernel, 'ready');
        let base = 0;
        sim.spawn('app', 0, function* () {
          base = yield* proc.mmap(0, 6 * PAGE_SIZE, RW, ANON);
          yield* touch(proc, base, 6);
          ready.completeAll();
          yield* mmWorkload(svc, proc, base);
        });
        sim.spawn('driver', 1, function* () {
          const subs = [new MmuNotifier(sleepy('S')), new MmuNotifier(hook('H'))];
          for (const s of subs) expect(yield* mmn.register(s, proc.mm)).toBe(0);
          yield* ready.wait();
          for (const s of subs) {
            for (let i = 0; i < 3; i++) yield* sim.scheduler.preempt();
            if ((running.get(s.ops.name) ?? 0) > 0) inFlight++;
            yield* mmn.unregister(s, proc.mm);
            gone.add(s.ops.name);
            unregistered++;
            if ((running.get(s.ops.name) ?? 0) !== 0)
              sim.warn('op-running-after-unregister', `${s.ops.name} still running`);
          }
        });
        sim.spawn('aging', 2, function* () {
          yield* ready.wait();
          for (let i = 0; i < 6; i++) {
            const pte = svc.core.pt.pte(proc.mm, base + i * PAGE_SIZE);
            if (ptePresent(pte)) yield* folioReferenced(svc.core, ptePfn(pte));
            yield* sim.scheduler.preempt();
          }
        });
      },
    };
    const report = explore(scenario, { strategy: 'pct', iterations: 150, stopOnFirst: false });
    expect(report.failures.map((f) => kinds(f.violations))).toEqual([]);
    expect(unregistered).toBe(2 * 151); // explore's round-robin probe run, then 150 PCT runs
    expect(callsBefore).toBeGreaterThan(150);
    expect(inFlight).toBeGreaterThan(5);
  });

  it('10: after the last put, free_notifier runs once, after a grace period that waits for a running start, then the mm reference goes', () => {
    const { sim, mmn, proc } = setup();
    const log: string[] = [];
    let entered = false;
    let frees = 0;
    const mm = proc.mm;
    const ops: MmuNotifierOps = {
      name: 'getput',
      allocNotifier: () => new MmuNotifier(ops),
      freeNotifier: () => {
        frees++;
        log.push(`free(count=${mm.count})`);
      },
      *invalidateRangeStart() {
        log.push('start-enter');
        entered = true;
        yield* sim.scheduler.sleepFor(1_000_000);
        log.push('start-exit');
        return 0;
      },
    };
    sim.bus.on('srcu.gp_end').subscribe(() => log.push('gp_end'));
    sim.bus.on('mmn.free').subscribe(() => log.push(`mmn.free(count=${mm.count})`));
    let sub: MmuNotifier | null = null;
    sim.spawn('unmapper', 0, function* () {
      sub = (yield* mmn.get(ops, mm)) as MmuNotifier;
      expect(yield* mmn.get(ops, mm)).toBe(sub); // users 2
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 1);
      expect(yield* proc.munmap(a, PAGE_SIZE)).toBe(0);
    });
    sim.spawn('driver', 1, function* () {
      while (!entered) yield* sim.scheduler.preempt();
      mmn.put(sub!);
      log.push(`put(users=${sub!.users})`);
      mmn.put(sub!);
      log.push(`last put(users=${sub!.users}, count=${mm.count})`);
      yield* mmn.synchronize();
      log.push(`synchronized(count=${mm.count})`);
    });
    runOk(sim);
    expect(log).toEqual([
      'start-enter',
      'put(users=1)',
      'last put(users=0, count=2)',
      'start-exit',
      'gp_end',
      'free(count=2)',
      'mmn.free(count=2)',
      'synchronized(count=1)',
    ]);
    expect(frees).toBe(1);
    expect(ofType(sim, 'mmn.free').length).toBe(1);
    expect(ofType(sim, 'mmn.put').map((e) => e.data.users)).toEqual([1, 0]);
  });
});

/** Per-run outcome of the exit/unregister race, read by the campaign after each iteration. */
interface RaceRun {
  releases: number;
  /** The tasks that called release, in order. */
  callers: string[];
}

/**
 * exit_mmap on CPU 0 racing mmu_notifier_unregister on CPU 1, for a subscriber whose release
 * sleeps while it tears its device down. `idempotent`: a second release is a no-op; otherwise it
 * tears down again (a double free in a real driver), reported as 'driver-double-release'. Also
 * checks invariant 12 live: no PTE of the mm is cleared and no frame freed while any release
 * runs, and no release returns after the first clear.
 */
function raceScenario(idempotent: boolean, run: RaceRun): Scenario {
  return {
    id: `mmn-exit-vs-unregister-${idempotent ? 'idempotent' : 'naive'}`,
    options: () => ({ cpus: 2, plugins: [mmPlugin({ totalFrames: 256 })] }),
    setup(sim) {
      const svc = sim.get(MmService);
      const mmn = sim.get(MmuNotifierSubsystem);
      const proc = svc.createProcess('app');
      const mm = proc.mm;
      run.releases = 0;
      run.callers = [];
      let releasing = 0;
      let torn = false;
      let cleared = false;
      let base = 0;
      const sub = new MmuNotifier({
        name: 'dev',
        *release(_s, m) {
          run.releases++;
          run.callers.push(sim.scheduler.current.name);
          if (torn) {
            if (idempotent) return;
            sim.kernel.report(
              'driver-double-release',
              'dev: release freed its device page table twice',
            );
          }
          torn = true;
          releasing++;
          for (let i = 0; i < 3; i++) yield* sim.scheduler.preempt(); // device teardown
          for (let i = 0; i < 4; i++)
            if (!ptePresent(svc.core.pt.pte(m, base + i * PAGE_SIZE)))
              sim.warn('release-saw-unmap', `page ${i} unmapped while release ran`);
          releasing--;
        },
      });
      sim.bus.on('mm.pte.set').subscribe((e) => {
        if (e.data.mm !== mm.id || e.data.pte !== PTE_NONE || e.data.old === PTE_NONE) return;
        cleared = true;
        if (releasing > 0) sim.warn('unmap-during-release', `PTE cleared while release runs`);
      });
      sim.bus.on('mm.frame.free').subscribe(() => {
        if (releasing > 0) sim.warn('free-during-release', 'frame freed while release runs');
      });
      sim.bus.on('mmn.callback').subscribe((e) => {
        if (e.data.op === 'release' && cleared)
          sim.warn('release-after-unmap', 'a release returned after exit_mmap began unmapping');
      });
      sim.spawn('setup', 0, function* () {
        expect(yield* mmn.register(sub, mm)).toBe(0);
        base = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, ANON);
        yield* touch(proc, base, 4);
        sim.spawn('exit', 0, function* () {
          yield* proc.exit();
        });
        sim.spawn('unregister', 1, function* () {
          yield* mmn.unregister(sub, mm); // the subscription's mm_count keeps mm valid
        });
      });
    },
  };
}

describe('release in the exit/unregister race (invariants 11–12)', () => {
  it('11: exit and unregister can both call release; a non-idempotent release breaks in exactly those schedules, which replay', () => {
    const run: RaceRun = { releases: 0, callers: [] };
    const scenario = raceScenario(false, run);
    const perIteration: number[] = [];
    const report = explore(scenario, {
      strategy: 'pct',
      iterations: 200,
      stopOnFirst: false,
      onIteration: () => perIteration.push(run.releases),
    });
    const twice = perIteration.flatMap((n, i) => (n === 2 ? [i] : []));
    expect(twice.length).toBeGreaterThan(0);
    expect(perIteration.filter((n) => n === 1).length).toBeGreaterThan(0);
    expect(perIteration.every((n) => n === 1 || n === 2)).toBe(true);
    expect(report.failures.map((f) => f.iteration)).toEqual(twice);
    for (const f of report.failures) expect(kinds(f.violations)).toEqual(['driver-double-release']);
    // The first such schedule replays: one release from unregister, one from exit.
    const { result } = replay(scenario, report.failures[0]!);
    expect(kinds(result.violations)).toEqual(['driver-double-release']);
    expect(run.releases).toBe(2);
    expect([...run.callers].sort()).toEqual(['exit', 'unregister']);
  });

  it('11, 12: an idempotent release stays clean in every schedule, and every release returns before exit_mmap unmaps or frees a page', () => {
    const run: RaceRun = { releases: 0, callers: [] };
    const counts = new Map<number, number>();
    const report = explore(raceScenario(true, run), {
      strategy: 'pct',
      iterations: 200,
      stopOnFirst: false,
      onIteration: () => counts.set(run.releases, (counts.get(run.releases) ?? 0) + 1),
    });
    expect(report.failures.map((f) => kinds(f.violations))).toEqual([]);
    expect(counts.get(2)).toBeGreaterThan(0);
    expect(counts.get(1)).toBeGreaterThan(0);
  });

  it('12: exit_mmap waits for a release that a concurrent unregister started before it unmaps anything', () => {
    const { sim, mmn, proc } = setup();
    const mm = proc.mm;
    const log: string[] = [];
    let started = false;
    sim.bus.on('mmn.release').subscribe(() => log.push('exit-release-done'));
    sim.bus.on('mm.pte.set').subscribe((e) => {
      if (e.data.mm === mm.id && e.data.pte === PTE_NONE && !log.includes('first-clear'))
        log.push('first-clear');
    });
    const sub = new MmuNotifier({
      name: 'dev',
      *release() {
        const first = !started;
        started = true;
        log.push(first ? 'release1-enter' : 'release2');
        if (first) yield* sim.scheduler.sleepFor(1_000_000);
        if (first) log.push('release1-exit');
      },
    });
    sim.spawn('app', 0, function* () {
      expect(yield* mmn.register(sub, mm)).toBe(0);
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 2);
      sim.spawn('unregister', 1, function* () {
        yield* mmn.unregister(sub, mm);
        log.push('unregister-returned');
      });
      while (!started) yield* sim.scheduler.preempt();
      yield* proc.exit();
      log.push('exit-done');
    });
    runOk(sim);
    expect(log.slice(0, 4)).toEqual([
      'release1-enter', // unregister's
      'release2', // exit_mmap's: the subscription is still listed
      'release1-exit',
      'exit-release-done', // exit_mmap's synchronize_srcu waited for unregister's release
    ]);
    expect(log.slice(4).sort()).toEqual(['exit-done', 'first-clear', 'unregister-returned']);
    expect(log.indexOf('first-clear')).toBeLessThan(log.indexOf('exit-done'));
  });
});

describe('registration against open windows (invariant 5)', () => {
  // kswapd reclaims concurrently with the workload's munmap: with a subscriber that sleeps in its
  // callbacks, try_to_unmap of a page shared with a forked child can stall after the parent's
  // PTE became a swap entry while munmap zaps it — the slot's swap-cache reference keeps it
  // alive (this exploration found the model bug that reclaim.test.ts now pins down).
  it('5: over 200 PCT schedules, a registration never completes between a start and its end on the mm', () => {
    let contended = 0; // register called while a window was open: it had to wait
    let lateStarts = 0;
    const scenario: Scenario = {
      id: 'mmn-register-vs-windows',
      options: () => ({ cpus: 3, log: false, plugins: [mmPlugin({ totalFrames: 256 })] }),
      setup(sim) {
        const svc = sim.get(MmService);
        const mmn = sim.get(MmuNotifierSubsystem);
        const proc = svc.createProcess('app');
        const mm = proc.mm;
        // Windows on mm that began (first callback; nothing yields before it) and did not end.
        const open = new Set<number>();
        const opened = (r: NotifierRange) => {
          if (r.mm === mm) open.add(r.id);
        };
        sim.bus.on('mmn.invalidate_end').subscribe((e) => open.delete(e.data.range));
        sim.bus.on('mmn.register').subscribe((e) => {
          if (e.data.mm === mm.id && open.size > 0)
            sim.warn(
              'register-inside-window',
              `${e.data.name} registered inside ${open.size} window(s)`,
            );
        });
        const slow: MmuNotifierOps = {
          name: 'slow',
          *invalidateRangeStart(_s, r) {
            opened(r);
            yield* sim.scheduler.preempt();
            return 0;
          },
          *invalidateRangeEnd() {
            yield* sim.scheduler.preempt();
          },
        };
        // A late subscriber would see an end for a start it never saw if it slipped in.
        const late = (name: string): MmuNotifierOps => {
          const started = new Set<NotifierRange>();
          return {
            name,
            *invalidateRangeStart(_s, r) {
              opened(r);
              started.add(r);
              lateStarts++;
              return 0;
            },
            *invalidateRangeEnd(_s, r) {
              if (!started.delete(r))
                sim.warn('end-without-start', `${name}: end of window ${r.id}`);
            },
          };
        };
        const ready = new Completion(sim.kernel, 'ready');
        sim.spawn('app', 0, function* () {
          expect(yield* mmn.register(new MmuNotifier(slow), mm)).toBe(0);
          const base = yield* proc.mmap(0, 6 * PAGE_SIZE, RW, ANON);
          yield* touch(proc, base, 6);
          ready.completeAll();
          yield* mmWorkload(svc, proc, base);
        });
        sim.spawn('driver', 1, function* () {
          yield* ready.wait();
          for (let i = 0; i < 4; i++) {
            yield* sim.scheduler.preempt();
            if (open.size > 0) contended++;
            expect(yield* mmn.register(new MmuNotifier(late(`late${i}`)), mm)).toBe(0);
          }
        });
        sim.spawn('kswapd', 2, function* () {
          yield* ready.wait();
          for (let i = 0; i < 3; i++) {
            yield* svc.reclaim(2); // CLEAR windows under the anon_vma lock, not mmap_lock
            yield* sim.scheduler.preempt();
          }
        });
      },
    };
    const report = explore(scenario, { strategy: 'pct', iterations: 200, stopOnFirst: false });
    expect(report.failures.map((f) => kinds(f.violations))).toEqual([]);
    expect(contended).toBeGreaterThan(10);
    expect(lateStarts).toBeGreaterThan(50);
  });
});

describe('subscriber duties and the secondary-TLB hook (invariants 17–18)', () => {
  it('17: a mirror that maps only while none of its windows is open and unmaps in start never uses a freed or reused page', () => {
    let mapped = 0;
    let accesses = 0;
    const scenario: Scenario = {
      id: 'mmn-rule-following-mirror',
      options: () => ({ cpus: 3, log: false, plugins: [mmPlugin({ totalFrames: 256 })] }),
      setup(sim) {
        const svc = sim.get(MmService);
        const core = svc.core;
        const mmn = sim.get(MmuNotifierSubsystem);
        const proc = svc.createProcess('app');
        const mm = proc.mm;
        let windows = 0; // this subscriber's own count of open windows (KVM keeps one too)
        let dead = false;
        const tlb = new Map<number, { pfn: number; gen: number }>();
        const mirror: MmuNotifierOps = {
          name: 'mirror',
          *invalidateRangeStart(_s, r) {
            windows++;
            for (const va of [...tlb.keys()]) if (va >= r.start && va < r.end) tlb.delete(va);
            return 0;
          },
          *invalidateRangeEnd() {
            windows--;
          },
          *release() {
            dead = true;
            tlb.clear();
          },
        };
        let base = 0;
        const ready = new Completion(sim.kernel, 'ready');
        const deviceDone = new Completion(sim.kernel, 'device done');
        sim.spawn('app', 0, function* () {
          expect(yield* mmn.register(new MmuNotifier(mirror), mm)).toBe(0);
          base = yield* proc.mmap(0, 6 * PAGE_SIZE, RW, ANON);
          yield* touch(proc, base, 6);
          ready.completeAll();
          yield* mmWorkload(svc, proc, base);
          yield* deviceDone.wait();
          yield* proc.exit();
        });
        sim.spawn('device', 1, function* () {
          yield* ready.wait();
          if (!mmgetNotZero(mm)) return; // as a driver does before faulting pages in
          for (let round = 0; round < 4 && !dead; round++) {
            for (const i of [0, 1, 2, 4, 5]) {
              const va = base + i * PAGE_SIZE;
              yield* proc.load(va); // fault the page in (hmm_range_fault's part)
              // Map only outside windows, from the CPU PTE, in the same step as reading it.
              const pte = core.pt.pte(mm, va);
              if (dead || windows !== 0 || !ptePresent(pte) || tlb.has(va)) continue;
              const pfn = ptePfn(pte);
              tlb.set(va, { pfn, gen: core.phys.generation[pfn]! });
              mapped++;
            }
            yield* sim.scheduler.preempt();
            // DMA through every translation held.
            for (const [va, m] of tlb) {
              accesses++;
              if (core.phys.isFree(m.pfn) || core.phys.generation[m.pfn] !== m.gen)
                sim.warn('stale-device-mapping', `0x${va.toString(16)} -> freed frame ${m.pfn}`);
            }
            yield* sim.scheduler.preempt();
          }
          yield* mmput(core, mm);
          deviceDone.complete();
        });
        sim.spawn('kswapd', 2, function* () {
          yield* ready.wait();
          yield* svc.reclaim(2);
        });
      },
    };
    const report = explore(scenario, { strategy: 'pct', iterations: 100, stopOnFirst: false });
    expect(report.failures.map((f) => kinds(f.violations))).toEqual([]);
    expect(mapped).toBeGreaterThan(100);
    expect(accesses).toBeGreaterThan(100);
  });

  it('18: arch_invalidate_secondary_tlbs runs in no-sleep context: a hook that may sleep is reported', () => {
    const { sim, mmn, proc } = setup();
    sim.spawn('app', 0, function* () {
      const hook = new MmuNotifier({
        name: 'sva',
        archInvalidateSecondaryTlbs: () => sim.kernel.mightSleep('mutex_lock(iommu->lock)'),
      });
      expect(yield* mmn.register(hook, proc.mm)).toBe(0);
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 1);
      yield* proc.munmap(a, PAGE_SIZE);
    });
    const r = sim.run();
    expect(r.violations.length).toBeGreaterThan(0);
    for (const v of r.violations) {
      expect(v.kind).toBe('sleep-in-atomic');
      expect(v.message).toContain('arch_invalidate_secondary_tlbs');
    }
  });

  it('18: munmap (with flushes inside the window), reclaim and a COW fault call the hook for the flushed range before the flush returns and before the pages are freed', () => {
    const sim = Simulation.create({ seed: 1, cpus: 2 });
    const mmn = new MmuNotifierSubsystem(sim.kernel);
    // Flushes that take a scheduling point (a shootdown waiting for IPIs).
    const svc = new MmService(
      sim.kernel,
      { totalFrames: 256, gatherMaxPages: 2, reclaimBatch: 32 },
      new IpiTlb(sim),
      mmn,
    );
    const core = svc.core;
    const proc = svc.createProcess('app');
    const mm = proc.mm;
    const hooks: { start: number; end: number; task: string; at: number }[] = [];
    let a = 0;
    let cowRange = 0;
    let reclaimFrom = 0;
    let reclaimTo = 0;
    sim.spawn('app', 0, function* () {
      const sva = new MmuNotifier({
        name: 'sva',
        archInvalidateSecondaryTlbs: (_s, m, start, end) => {
          expect(m).toBe(mm);
          hooks.push({ start, end, task: sim.scheduler.current.name, at: sim.log!.length });
        },
      });
      expect(yield* mmn.register(sva, mm)).toBe(0);
      a = yield* proc.mmap(0, 8 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 8);
      // COW: the child keeps the old page, the parent's store gets a copy.
      const child = (yield* proc.fork('child')) as Process;
      const from = sim.log!.length;
      expect(yield* proc.store(a + 7 * PAGE_SIZE, 77)).toBe(0);
      cowRange = eventList(sim, from).find(
        (e) => e.type === 'mmn.invalidate_start' && e.d.event === 'CLEAR',
      )!.d.range as number;
      yield* child.exit();
      expect(yield* proc.munmap(a, 6 * PAGE_SIZE)).toBe(0);
      reclaimFrom = sim.log!.length;
      expect(yield* svc.reclaim(2)).toBeGreaterThan(0); // deferred (batched) flushes
      reclaimTo = sim.log!.length;
    });
    sim.spawn('other', 1, function* () {
      for (let i = 0; i < 40; i++) yield* sim.scheduler.preempt();
    });
    runOk(sim);
    const evs = eventList(sim);
    const hookEvs = evs.filter((e) => e.type === 'mmn.secondary_tlbs' && e.d.mm === mm.id);
    expect(hooks.map((h) => [h.start, h.end])).toEqual(hookEvs.map((e) => [e.d.start, e.d.end]));
    for (const h of hooks) expect(h.task).toBe('app');
    // Every CPU flush of the mm calls the hook with its range before the flush returns: right
    // after the CPU part, before anything else of the mm happens. Reclaim's deferred flushes
    // call it earlier, when the flush is queued (x86 arch_tlbbatch_add_pending).
    const seqAt = (i: number) => sim.log!.events[i]?.seq ?? Infinity;
    const flushes = evs.filter((e) => e.type === 'mm.tlb.flush' && e.d.mm === mm.id);
    const deferred = flushes.filter((f) => f.seq >= seqAt(reclaimFrom) && f.seq < seqAt(reclaimTo));
    expect(deferred.length).toBeGreaterThan(0);
    expect(flushes.length - deferred.length).toBeGreaterThan(3);
    const same = (h: Ev, f: Ev) => h.d.start === f.d.start && h.d.end === f.d.end;
    for (const f of flushes) {
      if (deferred.includes(f)) {
        const queued = hookEvs.filter(
          (h) => same(h, f) && h.seq < f.seq && h.seq >= seqAt(reclaimFrom),
        );
        expect(queued.length).toBeGreaterThan(0);
        continue;
      }
      const h = hookEvs.find((e) => e.seq > f.seq && same(e, f));
      expect(h).toBeDefined();
      const between = evs.filter((e) => e.seq > f.seq && e.seq < h!.seq);
      expect(between.filter((e) => e.type.startsWith('mm.') && e.type !== 'mm.tlb.flush')).toEqual(
        [],
      );
    }
    // Every page that lost a present PTE of this mm is freed only after a hook covering it.
    let checked = 0;
    const cleared = new Map<number, { va: number; seq: number }>();
    for (const e of evs) {
      if (e.type === 'mm.pte.set' && e.d.mm === mm.id) {
        const old = e.d.old as number;
        const pte = e.d.pte as number;
        if (ptePresent(old) && (!ptePresent(pte) || ptePfn(pte) !== ptePfn(old)))
          cleared.set(ptePfn(old), { va: e.d.va as number, seq: e.seq });
      } else if (e.type === 'mm.frame.free') {
        const c = cleared.get(e.d.pfn as number);
        if (c === undefined) continue;
        cleared.delete(e.d.pfn as number);
        const hook = hookEvs.find(
          (h) =>
            h.seq > c.seq &&
            h.seq < e.seq &&
            (h.d.start as number) <= c.va &&
            c.va < (h.d.end as number),
        );
        expect({ pfn: e.d.pfn, hooked: hook !== undefined }).toEqual({
          pfn: e.d.pfn,
          hooked: true,
        });
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(6);
    // Munmap freed pages inside its window (gather batch of 2): hooks came first there too.
    const unmap = evs.find((e) => e.type === 'mmn.invalidate_start' && e.d.event === 'UNMAP')!;
    const unmapEnd = evs.find(
      (e) => e.type === 'mmn.invalidate_end' && e.d.range === unmap.d.range,
    )!;
    expect(
      evs.filter((e) => e.type === 'mm.frame.free' && e.seq > unmap.seq && e.seq < unmapEnd.seq)
        .length,
    ).toBeGreaterThan(0);
    // COW: inside the CLEAR window the old PTE is cleared, the hook runs, then the copy is mapped.
    const cowStart = evs.find((e) => e.type === 'mmn.invalidate_start' && e.d.range === cowRange)!;
    const cowEnd = evs.find((e) => e.type === 'mmn.invalidate_end' && e.d.range === cowRange)!;
    const cowVa = a + 7 * PAGE_SIZE;
    const inCow = evs.filter(
      (e) =>
        e.seq > cowStart.seq &&
        e.seq < cowEnd.seq &&
        ((e.type === 'mm.pte.set' && e.d.va === cowVa) || e.type === 'mmn.secondary_tlbs'),
    );
    expect(
      inCow.map((e) =>
        e.type === 'mmn.secondary_tlbs'
          ? ['hook', e.d.start, e.d.end]
          : ['pte', ptePresent(e.d.pte as number) ? 'install' : 'clear'],
      ),
    ).toEqual([
      ['pte', 'clear'],
      ['hook', cowVa, cowVa + PAGE_SIZE],
      ['pte', 'install'],
    ]);
    expect(core.phys.isFree(ptePfn(core.pt.pte(mm, cowVa)))).toBe(false);
  });
});

describe('get/put and calls from callbacks', () => {
  it('get/put pairs: every get of the same ops returns the one subscription (never -EOVERFLOW), the last put frees it', () => {
    const { sim, mmn, proc } = setup({ stop: false });
    const mm = proc.mm;
    let frees = 0;
    const ops: MmuNotifierOps = {
      name: 'gp',
      allocNotifier: () => new MmuNotifier(ops),
      freeNotifier: () => frees++,
    };
    const other: MmuNotifierOps = { name: 'other', allocNotifier: () => new MmuNotifier(other) };
    const got: unknown[] = [];
    sim.spawn('drv', 0, function* () {
      const s = (yield* mmn.get(ops, mm)) as MmuNotifier;
      for (let i = 0; i < 3; i++) got.push((yield* mmn.get(ops, mm)) === s);
      yield* mm.mmapLock.downWrite();
      got.push((yield* mmn.getLocked(ops, mm)) === s);
      const o = (yield* mmn.getLocked(other, mm)) as MmuNotifier;
      mm.mmapLock.upWrite();
      got.push(o !== s, o.users, s.users);
      for (let i = 0; i < 5; i++) mmn.put(s);
      got.push(s.users, s.hashed, frees);
      yield* mmn.synchronize();
      got.push(frees);
      mmn.put(s); // one put too many: WARN, nothing else
      got.push(s.users);
      // The counter is unsigned: at UINT_MAX a get fails with -EOVERFLOW instead of wrapping.
      o.users = 0xffffffff;
      got.push(yield* mmn.get(other, mm));
      o.users = 1;
      mmn.put(o);
      yield* mmn.synchronize();
      yield* proc.exit();
    });
    const r = sim.run();
    expect(got).toEqual([true, true, true, true, true, 1, 5, 0, false, 0, 1, 0, -Errno.EOVERFLOW]);
    expect(kinds(r.violations)).toEqual(['mmn-put-zero-users']);
    expect(r.violations[0]!.message).toContain('users == 0');
    expect(ofType(sim, 'mmn.get').map((e) => e.data.users)).toEqual([2, 3, 4, 5]);
    expect(ofType(sim, 'mmn.free').map((e) => e.data.name)).toEqual(['gp', 'other']);
    expect(mm.freed).toBe(true);
  });

  it('getLocked without mmap_lock held for write is reported', () => {
    const { sim, mmn, proc } = setup({ stop: false });
    const ops: MmuNotifierOps = { name: 'gp', allocNotifier: () => new MmuNotifier(ops) };
    sim.spawn('drv', 0, function* () {
      yield* mmn.getLocked(ops, proc.mm);
    });
    const r = sim.run();
    expect(kinds(r.violations)).toEqual(['mmap-lock-not-held', 'mmap-lock-not-held']);
  });

  it('put from inside release is allowed: exit releases, the driver drops its reference there, the SRCU callback frees it', () => {
    const { sim, mmn, proc } = setup();
    const mm = proc.mm;
    const log: string[] = [];
    const ops: MmuNotifierOps = {
      name: 'gp',
      allocNotifier: () => new MmuNotifier(ops),
      *release(s) {
        log.push('release');
        mmn.put(s);
      },
      freeNotifier: () => log.push(`free(freed=${mm.freed})`),
    };
    sim.spawn('drv', 0, function* () {
      expect(yield* mmn.get(ops, mm)).toBeInstanceOf(MmuNotifier);
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 1);
      yield* proc.exit();
      log.push(`exited(count=${mm.count})`);
      yield* mmn.synchronize();
      log.push(`synchronized(freed=${mm.freed})`);
    });
    runOk(sim);
    expect(log).toEqual([
      'release',
      'free(freed=false)',
      'exited(count=0)',
      'synchronized(freed=true)',
    ]);
  });

  it('unregister or synchronize from inside a callback is reported (it would wait for itself)', () => {
    for (const which of ['unregister', 'synchronize'] as const) {
      const { sim, mmn, proc } = setup({ stop: false });
      sim.spawn('drv', 0, function* () {
        const sub: MmuNotifier = new MmuNotifier({
          name: 'self',
          *invalidateRangeStart(s) {
            if (which === 'unregister') yield* mmn.unregister(s, proc.mm);
            else yield* mmn.synchronize();
            return 0;
          },
        });
        expect(yield* mmn.register(sub, proc.mm)).toBe(0);
        const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
        yield* touch(proc, a, 1);
        yield* proc.munmap(a, PAGE_SIZE);
      });
      const r = sim.run();
      expect(r.violations[0]!.kind).toBe('mmn-call-from-callback');
      expect(r.violations[0]!.message).toContain(`mmu_notifier_${which}`);
      expect(r.violations[0]!.message).toContain('invariant 43');
    }
  });
});
