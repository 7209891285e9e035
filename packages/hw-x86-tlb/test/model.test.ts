// The x86 TLB model piece by piece (arch/x86/mm/tlb.c, the hardware facts of
// users-and-hardware.md §5.1–5.2): the plugin and its options, hits and fills, the dirty-bit and
// protection-fault walks, replacement, PCID slots, the generation rule of flush_tlb_func,
// deferred batches, the secondary-TLB hook, and the kinds of staleness the oracle tells apart.
import { describe, expect, it } from '@jest/globals';
import { ConfigError, RoundRobinStrategy, Simulation, WaitQueue } from '@mmnsim/core';
import type { Task, TaskGen } from '@mmnsim/core';
import {
  mmPlugin,
  MmService,
  MmuNotifier,
  MmuNotifierSubsystem,
  PAGE_SIZE,
  Prot,
  Pte,
  PTE_NONE,
  pteFlags,
  ptePfn,
  reclaimFolio,
  TASK_SIZE,
} from '@mmnsim/mm';
import type { MmStruct, Process } from '@mmnsim/mm';
import { x86TlbPlugin } from '@mmnsim/hw-x86-tlb';
import { ALONE, ANON, ofType, RW, runOk, spin, touch, x86Sim } from './helpers.js';

/** Round-robin, except that pending interrupt work runs newest first (to reorder IPIs). */
class NewestIrqFirst extends RoundRobinStrategy {
  override pick(candidates: readonly Task[]): Task {
    let irq: Task | undefined;
    for (const t of candidates) if (t.interrupt && (irq === undefined || t.id > irq.id)) irq = t;
    return irq ?? super.pick(candidates);
  }
}

describe('the x86-tlb plugin', () => {
  it("rebinds the memory model's TLB provider, and validates its options", () => {
    const { svc, tlb } = x86Sim();
    expect(svc.core.tlb).toBe(tlb);
    expect(tlb.name).toBe('x86');
    expect(tlb.options).toMatchObject({
      flushCeiling: 33,
      entries: 1536,
      ways: 12,
      replacement: 'lru',
      pcid: true,
      bug: 'none',
    });
    const make = (o: object) =>
      Simulation.create({ seed: 1, plugins: [mmPlugin(), x86TlbPlugin(o)] });
    expect(() => make({ entries: 100 })).toThrow(ConfigError);
    expect(() => make({ entries: 100 })).toThrow(
      /"entries": "entries" must be a multiple of "ways"/,
    );
    expect(() => make({ replacement: 'plru' })).toThrow(/"replacement"/);
    expect(() => make({ ceiling: 33 })).toThrow(/ceiling/);
    expect(() => Simulation.create({ seed: 1, plugins: [x86TlbPlugin()] })).toThrow(
      /plugin "x86-tlb" requires plugin "mm"/,
    );
    // Fully associative when smaller than the ways.
    expect(() => make({ entries: 8 })).not.toThrow();
  });
});

