import { describe, expect, it } from '@jest/globals';
import { Errno, Simulation } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import {
  Frame,
  Map_,
  mmPlugin,
  MmService,
  PAGE_SIZE,
  Prot,
  Pte,
  PTE_NONE,
  pteFlags,
  ptePfn,
  TASK_SIZE,
  MmuNotifier,
  MmuNotifierSubsystem,
} from '@mmnsim/mm';
import type { Process } from '@mmnsim/mm';
import { mkMigrationPte, mkSwapPte } from '../src/internal/pte.js';
import { Madv, mmdrop, mmgetNotZero } from '../src/internal/unmap.js';
import { eventList, runOk } from './helpers.js';
import type { Ev } from './helpers.js';

// Sources: notifier-core.md §3.4 and §7 rows 1, 2, 4, 5; users-and-hardware.md §5.3–5.4;
// Linux mm/vma.c (do_vmi_munmap), mm/memory.c (zap_pte_range, unmap_vmas), mm/mmap.c
// (exit_mmap), mm/madvise.c (madvise_walk_vmas, madvise_free_pte_range), mm/mmu_gather.c.

const RW = Prot.READ | Prot.WRITE;
const ANON = Map_.PRIVATE | Map_.ANONYMOUS;

function setup(opts: { gatherMaxPages?: number; cpus?: number; frames?: number } = {}) {
  const sim = Simulation.create({
    seed: 1,
    cpus: opts.cpus ?? 1,
    plugins: [
      mmPlugin({
        totalFrames: opts.frames ?? 2048,
        ...(opts.gatherMaxPages !== undefined ? { gatherMaxPages: opts.gatherMaxPages } : {}),
      }),
    ],
  });
  const svc = sim.get(MmService);
  return { sim, svc, core: svc.core, proc: svc.createProcess('app') };
}

function* touch(proc: Process, addr: number, pages: number, base = 100): TaskGen<void> {
  for (let i = 0; i < pages; i++) expect(yield* proc.store(addr + i * PAGE_SIZE, base + i)).toBe(0);
}

const present = (pte: number) => (pteFlags(pte) & Pte.PRESENT) !== 0;

/**
 * Whole-log check of the mmu_gather rule (users-and-hardware.md §5.3): a frame that lost a
 * present mapping is freed only after a TLB flush of that mm covering the address, issued
 * after the PTE was cleared.
 */
function checkFlushBeforeFree(evs: readonly Ev[]): number {
  const cleared = new Map<number, { mm: number; va: number; seq: number }>();
  let checked = 0;
  for (const e of evs) {
    if (e.type === 'mm.pte.set') {
      const old = e.d.old as number;
      const pte = e.d.pte as number;
      if (present(old) && (pte === PTE_NONE || ptePfn(pte) !== ptePfn(old)))
        cleared.set(ptePfn(old), { mm: e.d.mm as number, va: e.d.va as number, seq: e.seq });
    } else if (e.type === 'mm.frame.free') {
      const c = cleared.get(e.d.pfn as number);
      if (c === undefined) continue;
      const flush = evs.find(
        (f) =>
          f.type === 'mm.tlb.flush' &&
          f.seq > c.seq &&
          f.seq < e.seq &&
          f.d.mm === c.mm &&
          (f.d.start as number) <= c.va &&
          c.va < (f.d.end as number),
      );
      expect({ pfn: e.d.pfn, flushed: flush !== undefined }).toEqual({
        pfn: e.d.pfn,
        flushed: true,
      });
      cleared.delete(e.d.pfn as number);
      checked++;
    }
  }
  return checked;
}

