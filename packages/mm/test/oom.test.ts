import { describe, expect, it } from '@jest/globals';
import { Errno, Simulation } from '@mmnsim/core';
import type { Kernel, TaskGen } from '@mmnsim/core';
import {
  IdealTlb,
  Map_,
  MmService,
  MmuNotifiers,
  PAGE_SIZE,
  Prot,
  PTE_NONE,
  ptePfn,
} from '@mmnsim/mm';
import type { NotifierRange, Process } from '@mmnsim/mm';
import { MAX_OOM_REAP_RETRIES, OOM_REAP_RETRY_NS } from '../src/internal/unmap.js';
import { eventList, runOk } from './helpers.js';

// Sources: notifier-core.md §4.6 and §7 row 3 (the OOM reaper's non-blocking UNMAP windows:
// on -EAGAIN skip the VMA — no PTE change, no end); Linux mm/oom_kill.c (oom_reap_task,
// oom_reap_task_mm, __oom_reap_task_mm, MAX_OOM_REAP_RETRIES, HZ/10 between attempts).

const RW = Prot.READ | Prot.WRITE;
const ANON = Map_.PRIVATE | Map_.ANONYMOUS;

/** A subscriber that cannot take its lock without sleeping for one range, `failures` times. */
class FailingNotifiers extends MmuNotifiers {
  failStart = -1;
  failures = Infinity;
  constructor(kernel: Kernel) {
    super(kernel);
  }
  protected override *__invalidateRangeStart(range: NotifierRange): TaskGen<number> {
    if (!range.blockable && range.start === this.failStart && this.failures > 0) {
      this.failures--;
      return -Errno.EAGAIN;
    }
    return 0;
  }
}

function setup() {
  const sim = Simulation.create({ seed: 1, cpus: 2 });
  const notifiers = new FailingNotifiers(sim.kernel);
  const svc = new MmService(
    sim.kernel,
    { totalFrames: 2048, gatherMaxPages: 10_000, reclaimBatch: 32 },
    new IdealTlb(),
    notifiers,
  );
  const proc = svc.createProcess('victim');
  proc.mm.notifierSubscriptions = {}; // mm_has_notifiers: the subscriber above is called
  return { sim, svc, core: svc.core, proc, notifiers };
}

function* touch(proc: Process, addr: number, pages: number): TaskGen<void> {
  for (let i = 0; i < pages; i++) expect(yield* proc.store(addr + i * PAGE_SIZE, 1 + i)).toBe(0);
}