describe('accesses (the hardware walk)', () => {
  it('a miss walks the page table, sets the accessed bit and fills; later accesses hit without touching the PTE', () => {
    const { sim, svc, proc, tlb } = x86Sim({ cpus: 1 });
    let a = 0;
    sim.spawn('app', 0, function* () {
      a = yield* proc.mmap(ALONE, PAGE_SIZE, RW, ANON);
      yield* proc.store(a, 5);
      const slot = svc.core.pt.lookup(proc.mm, a)!;
      // Age the PTE by hand: the cached translation keeps being used, the bit stays clear.
      svc.core.pt.set(proc.mm, slot, a, slot.table[slot.index]! - Pte.ACCESSED);
      expect(yield* proc.load(a)).toBe(5);
      expect(pteFlags(svc.core.pt.pte(proc.mm, a)) & Pte.ACCESSED).toBe(0);
    });
    runOk(sim);
    const fills = ofType(sim, 'tlb.fill');
    expect(fills.map((e) => e.data)).toEqual([
      {
        cpu: 0,
        mm: proc.mm.id,
        va: a,
        pfn: expect.any(Number),
        pcid: 2,
        writable: true,
        dirty: true,
        global: false,
        speculative: false,
        evicted: -1,
      },
    ]);
    expect(ofType(sim, 'tlb.hit').map((e) => e.data.va)).toEqual([a]);
    expect(tlb.entries(0)).toEqual([
      {
        va: a,
        pfn: fills[0]!.data.pfn,
        mm: proc.mm.id,
        asid: 1,
        writable: true,
        accessed: true,
        dirty: true,
        global: false,
      },
    ]);
    expect(tlb.stats.hits).toBe(1);
  });

  it('a store through a clean entry walks again to set the dirty bit; a store through a read-only entry faults and drops it', () => {
    const { sim, svc, proc } = x86Sim({ cpus: 1 });
    const core = svc.core;
    let a = 0;
    sim.spawn('app', 0, function* () {
      a = yield* proc.mmap(ALONE, 2 * PAGE_SIZE, RW, ANON);
      yield* proc.store(a, 1);
      // Clean the PTE and flush, as writeback would (folio_mkclean).
      const slot = core.pt.lookup(proc.mm, a)!;
      core.pt.set(proc.mm, slot, a, slot.table[slot.index]! - Pte.DIRTY);
      yield* core.tlb.flushRange(proc.mm, a, a + PAGE_SIZE, false);
      expect(yield* proc.load(a)).toBe(1); // fills a writable, clean entry
      expect(yield* proc.store(a, 2)).toBe(0); // walks again: the PTE is dirty again
      expect(pteFlags(core.pt.pte(proc.mm, a)) & Pte.DIRTY).toBe(Pte.DIRTY);
      // The zero page is mapped read-only: the store faults, copies on write, and retries.
      expect(yield* proc.load(a + PAGE_SIZE)).toBe(0);
      expect(yield* proc.store(a + PAGE_SIZE, 3)).toBe(0);
      expect(yield* proc.load(a + PAGE_SIZE)).toBe(3);
    });
    runOk(sim);
    const causes = ofType(sim, 'tlb.miss').map((e) => [e.data.va - a, e.data.write, e.data.cause]);
    expect(causes).toContainEqual([0, true, 'dirty']);
    expect(causes).toContainEqual([PAGE_SIZE, true, 'protection']);
    expect(ptePfn(core.pt.pte(proc.mm, a + PAGE_SIZE))).not.toBe(0);
  });

  it('replacement: a full set evicts the least recently used entry (lru) or the oldest fill (fifo)', () => {
    const survivors = (replacement: 'lru' | 'fifo') => {
      const { sim, proc, tlb } = x86Sim({ cpus: 1, tlb: { entries: 2, ways: 2, replacement } });
      let a = 0;
      sim.spawn('app', 0, function* () {
        a = yield* proc.mmap(ALONE, 3 * PAGE_SIZE, RW, ANON);
        yield* touch(proc, a, 3); // each page filled in turn: A, B, then C evicts A
        yield* proc.load(a + PAGE_SIZE); // B: refill-free hit
        yield* proc.load(a); // A again: evicts C (lru: B was just used) or B (fifo: oldest)
      });
      runOk(sim);
      return {
        pages: tlb
          .entries(0)
          .map((e) => (e.va - a) / PAGE_SIZE)
          .sort(),
        evictions: tlb.stats.evictions,
      };
    };
    expect(survivors('lru')).toEqual({ pages: [0, 1], evictions: 2 });
    expect(survivors('fifo')).toEqual({ pages: [0, 2], evictions: 2 });
  });
});