describe('munmap (notifier-core.md §7 row 1)', () => {
  it('frees the pages and the page tables, and the range faults afterwards', () => {
    const { sim, core, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 16 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 16);
      const before = core.phys.freeFrames;
      expect(yield* proc.munmap(a, 16 * PAGE_SIZE)).toBe(0);
      // 16 pages + the PTE, PMD and PUD tables (the mm had nothing else mapped).
      expect(core.phys.freeFrames - before).toBe(19);
      expect(core.pt.lookup(proc.mm, a)).toBeNull();
      expect(proc.mm.vmas.length).toBe(0);
      expect(proc.mm.tlbFlushPending).toBe(0);
      expect(yield* proc.load(a)).toBe(-Errno.EFAULT);
      expect(proc.siginfo).toEqual({ signal: 'SIGSEGV', code: 'SEGV_MAPERR', addr: a });
    });
    runOk(sim);
  });

  it('unmapping the middle keeps the neighbours, their data and their page table', () => {
    const { sim, core, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 8 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 8);
      expect(yield* proc.munmap(a + 2 * PAGE_SIZE, 3 * PAGE_SIZE)).toBe(0);
      expect(proc.mm.vmas.all.map((v) => [v.start - a, v.end - a])).toEqual([
        [0, 2 * PAGE_SIZE],
        [5 * PAGE_SIZE, 8 * PAGE_SIZE],
      ]);
      expect(yield* proc.load(a + PAGE_SIZE)).toBe(101);
      expect(yield* proc.load(a + 5 * PAGE_SIZE)).toBe(105);
      expect(core.pt.pte(proc.mm, a + 3 * PAGE_SIZE)).toBe(PTE_NONE);
      expect(yield* proc.load(a + 3 * PAGE_SIZE)).toBe(-Errno.EFAULT);
    });
    runOk(sim);
  });

  it('-EINVAL for an unaligned address', () => {
    const { sim, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      expect(yield* proc.munmap(a + 8, PAGE_SIZE)).toBe(-Errno.EINVAL);
      expect(proc.mm.vmas.length).toBe(1);
    });
    runOk(sim);
  });

  it('-EINVAL for a zero length', () => {
    const { sim, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      expect(yield* proc.munmap(a, 0)).toBe(-Errno.EINVAL);
      expect(proc.mm.vmas.length).toBe(1);
    });
    runOk(sim);
  });

  it('-EINVAL for a range reaching past TASK_SIZE', () => {
    const { sim, proc } = setup();
    sim.spawn('app', 0, function* () {
      expect(yield* proc.munmap(TASK_SIZE - PAGE_SIZE, 2 * PAGE_SIZE)).toBe(-Errno.EINVAL);
      expect(yield* proc.munmap(TASK_SIZE, PAGE_SIZE)).toBe(-Errno.EINVAL);
    });
    runOk(sim);
  });

  it('unmapping a hole is not an error, and opens no notifier window', () => {
    const { sim, proc } = setup();
    let from = 0;
    sim.spawn('app', 0, function* () {
      from = sim.log!.length;
      expect(yield* proc.munmap(0x7000_0000_0000, 64 * PAGE_SIZE)).toBe(0);
    });
    runOk(sim);
    expect(eventList(sim, from).filter((e) => e.type.startsWith('mmn.'))).toEqual([]);
  });

  it('ordering acceptance: start → clears → forced flush + free inside → end → final flush → free', () => {
    const { sim, proc } = setup({ gatherMaxPages: 16 });
    const pages = 50;
    let from = 0;
    let a = 0;
    sim.spawn('app', 0, function* () {
      a = yield* proc.mmap(0, pages * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, pages);
      from = sim.log!.length;
      expect(yield* proc.munmap(a, pages * PAGE_SIZE)).toBe(0);
    });
    runOk(sim);
    const evs = eventList(sim, from).filter((e) =>
      [
        'mmn.invalidate_start',
        'mmn.invalidate_end',
        'mm.pte.set',
        'mm.tlb.flush',
        'mm.gather.free',
        'mm.pt.unlink',
      ].includes(e.type),
    );
    const start = evs.findIndex((e) => e.type === 'mmn.invalidate_start');
    const end = evs.findIndex((e) => e.type === 'mmn.invalidate_end');
    expect(evs[start]!.d).toMatchObject({
      event: 'UNMAP',
      start: a,
      end: a + pages * PAGE_SIZE,
      blockable: true,
    });
    // Every PTE change is inside the window.
    const clears = evs.filter((e) => e.type === 'mm.pte.set');
    expect(clears.length).toBe(pages);
    for (const c of clears) {
      expect(c.seq).toBeGreaterThan(evs[start]!.seq);
      expect(c.seq).toBeLessThan(evs[end]!.seq);
    }
    // Inside: batches of 16 → three forced flush+free pairs, each free right after its flush.
    const inside = evs.slice(start + 1, end).map((e) => e.type);
    const forced = inside.filter((t) => t === 'mm.gather.free').length;
    expect(forced).toBe(3);
    inside.forEach((t, i) => {
      if (t === 'mm.gather.free') expect(inside[i - 1]).toBe('mm.tlb.flush');
    });
    const firstFree = evs.findIndex((e) => e.type === 'mm.gather.free');
    expect(evs.slice(start + 1, firstFree - 1).every((e) => e.type === 'mm.pte.set')).toBe(true);
    expect((evs[firstFree]!.d.pfns as number[]).length).toBe(16);
    // After end: tables unlinked, the final flush (with freed tables), then the last free.
    const after = evs.slice(end + 1);
    expect(after.map((e) => e.type)).toEqual([
      'mm.pt.unlink',
      'mm.pt.unlink',
      'mm.pt.unlink',
      'mm.tlb.flush',
      'mm.gather.free',
    ]);
    expect(after[3]!.d.freedTables).toBe(true);
    expect((after[4]!.d.pfns as number[]).length).toBe(pages - 48);
    expect((after[4]!.d.tables as number[]).length).toBe(3);
    // And over the whole log: every freed, once-mapped frame was flushed after its clear.
    expect(checkFlushBeforeFree(eventList(sim))).toBe(pages);
  });

  it('the UNMAP window spans several VMAs (one start, one end)', () => {
    const { sim, proc } = setup();
    let from = 0;
    let a = 0;
    sim.spawn('app', 0, function* () {
      a = yield* proc.mmap(0, 6 * PAGE_SIZE, RW, ANON);
      // A second VMA inside the first (different protection splits it into three).
      expect(yield* proc.mmap(a + 2 * PAGE_SIZE, 2 * PAGE_SIZE, Prot.READ, ANON | Map_.FIXED)).toBe(
        a + 2 * PAGE_SIZE,
      );
      yield* touch(proc, a, 2);
      yield* touch(proc, a + 4 * PAGE_SIZE, 2);
      expect(proc.mm.vmas.length).toBe(3);
      from = sim.log!.length;
      expect(yield* proc.munmap(a, 6 * PAGE_SIZE)).toBe(0);
    });
    runOk(sim);
    const win = eventList(sim, from).filter((e) => e.type.startsWith('mmn.invalidate'));
    expect(win.map((e) => [e.type, e.d.event, e.d.start, e.d.end])).toEqual([
      ['mmn.invalidate_start', 'UNMAP', a, a + 6 * PAGE_SIZE],
      ['mmn.invalidate_end', 'UNMAP', a, a + 6 * PAGE_SIZE],
    ]);
  });

  it('swap entries free their slot; a migration entry is cleared and its folio keeps its references', () => {
    const { sim, core, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 3 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 3);
      // Hand-made entries as reclaim and migration would leave them.
      const slot = core.swap.store([0, 100]);
      const s0 = core.pt.lookup(proc.mm, a)!;
      const old0 = ptePfn(s0.table[s0.index]!);
      s0.table[s0.index] = mkSwapPte(slot);
      core.phys.mapcount[old0] = 0;
      core.phys.put(old0);
      const s1 = core.pt.lookup(proc.mm, a + PAGE_SIZE)!;
      const mig = ptePfn(s1.table[s1.index]!);
      s1.table[s1.index] = mkMigrationPte(mig, true);
      core.phys.mapcount[mig] = 0; // the migration code holds the reference now
      expect(core.swap.users(slot)).toBe(1);
      expect(yield* proc.munmap(a, 3 * PAGE_SIZE)).toBe(0);
      expect(core.swap.users(slot)).toBe(0);
      expect(core.phys.isFree(mig)).toBe(false);
      expect(core.phys.refcount[mig]).toBe(1);
      expect(core.phys.put(mig)).toBe(true); // the migration code's put frees it
    });
    runOk(sim);
  });

  it('munmap downgrades mmap_lock: a fault in another VMA runs inside its UNMAP window', () => {
    const { sim, proc } = setup({ cpus: 2 });
    let b = 0;
    let ready = false;
    let faultSeq = -1;
    sim.spawn('unmapper', 0, function* () {
      const a = yield* proc.mmap(0, 2048 * PAGE_SIZE, RW, ANON);
      b = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      for (let i = 0; i < 4; i++) yield* touch(proc, a + i * 512 * PAGE_SIZE, 1);
      ready = true;
      expect(yield* proc.munmap(a, 2048 * PAGE_SIZE)).toBe(0);
    });
    sim.spawn('faulter', 1, function* () {
      while (!ready) yield* sim.scheduler.preempt();
      yield* sim.scheduler.preempt();
      expect(yield* proc.store(b, 1)).toBe(0);
      faultSeq = sim.log!.length;
    });
    runOk(sim);
    const evs = eventList(sim);
    const start = evs.find((e) => e.type === 'mmn.invalidate_start' && e.d.event === 'UNMAP')!;
    const end = evs.find((e) => e.type === 'mmn.invalidate_end' && e.d.event === 'UNMAP')!;
    expect(faultSeq).toBeGreaterThan(start.seq);
    expect(faultSeq).toBeLessThan(end.seq);
  });

  it('file pages: a dirty shared page stays in the page cache, marked dirty', () => {
    const { sim, svc, core, proc } = setup();
    const file = svc.newFile('data', 4, new Map([[0, [0, 7]]]));
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, Map_.SHARED, file, 0);
      expect(yield* proc.load(a)).toBe(7);
      expect(yield* proc.store(a + 4, 9)).toBe(0);
      const pfn = file.pageCache.get(0)!;
      expect(core.phys.mapcount[pfn]).toBe(1);
      expect(yield* proc.munmap(a, 4 * PAGE_SIZE)).toBe(0);
      expect(core.phys.isFree(pfn)).toBe(false);
      expect(core.phys.mapcount[pfn]).toBe(0);
      expect(core.phys.refcount[pfn]).toBe(1);
      expect(core.phys.flags[pfn]! & Frame.DIRTY).toBe(Frame.DIRTY);
      expect(core.phys.read(pfn, 1)).toBe(9);
    });
    runOk(sim);
  });
});

