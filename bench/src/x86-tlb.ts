import { Simulation } from '@mmnsim/core';
import type { Scheduler, TaskGen } from '@mmnsim/core';
import { Map_, mmPlugin, MmService, PAGE_SIZE, Prot } from '@mmnsim/mm';
import type { MmCore, Process } from '@mmnsim/mm';
import { x86TlbPlugin } from '@mmnsim/hw-x86-tlb';
import { bestRate } from './metric.js';
import type { Metric } from './metric.js';

/** Loads per timed round of the hit bench. */
const ACCESSES = 2_000_000;
/** Pages the hit bench cycles over (all cached after the first pass). */
const HIT_PAGES = 64;
/** Shootdowns per timed round of the shootdown bench. */
const SHOOTDOWNS = 20_000;
/** Pages each shootdown flushes (per-page INVLPG: below the 33-page ceiling). */
const RANGE_PAGES = 16;
/** CPUs of the shootdown bench: the initiator and three CPUs running threads of the mm. */
const CPUS = 4;

/**
 * A simulation with the memory model and the x86 TLB model on `cpus` CPUs and one process with
 * `pages` touched pages; `work` runs on CPU0 after the pages are touched, `others` (if given) on
 * every other CPU as further threads of the process. Log off, lockdep on.
 */
function run(
  cpus: number,
  pages: number,
  work: (proc: Process, core: MmCore, a: number, done: () => void) => TaskGen<void>,
  others?: (proc: Process, a: number, stopped: () => boolean, sched: Scheduler) => TaskGen<void>,
): void {
  const sim = Simulation.create({
    seed: 1,
    cpus,
    log: false,
    maxSteps: 1_000_000_000,
    plugins: [mmPlugin({ totalFrames: 4096 }), x86TlbPlugin()],
  });
  const svc = sim.get(MmService);
  const proc = svc.createProcess('bench');
  let a = 0;
  let stop = false;
  let ready = 0;
  sim.spawn('bench', 0, function* (): TaskGen<void> {
    a = yield* proc.mmap(
      0,
      pages * PAGE_SIZE,
      Prot.READ | Prot.WRITE,
      Map_.PRIVATE | Map_.ANONYMOUS,
    );
    for (let p = 0; p < pages; p++) yield* proc.store(a + p * PAGE_SIZE, p);
    // The other threads have the mm loaded before the work starts.
    while (ready < cpus - 1 && others !== undefined) yield* sim.scheduler.preempt();
    yield* work(proc, svc.core, a, () => (stop = true));
  });
  if (others !== undefined) {
    for (let c = 1; c < cpus; c++) {
      sim.spawn(`thread${c}`, c, function* (): TaskGen<void> {
        while (a === 0) yield* sim.scheduler.preempt();
        yield* proc.load(a);
        ready++;
        yield* others(proc, a, () => stop, sim.scheduler);
      });
    }
  }
  const r = sim.run();
  if (r.reason !== 'done' || r.violations.length > 0)
    throw new Error(
      `x86-tlb bench ended with ${r.reason} ${r.violations.map((v) => v.kind).join(' ')}`,
    );
}

/**
 * `tlb.access_hit_per_s`: CPU loads per second that hit the TLB — one task loading the first
 * word of each of 64 cached pages in turn (`Process.load`: `cpuAccess` → `translate` hit →
 * the frame read), 2 M loads per round, one CPU.
 */
function hitRate(): Metric {
  const value = bestRate(
    ACCESSES,
    () =>
      run(1, HIT_PAGES, function* (proc, _core, a) {
        for (let i = 0; i < ACCESSES; i++) yield* proc.load(a + (i % HIT_PAGES) * PAGE_SIZE);
      }),
    3,
  );
  return { name: 'tlb.access_hit_per_s', value, unit: 'loads/s' };
}

/**
 * `tlb.shootdown_per_s`: `flush_tlb_mm_range` calls per second on 4 CPUs — CPU0 flushes a
 * 16-page range of the mm (per-page flushes) 20,000 times while a thread of the mm on each of the
 * other three CPUs keeps reloading those pages; each flush sends three IPIs (interrupt tasks),
 * spin-waits for their acknowledgements and calls the secondary-TLB hook. Wall time includes
 * the scheduling of every task involved.
 */
function shootdownRate(): Metric {
  const value = bestRate(
    SHOOTDOWNS,
    () =>
      run(
        CPUS,
        RANGE_PAGES,
        function* (proc, core, a, done) {
          const end = a + RANGE_PAGES * PAGE_SIZE;
          for (let i = 0; i < SHOOTDOWNS; i++) yield* core.tlb.flushRange(proc.mm, a, end, false);
          done();
        },
        function* (proc, a, stopped, sched) {
          for (let i = 0; !stopped(); i++) {
            yield* proc.load(a + (i % RANGE_PAGES) * PAGE_SIZE);
            yield* proc.load(a + ((i + 7) % RANGE_PAGES) * PAGE_SIZE);
            yield* sched.preempt();
          }
        },
      ),
    3,
  );
  return { name: 'tlb.shootdown_per_s', value, unit: 'shootdowns/s' };
}

/** Figures of the x86 TLB model. */
export function benchX86Tlb(): Metric[] {
  return [hitRate(), shootdownRate()];
}