describe('PCIDs and context switches', () => {
  /** One task touching seven processes in turn, then two of them again. */
  function sevenMms(pcid: boolean) {
    const { sim, svc, tlb } = x86Sim({ cpus: 1, tlb: { pcid } });
    const procs: Process[] = [];
    for (let i = 0; i < 7; i++) procs.push(svc.createProcess(`p${i}`));
    sim.spawn('t', 0, function* () {
      for (const p of procs) {
        yield* p.mmap(ALONE, PAGE_SIZE, RW, ANON);
        yield* p.store(ALONE, p.pid);
      }
      yield* procs[1]!.load(ALONE);
      yield* procs[0]!.load(ALONE);
    });
    runOk(sim);
    const switches = ofType(sim, 'tlb.switch').map((e) => [e.data.to, e.data.pcid, e.data.flush]);
    const hits = ofType(sim, 'tlb.hit').map((e) => e.data.mm);
    return { switches, hits, procs, tlb };
  }

  it('with PCIDs a CPU keeps 6 mms tagged: a new mm takes the next ASID round-robin (flushing it), a returning one finds its entries', () => {
    const { switches, hits, procs, tlb } = sevenMms(true);
    const id = (i: number) => procs[i]!.mm.id;
    expect(switches).toEqual([
      [id(0), 2, true],
      [id(1), 3, true],
      [id(2), 4, true],
      [id(3), 5, true],
      [id(4), 6, true],
      [id(5), 1, true], // wraps to ASID 0, init_mm's slot
      [id(6), 2, true], // takes p0's slot
      [id(1), 3, false], // p1's slot is current: no flush, its entry is still cached
      [id(0), 3, true], // p0 lost its slot: it takes the next one round-robin, p1's
    ]);
    expect(hits).toEqual([id(1)]);
    // ctx_ids are never reused: p0..p6 have 2..8 (init_mm has 1).
    expect(tlb.cpuState(0).slots.map((s) => s.ctxId)).toEqual([7, 8, 2, 4, 5, 6]);
  });

  it('without PCIDs every switch to another mm flushes the TLB', () => {
    const { switches, hits } = sevenMms(false);
    expect(switches.every(([, pcid, flush]) => pcid === 0 && flush === true)).toBe(true);
    expect(hits).toEqual([]);
  });

  it('useMm / unuseMm: a kernel task adopts an mm (kthread_use_mm), then drops it and its CPU keeps the mm lazily', () => {
    const { sim, proc, tlb } = x86Sim({ cpus: 1 });
    const states: unknown[] = [];
    sim.spawn('kworker', 0, function* () {
      tlb.useMm(proc.mm);
      states.push(tlb.cpuState(0));
      tlb.unuseMm();
      states.push(tlb.cpuState(0));
    });
    runOk(sim);
    const mm = proc.mm.id;
    expect(states).toMatchObject([
      { loadedMm: mm, lazy: false },
      { loadedMm: mm, lazy: true },
    ]);
    expect(tlb.cpumask(proc.mm)).toEqual([0]);
    expect(ofType(sim, 'tlb.lazy').map((e) => e.data)).toEqual([{ cpu: 0, mm }]);
  });
});