describe('exit_mmap and the mm lifetime (notifier-core.md §3.4, §7 row 2)', () => {
  it('release comes before any page is unmapped; one UNMAP window [0, TASK_SIZE); all freed', () => {
    const { sim, core, proc } = setup();
    const free0 = core.phys.freeFrames;
    let from = 0;
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 8 * PAGE_SIZE, RW, ANON);
      const b = yield* proc.mmap(0, 4 * PAGE_SIZE, Prot.READ, ANON);
      yield* touch(proc, a, 8);
      expect(yield* proc.load(b)).toBe(0);
      from = sim.log!.length;
      yield* proc.exit();
      expect(mmgetNotZero(proc.mm)).toBe(false);
    });
    runOk(sim);
    const evs = eventList(sim, from);
    const release = evs.findIndex((e) => e.type === 'mmn.release');
    const firstClear = evs.findIndex((e) => e.type === 'mm.pte.set');
    const firstFree = evs.findIndex((e) => e.type === 'mm.frame.free');
    expect(release).toBeGreaterThanOrEqual(0);
    expect(release).toBeLessThan(firstClear);
    expect(release).toBeLessThan(firstFree);
    const win = evs.filter((e) => e.type.startsWith('mmn.invalidate'));
    expect(win.map((e) => [e.type, e.d.event, e.d.start, e.d.end])).toEqual([
      ['mmn.invalidate_start', 'UNMAP', 0, TASK_SIZE],
      ['mmn.invalidate_end', 'UNMAP', 0, TASK_SIZE],
    ]);
    expect(evs.at(-1)?.type === 'mm.exit' || evs.some((e) => e.type === 'mm.exit')).toBe(true);
    expect(proc.mm.exited).toBe(true);
    expect(proc.mm.freed).toBe(true);
    expect(core.mms.has(proc.mm.id)).toBe(false);
    // Every frame came back, the PGD included.
    expect(core.phys.freeFrames).toBe(free0 + 1);
    expect(checkFlushBeforeFree(eventList(sim))).toBe(8);
  });

  it('mmput of one of several users does not tear down; the last one does', () => {
    const { sim, proc } = setup();
    sim.spawn('app', 0, function* () {
      expect(mmgetNotZero(proc.mm)).toBe(true);
      yield* proc.exit();
      expect(proc.mm.exited).toBe(false);
      yield* proc.exit();
      expect(proc.mm.exited).toBe(true);
    });
    runOk(sim);
  });

  it('freeing an mm whose notifier list still has subscribers is a kernel BUG (invariant 7)', () => {
    const { sim, proc, core } = setup();
    const mmn = sim.get(MmuNotifierSubsystem);
    sim.spawn('app', 0, function* () {
      expect(yield* mmn.register(new MmuNotifier({ name: 'leaky' }), proc.mm)).toBe(0);
      // A buggy driver drops mm_count references it does not own while still registered.
      mmdrop(core, proc.mm);
      mmdrop(core, proc.mm);
    });
    const r = sim.run();
    expect(r.violations.map((v) => v.kind)).toEqual(['bug']);
    expect(r.violations[0]!.message).toContain('mmu_notifier_subscriptions_destroy');
  });
});