describe('OOM reaper (notifier-core.md §4.6, §7 row 3)', () => {
  it('skips a VMA whose non-blocking start fails: no PTE change, no end; reaps the others; retries', () => {
    const { sim, svc, core, proc, notifiers } = setup();
    const file = svc.newFile('shared', 2);
    const lib = svc.newFile('lib', 1, new Map([[0, [0, 42]]]));
    let d = 0;
    let a = 0;
    let b = 0;
    let c = 0;
    let result: boolean | null = null;
    const bPtes: number[] = [];
    let aFrames: number[] = [];
    sim.spawn('victim', 0, function* () {
      a = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, ANON);
      b = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, ANON);
      c = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, Map_.SHARED, file, 0);
      yield* touch(proc, a, 4);
      yield* touch(proc, b, 4);
      yield* touch(proc, c, 2);
      d = yield* proc.mmap(0, PAGE_SIZE, Prot.READ, Map_.PRIVATE, lib, 0);
      expect(yield* proc.load(d)).toBe(42);
      notifiers.failStart = b;
      aFrames = [0, 1, 2, 3].map((i) => ptePfn(core.pt.pte(proc.mm, a + i * PAGE_SIZE)));
      for (let i = 0; i < 4; i++) bPtes.push(core.pt.pte(proc.mm, b + i * PAGE_SIZE));
      result = yield* svc.oomReap(proc);
    });
    runOk(sim);
    expect(result).toBe(false);
    expect(proc.mm.oomSkip).toBe(true);
    // The reaped VMA: empty PTEs, frames freed.
    for (let i = 0; i < 4; i++) expect(core.pt.pte(proc.mm, a + i * PAGE_SIZE)).toBe(PTE_NONE);
    for (const f of aFrames) expect(core.phys.isFree(f)).toBe(true);
    // The skipped VMA: every PTE as before. The shared file VMA: not a reaper target.
    for (let i = 0; i < 4; i++) expect(core.pt.pte(proc.mm, b + i * PAGE_SIZE)).toBe(bPtes[i]);
    expect(core.pt.pte(proc.mm, c)).not.toBe(PTE_NONE);
    // A private file mapping is reaped too (Linux: anonymous or !VM_SHARED); its page-cache
    // page stays in the page cache.
    expect(core.pt.pte(proc.mm, d)).toBe(PTE_NONE);
    expect(core.phys.read(lib.pageCache.get(0)!, 0)).toBe(42);
    const evs = eventList(sim);
    const starts = evs.filter((e) => e.type === 'mmn.invalidate_start');
    const ends = evs.filter((e) => e.type === 'mmn.invalidate_end');
    const failed = starts.filter((e) => e.d.start === b);
    expect(failed.length).toBe(MAX_OOM_REAP_RETRIES);
    for (const f of failed) expect(f.d).toMatchObject({ blockable: false, result: -Errno.EAGAIN });
    const failedIds = new Set(failed.map((f) => f.d.range));
    expect(ends.filter((e) => failedIds.has(e.d.range))).toEqual([]);
    expect(starts.some((e) => e.d.start === c)).toBe(false);
    // Every successful start of A is paired with its end.
    const okA = starts.filter((e) => e.d.start === a);
    expect(okA.length).toBe(MAX_OOM_REAP_RETRIES);
    for (const s of okA) {
      expect(s.d).toMatchObject({ event: 'UNMAP', end: a + 4 * PAGE_SIZE, blockable: false });
      expect(ends.filter((e) => e.d.range === s.d.range).length).toBe(1);
    }
    // No PTE of B changed at any time.
    const bEnd = b + 4 * PAGE_SIZE;
    const bChanges = evs.filter(
      (e) =>
        e.type === 'mm.pte.set' &&
        (e.d.va as number) >= b &&
        (e.d.va as number) < bEnd &&
        e.seq > failed[0]!.seq,
    );
    expect(bChanges).toEqual([]);
    // HZ/10 between attempts.
    const times = failed.map((f) => f.time);
    for (let i = 1; i < times.length; i++)
      expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(OOM_REAP_RETRY_NS);
  });

  it('a later attempt succeeds once the subscriber can proceed', () => {
    const { sim, svc, core, proc, notifiers } = setup();
    let b = 0;
    let result: boolean | null = null;
    sim.spawn('victim', 0, function* () {
      b = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, b, 4);
      notifiers.failStart = b;
      notifiers.failures = 2;
      result = yield* svc.oomReap(proc);
    });
    runOk(sim);
    expect(result).toBe(true);
    for (let i = 0; i < 4; i++) expect(core.pt.pte(proc.mm, b + i * PAGE_SIZE)).toBe(PTE_NONE);
    const starts = eventList(sim).filter((e) => e.type === 'mmn.invalidate_start');
    expect(starts.map((e) => e.d.result)).toEqual([-Errno.EAGAIN, -Errno.EAGAIN, 0]);
  });

  it('retries while mmap_lock cannot be taken (read trylock)', () => {
    const { sim, svc, core, proc } = setup();
    let a = 0;
    let locked = false;
    let result: boolean | null = null;
    let doneAt = 0;
    sim.spawn('holder', 0, function* () {
      a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 2);
      yield* proc.mm.mmapLock.downWrite();
      locked = true;
      yield* sim.scheduler.sleepFor(3 * OOM_REAP_RETRY_NS - 1);
      proc.mm.mmapLock.upWrite();
    });
    sim.spawn('oom_reaper', 1, function* () {
      while (!locked) yield* sim.scheduler.preempt();
      result = yield* svc.oomReap(proc);
      doneAt = sim.clock.now;
    });
    runOk(sim);
    expect(result).toBe(true);
    expect(doneAt).toBeGreaterThanOrEqual(3 * OOM_REAP_RETRY_NS);
    expect(core.pt.pte(proc.mm, a)).toBe(PTE_NONE);
  });

  it('the victim exits while the reaper waits: its reference keeps the mm until it is done', () => {
    const { sim, svc, core, proc, notifiers } = setup();
    let result: boolean | null = null;
    let reaping = false;
    const free0 = core.phys.freeFrames;
    sim.spawn('oom_reaper', 1, function* () {
      const b = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, b, 2);
      notifiers.failStart = b; // B can never be reaped
      reaping = true;
      result = yield* svc.oomReap(proc);
    });
    sim.spawn('victim', 0, function* () {
      while (!reaping) yield* sim.scheduler.preempt();
      yield* sim.scheduler.sleepFor(OOM_REAP_RETRY_NS / 2);
      yield* proc.exit();
      expect(proc.mm.exited).toBe(true);
      expect(proc.mm.freed).toBe(false); // the reaper still holds mm_count
    });
    runOk(sim);
    expect(result).toBe(true); // exit set MMF_OOM_SKIP: nothing left to reap
    expect(proc.mm.freed).toBe(true);
    expect(core.phys.freeFrames).toBe(free0 + 1);
  });

  it('after exit has torn the mm down, the reaper has nothing to do', () => {
    const { sim, svc, proc } = setup();
    let result: boolean | null = null;
    sim.spawn('victim', 0, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 2);
      proc.mm.count++; // the reaper's reference (signal->oom_mm)
      yield* proc.exit();
      const before = sim.log!.length;
      result = yield* svc.oomReap(proc);
      expect(sim.log!.events.slice(before).some((e) => e.type.startsWith('mmn.'))).toBe(false);
    });
    runOk(sim);
    expect(result).toBe(true);
  });
});