describe('flush_tlb_mm_range', () => {
  it("bumps tlb_gen, shoots down the CPUs that have the mm loaded, waits for them, then calls arch_invalidate_secondary_tlbs with the caller's range", () => {
    const { sim, svc, proc, tlb } = x86Sim({ cpus: 3 });
    const mmn = sim.get(MmuNotifierSubsystem);
    const hooks: [number, number][] = [];
    const sva = new MmuNotifier({
      name: 'sva',
      archInvalidateSecondaryTlbs(_s, _mm, start, end) {
        hooks.push([start, end]);
      },
    });
    const ready = new WaitQueue(sim.scheduler, 'ready');
    let a = 0;
    let stop = false;
    sim.spawn('app', 0, function* () {
      yield* mmn.register(sva, proc.mm);
      a = yield* proc.mmap(ALONE, 64 * PAGE_SIZE, RW, ANON);
      yield* touch(proc, a, 64);
      ready.wakeAll();
      yield* spin(sim, 10);
      const gen = tlb.generation(proc.mm);
      yield* svc.core.tlb.flushRange(proc.mm, a, a + 64 * PAGE_SIZE, false); // > ceiling: full
      expect(tlb.generation(proc.mm)).toBe(gen + 1);
      stop = true;
    });
    sim.spawn('app-thread', 1, function* () {
      yield* ready.waitEvent(() => a !== 0);
      while (!stop) {
        yield* proc.load(a);
        yield* sim.scheduler.preempt();
      }
    });
    sim.spawn('idle-ish', 2, function* () {
      yield* spin(sim, 30);
    });
    runOk(sim);
    expect(hooks).toEqual([[a, a + 64 * PAGE_SIZE]]);
    const sends = ofType(sim, 'tlb.ipi.send');
    expect(sends.map((e) => e.data.to)).toEqual([1]);
    const ack = ofType(sim, 'tlb.ipi.ack')[0]!;
    const hook = ofType(sim, 'mmn.secondary_tlbs').at(-1)!;
    expect(ack.seq).toBeLessThan(hook.seq);
    const ipiFlush = ofType(sim, 'tlb.flush').find((e) => e.data.reason === 'ipi')!;
    expect(ipiFlush.data).toMatchObject({ cpu: 1, kind: 'full', end: -1 });
    expect(tlb.cpumask(proc.mm)).toEqual([0, 1]);
  });

  it('a CPU more than one generation behind does a full flush even for a ranged request (full 1→2 and partial 2→3 handled in reverse order)', () => {
    const run = (bug: 'none' | 'partial-flush-ignores-generation') => {
      const sim = Simulation.create({
        seed: 1,
        cpus: 3,
        strategy: new NewestIrqFirst(),
        plugins: [mmPlugin({ totalFrames: 256 }), x86TlbPlugin({ bug })],
      });
      const svc = sim.get(MmService);
      const core = svc.core;
      const proc = svc.createProcess('app');
      const mm = proc.mm;
      const r: Record<string, unknown> = {};
      let a = 0;
      let phase = 0;
      const wq = new WaitQueue(sim.scheduler, 'phase');
      const until = (p: number) => wq.waitEvent(() => phase >= p);
      const next = () => {
        phase++;
        wq.wakeAll();
      };
      /** Clears the PTE of `va` and returns its frame (freed by the caller after its flush). */
      function* clear(va: number): TaskGen<number> {
        const slot = core.pt.lookup(mm, va)!;
        const ptl = mm.ptl(slot.tablePfn);
        yield* ptl.lock();
        const pfn = ptePfn(slot.table[slot.index]!);
        core.pt.set(mm, slot, va, PTE_NONE);
        core.phys.mapcount[pfn]!--;
        ptl.unlock();
        return pfn;
      }
      sim.spawn('full', 0, function* () {
        a = yield* proc.mmap(ALONE, 2 * PAGE_SIZE, RW, ANON);
        yield* touch(proc, a, 2);
        next(); // 1: CPU1 caches both pages
        yield* until(2);
        const pfn = yield* clear(a);
        yield* core.tlb.flushRange(mm, 0, TASK_SIZE, false); // gen 1→2, a full flush
        core.phys.put(pfn);
        yield* until(4);
        next(); // 5: both flushes completed
      });
      sim.spawn('partial', 2, function* () {
        yield* until(3);
        yield* proc.load(a + PAGE_SIZE); // a thread of the mm here too
        const pfn = yield* clear(a + PAGE_SIZE);
        yield* core.tlb.flushRange(mm, a + PAGE_SIZE, a + 2 * PAGE_SIZE, false); // 2→3, one page
        core.phys.put(pfn);
        next(); // 4
      });
      sim.spawn('reader', 1, function* () {
        yield* until(1);
        yield* proc.load(a);
        yield* proc.load(a + PAGE_SIZE);
        // Interrupts off while both flushes are requested: their IPIs wait here, and then run
        // newest first.
        sim.kernel.localIrqSave();
        next(); // 2
        while (ofType(sim, 'tlb.ipi.send').filter((e) => e.data.to === 1).length < 1)
          yield* sim.scheduler.preempt();
        next(); // 3
        while (ofType(sim, 'tlb.ipi.send').filter((e) => e.data.to === 1).length < 2)
          yield* sim.scheduler.preempt();
        sim.kernel.localIrqRestore();
        yield* sim.scheduler.preempt(); // the two IPIs run here, on this thread's mm
        yield* until(5);
        r.after = yield* proc.load(a);
      });
      const result = sim.run();
      const ipiFlushes = ofType(sim, 'tlb.flush')
        .filter((e) => e.data.cpu === 1 && e.data.reason === 'ipi')
        .map((e) => e.data.kind);
      return { result, r, ipiFlushes };
    };
    const ok = run('none');
    expect(ok.result.violations).toEqual([]);
    expect(ok.ipiFlushes).toEqual(['full']); // the partial request, seen first, flushes all; the full one finds CPU1 current
    expect(ok.r.after).toBe(0); // the page was zapped: a fresh zero page
    const bug = run('partial-flush-ignores-generation');
    expect(bug.ipiFlushes).toEqual(['pages']);
    expect(bug.result.violations.map((v) => v.kind)).toEqual(['tlb-use-after-free']);
    expect(bug.result.violations[0]!.message).toMatch(/without removing it from cpu1/);
  });
});