describe('madvise (notifier-core.md §7 rows 4 and 5)', () => {
  it('MADV_DONTNEED: a CLEAR window, the pages are freed, anon reads back zeroes', () => {
    const { sim, core, proc } = setup();
    let from = 0;
    let a = 0;
    sim.spawn('app', 0, function* () {
      a = yield* proc.mmap(0, 4 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 4);
      const before = core.phys.freeFrames;
      from = sim.log!.length;
      expect(yield* proc.madvise(a, 4 * PAGE_SIZE, Madv.DONTNEED)).toBe(0);
      expect(core.phys.freeFrames - before).toBe(4); // the page table stays
      for (let i = 0; i < 4; i++) expect(yield* proc.load(a + i * PAGE_SIZE)).toBe(0);
      expect(yield* proc.store(a, 5)).toBe(0);
      expect(yield* proc.load(a)).toBe(5);
    });
    runOk(sim);
    const win = eventList(sim, from).filter((e) => e.type.startsWith('mmn.invalidate'));
    expect(win.slice(0, 2).map((e) => [e.type, e.d.event, e.d.start, e.d.end])).toEqual([
      ['mmn.invalidate_start', 'CLEAR', a, a + 4 * PAGE_SIZE],
      ['mmn.invalidate_end', 'CLEAR', a, a + 4 * PAGE_SIZE],
    ]);
    expect(checkFlushBeforeFree(eventList(sim))).toBe(4);
  });

  it('MADV_DONTNEED on a private file mapping drops the COW copy: the file content is read again', () => {
    const { sim, svc, proc } = setup();
    const file = svc.newFile('lib', 2, new Map([[1, [3, 0xabc]]]));
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 2 * PAGE_SIZE, RW, Map_.PRIVATE, file, 0);
      const w = a + PAGE_SIZE + 12;
      expect(yield* proc.load(w)).toBe(0xabc);
      expect(yield* proc.store(w, 1)).toBe(0);
      expect(yield* proc.load(w)).toBe(1);
      expect(yield* proc.madvise(a, 2 * PAGE_SIZE, Madv.DONTNEED)).toBe(0);
      expect(yield* proc.load(w)).toBe(0xabc);
    });
    runOk(sim);
  });

  it('MADV_FREE: clean/old PTEs and LAZYFREE frames; a later write dirties the PTE again', () => {
    const { sim, core, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 3 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 3);
      const pfns = [0, 1, 2].map((i) => ptePfn(core.pt.pte(proc.mm, a + i * PAGE_SIZE)));
      core.phys.flags[pfns[1]!]! |= Frame.DIRTY; // one page already marked dirty
      expect(yield* proc.madvise(a, 3 * PAGE_SIZE, Madv.FREE)).toBe(0);
      for (let i = 0; i < 3; i++) {
        const pte = core.pt.pte(proc.mm, a + i * PAGE_SIZE);
        expect(ptePfn(pte)).toBe(pfns[i]);
        expect(pteFlags(pte) & (Pte.DIRTY | Pte.ACCESSED)).toBe(0);
        expect(core.phys.flags[pfns[i]!]! & (Frame.LAZYFREE | Frame.DIRTY)).toBe(Frame.LAZYFREE);
      }
      // The data is still there until reclaim discards it.
      expect(yield* proc.load(a + PAGE_SIZE)).toBe(101);
      expect(yield* proc.store(a + 2 * PAGE_SIZE, 7)).toBe(0);
      expect(pteFlags(core.pt.pte(proc.mm, a + 2 * PAGE_SIZE)) & Pte.DIRTY).toBe(Pte.DIRTY);
    });
    runOk(sim);
  });

  it('MADV_FREE on a file mapping is -EINVAL', () => {
    const { sim, svc, proc } = setup();
    const file = svc.newFile('f', 1);
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, Map_.PRIVATE, file, 0);
      expect(yield* proc.madvise(a, PAGE_SIZE, Madv.FREE)).toBe(-Errno.EINVAL);
    });
    runOk(sim);
  });

  it('-EINVAL for an unknown advice', () => {
    const { sim, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      expect(yield* proc.madvise(a, PAGE_SIZE, 999)).toBe(-Errno.EINVAL);
    });
    runOk(sim);
  });

  it('-EINVAL for an unaligned address or a negative length; length 0 is a no-op', () => {
    const { sim, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, PAGE_SIZE, RW, ANON);
      expect(yield* proc.madvise(a + 1, PAGE_SIZE, Madv.DONTNEED)).toBe(-Errno.EINVAL);
      expect(yield* proc.madvise(a, -PAGE_SIZE, Madv.DONTNEED)).toBe(-Errno.EINVAL);
      expect(yield* proc.madvise(a, 0, Madv.DONTNEED)).toBe(0);
    });
    runOk(sim);
  });

  it('-ENOMEM for a range with a hole, after advising the mapped parts', () => {
    const { sim, proc } = setup();
    sim.spawn('app', 0, function* () {
      const a = yield* proc.mmap(0, 3 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 3);
      expect(yield* proc.munmap(a + PAGE_SIZE, PAGE_SIZE)).toBe(0);
      expect(yield* proc.madvise(a, 3 * PAGE_SIZE, Madv.DONTNEED)).toBe(-Errno.ENOMEM);
      expect(yield* proc.load(a)).toBe(0);
      expect(yield* proc.load(a + 2 * PAGE_SIZE)).toBe(0);
      expect(yield* proc.madvise(a + 3 * PAGE_SIZE, PAGE_SIZE, Madv.DONTNEED)).toBe(-Errno.ENOMEM);
    });
    runOk(sim);
  });

  it('two concurrent MADV_DONTNEED nest their gathers: finish flushes the whole mm with freedTables', () => {
    // Round-robin alternates between the two CPUs at every scheduling point (the zap has one
    // after each PTE table), so both gathers are open at once (users-and-hardware.md §5.3).
    const { sim, proc } = setup({ cpus: 2 });
    const regions: number[] = [];
    let ready = 0;
    let from = 0;
    for (const cpu of [0, 1]) {
      sim.spawn(`w${cpu}`, cpu, function* () {
        const a = yield* proc.mmap(0, 1024 * PAGE_SIZE, RW, ANON);
        regions[cpu] = a;
        yield* touch(proc, a, 1);
        yield* touch(proc, a + 600 * PAGE_SIZE, 1);
        if (++ready === 2) from = sim.log!.length;
        while (ready < 2) yield* sim.scheduler.preempt();
        expect(yield* proc.madvise(a, 1024 * PAGE_SIZE, Madv.DONTNEED)).toBe(0);
      });
    }
    runOk(sim);
    const evs = eventList(sim, from);
    const starts = evs.filter((e) => e.type === 'mmn.invalidate_start');
    const ends = evs.filter((e) => e.type === 'mmn.invalidate_end');
    expect(starts.length).toBe(2);
    // Both windows were open at once.
    expect(starts[1]!.seq).toBeLessThan(ends[0]!.seq);
    const full = evs.filter(
      (e) =>
        e.type === 'mm.tlb.flush' &&
        e.d.start === 0 &&
        e.d.end === TASK_SIZE &&
        e.d.freedTables === true,
    );
    expect(full.length).toBeGreaterThanOrEqual(1);
    expect(proc.mm.tlbFlushPending).toBe(0);
  });
});