describe('deferred batches (arch_tlbbatch_add_pending / arch_tlbbatch_flush)', () => {
  it('reclaim queues the flush (bumping tlb_gen, invalidating secondary TLBs at once for the whole space) and flushes non-lazy CPUs fully before the page is freed', () => {
    const { sim, svc, proc, tlb } = x86Sim({ cpus: 3 });
    const core = svc.core;
    const ready = new WaitQueue(sim.scheduler, 'ready');
    let a = 0;
    let stop = false;
    let pfn = -1;
    let freedAt = -1;
    sim.spawn('app', 0, function* () {
      a = yield* proc.mmap(ALONE, PAGE_SIZE, RW, ANON);
      yield* proc.store(a, 9);
      pfn = ptePfn(core.pt.pte(proc.mm, a));
      ready.wakeAll();
      yield* ready.waitEvent(() => stop);
    });
    sim.spawn('app-thread', 1, function* () {
      yield* ready.waitEvent(() => pfn >= 0);
      while (!stop) {
        yield* proc.load(a);
        yield* sim.scheduler.preempt();
      }
      expect(yield* proc.load(a)).toBe(9); // swapped back in
    });
    sim.spawn('kswapd', 2, function* () {
      yield* ready.waitEvent(() => pfn >= 0);
      yield* spin(sim, 6);
      const gen = tlb.generation(proc.mm);
      expect(yield* reclaimFolio(core, pfn)).toBe(true);
      expect(tlb.generation(proc.mm)).toBe(gen + 1);
      freedAt = sim.log!.events.findLast(
        (e) => e.type === 'mm.frame.free' && (e.data as { pfn: number }).pfn === pfn,
      )!.seq;
      stop = true;
      ready.wakeAll();
    });
    runOk(sim);
    const hook = ofType(sim, 'mmn.secondary_tlbs').find((e) => e.data.mm === proc.mm.id)!;
    expect(hook.data).toEqual({ mm: proc.mm.id, start: 0, end: TASK_SIZE });
    const ipi = ofType(sim, 'tlb.ipi.send').find((e) => e.data.mm === 0)!;
    expect(ipi.data).toMatchObject({ from: 2, gen: -1, freedTables: false });
    expect(hook.seq).toBeLessThan(ipi.seq); // the hook fired when the flush was queued
    const flushes = ofType(sim, 'tlb.flush').filter((e) => e.data.reason === 'ipi');
    expect(flushes.map((e) => e.data.kind)).toContain('full');
    const acks = ofType(sim, 'tlb.ipi.ack').filter((e) => e.data.mm === 0);
    expect(acks.every((e) => e.seq < freedAt)).toBe(true);
    expect(
      ofType(sim, 'mm.tlb.flush').filter((e) => e.data.start === 0 && e.data.end === TASK_SIZE),
    ).toHaveLength(1);
    expect(tlb.stats.batchFlushes).toBe(1);
  });
});

describe('the oracle: what counts as stale', () => {
  /**
   * CPU1's thread stores to a page (a writable, dirty entry) and blocks; a kernel thread runs
   * there lazily; the app write-protects the page (mprotect), which skips the lazy CPU; with the
   * broken lazy return, the thread then loads and stores through its old entry.
   */
  function writeProtect(bug: 'none' | 'no-lazy-generation-check', store: boolean) {
    const { sim, proc } = x86Sim({ cpus: 2, tlb: { bug } });
    const wq = new WaitQueue(sim.scheduler, 'phase');
    let phase = 0;
    const until = (p: number) => wq.waitEvent(() => phase >= p);
    const next = () => {
      phase++;
      wq.wakeAll();
    };
    let a = 0;
    const r: Record<string, number> = {};
    sim.spawn('app', 0, function* () {
      a = yield* proc.mmap(ALONE, PAGE_SIZE, RW, ANON);
      next(); // 1
      yield* until(2);
      yield* spin(sim, 3);
      expect(yield* proc.mprotect(a, PAGE_SIZE, Prot.READ)).toBe(0);
      next(); // 3
    });
    sim.spawn('app-thread', 1, function* () {
      yield* until(1);
      yield* proc.store(a, 5);
      next(); // 2
      yield* until(3);
      r.load = yield* proc.load(a);
      if (store) r.store = yield* proc.store(a, 6);
    });
    sim.spawn('kthread', 1, function* () {
      yield* until(2);
      yield* spin(sim, 10);
    });
    const result = sim.run();
    return { result, r };
  }

  it('a write-protected page may still be read through an old entry, but a store through it after the flush completed is reported', () => {
    const ok = writeProtect('none', true);
    expect(ok.result.violations).toEqual([]);
    expect(ok.r).toEqual({ load: 5, store: -14 });
    const reads = writeProtect('no-lazy-generation-check', false);
    expect(reads.result.violations).toEqual([]);
    expect(reads.r.load).toBe(5);
    const writes = writeProtect('no-lazy-generation-check', true);
    expect(writes.result.violations.map((v) => v.kind)).toEqual(['stale-tlb']);
    expect(writes.result.violations[0]!.message).toMatch(
      /cpu1 store to 0x10000000000 .* its PTE changed at step \d+ \(#\d+\) \(pfn 0x[0-9a-f]+ wad → pfn 0x[0-9a-f]+ -ad\); the flush covering it completed/,
    );
  });

  it('using a stale entry before the flush that covers it completed is allowed (the hardware may), and not reported', () => {
    const { sim, svc, proc } = x86Sim({ cpus: 2 });
    const core = svc.core;
    const mm: MmStruct = proc.mm;
    const wq = new WaitQueue(sim.scheduler, 'phase');
    let phase = 0;
    let a = 0;
    const seen: number[] = [];
    sim.spawn('app', 0, function* () {
      a = yield* proc.mmap(ALONE, PAGE_SIZE, RW, ANON);
      yield* proc.store(a, 1);
      phase = 1;
      wq.wakeAll();
      yield* wq.waitEvent(() => phase === 2);
      // Clear the PTE; let the other CPU run before flushing.
      const slot = core.pt.lookup(mm, a)!;
      const pfn = ptePfn(slot.table[slot.index]!);
      core.pt.set(mm, slot, a, PTE_NONE);
      core.phys.mapcount[pfn]!--;
      phase = 3;
      wq.wakeAll();
      yield* wq.waitEvent(() => phase === 4);
      yield* core.tlb.flushRange(mm, a, a + PAGE_SIZE, false);
      core.phys.put(pfn);
      phase = 5;
      wq.wakeAll();
    });
    sim.spawn('app-thread', 1, function* () {
      yield* wq.waitEvent(() => phase === 1);
      seen.push(yield* proc.load(a));
      phase = 2;
      wq.wakeAll();
      yield* wq.waitEvent(() => phase === 3);
      seen.push(yield* proc.load(a)); // the PTE is gone, the TLB still has it: the old value
      phase = 4;
      wq.wakeAll();
      yield* wq.waitEvent(() => phase === 5);
      seen.push(yield* proc.load(a)); // flushed: faults in a zero page
    });
    runOk(sim);
    expect(seen).toEqual([1, 1, 0]);
  });
});

describe('determinism', () => {
  it('the same workload, seed and strategy give a byte-identical log (shootdowns, switches, speculative walks included)', () => {
    const once = () => {
      const { sim, proc, tlb } = x86Sim({ cpus: 3, strategy: 'random', seed: 7 });
      let a = 0;
      sim.spawn('app', 0, function* () {
        a = yield* proc.mmap(ALONE, 8 * PAGE_SIZE, RW, ANON);
        yield* touch(proc, a, 8);
        yield* proc.munmap(a, 4 * PAGE_SIZE);
        yield* proc.munmap(a + 4 * PAGE_SIZE, 4 * PAGE_SIZE);
      });
      sim.spawn('app-thread', 1, function* () {
        for (let i = 0; i < 20; i++) {
          if (a !== 0) yield* proc.load(a + (i % 8) * PAGE_SIZE);
          yield* sim.scheduler.preempt();
        }
      });
      sim.spawn('kthread', 1, function* () {
        for (let i = 0; i < 20; i++) {
          if (a !== 0) tlb.speculativeWalk(a + (i % 8) * PAGE_SIZE);
          yield* sim.scheduler.preempt();
        }
      });
      runOk(sim);
      return sim.toNdjson();
    };
    const first = once();
    expect(first).toContain('"tlb.ipi.send"');
    expect(once()).toBe(first);
  });
});
