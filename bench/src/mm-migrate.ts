/**
 * `mm.migrate_pages_per_s`: device migration round trips (mm/migrate_device.c). A driver with
 * device-private memory migrates a touched anonymous range to its pages and back in 64-page
 * chunks, the way lib/test_hmm.c's MIGRATE_TO_DEV and MIGRATE_TO_SYS do: migrate_vma_setup
 * (MIGRATE window, collect, unmap), allocate and copy, migrate_vma_pages, migrate_vma_finalize.
 * One page counted = one full sys → dev → sys round trip.
 */
import { Simulation } from '@mmnsim/core';
import {
  Map_,
  memremapPages,
  MigratePfn,
  migratePfn,
  migratePfnHas,
  migratePfnToPfn,
  migrateVmaFinalize,
  migrateVmaPages,
  MigrateVmaSelect,
  migrateVmaSetup,
  mmPlugin,
  MmService,
  PAGE_SIZE,
  Prot,
  zoneDevicePageInit,
} from '@mmnsim/mm';
import type { MigrateVma, MmCore, Vma } from '@mmnsim/mm';
import type { TaskGen } from '@mmnsim/core';
import type { Metric } from './metric.js';

const CHUNK = 64;

function* migrateChunk(
  core: MmCore,
  vma: Vma,
  start: number,
  owner: object,
  toDevice: boolean,
  free: number[],
): TaskGen<number> {
  const args: MigrateVma = {
    vma,
    start,
    end: start + CHUNK * PAGE_SIZE,
    src: new Array<number>(CHUNK).fill(0),
    dst: new Array<number>(CHUNK).fill(0),
    cpages: 0,
    npages: 0,
    pgmapOwner: owner,
    flags: toDevice ? MigrateVmaSelect.SYSTEM : MigrateVmaSelect.DEVICE_PRIVATE,
  };
  if ((yield* migrateVmaSetup(core, args)) !== 0) throw new Error('migrate_vma_setup failed');
  for (let i = 0; i < args.npages; i++) {
    const s = args.src[i]!;
    const spage = migratePfnToPfn(s);
    if (!migratePfnHas(s, MigratePfn.MIGRATE) || spage < 0) continue;
    let dpage: number;
    if (toDevice) {
      dpage = free.pop()!;
      zoneDevicePageInit(core, dpage);
    } else {
      dpage = yield* core.allocFrame('anon');
      core.phys.tryLockFolio(dpage);
    }
    core.phys.copy(spage, dpage);
    args.dst[i] = migratePfn(dpage) + ((s % 64) & MigratePfn.WRITE);
  }
  yield* migrateVmaPages(core, args);
  let n = 0;
  for (let i = 0; i < args.npages; i++) if (migratePfnHas(args.src[i]!, MigratePfn.MIGRATE)) n++;
  yield* migrateVmaFinalize(core, args);
  return n;
}

/** One simulation: `pages` touched pages, `rounds` round trips; returns round trips per second. */
let cpuRate = 0;

function roundTrips(pages: number, rounds: number): number {
  const sim = Simulation.create({
    seed: 1,
    log: false,
    lockdep: false,
    maxSteps: 100_000_000,
    plugins: [mmPlugin({ totalFrames: 2 * pages + 4096 })],
  });
  const core = sim.get(MmService).core;
  const proc = sim.get(MmService).createProcess('bench');
  const free: number[] = [];
  const owner = { name: 'bench-device' };
  const pgmap = memremapPages(core, {
    type: 'device-private',
    npages: pages,
    owner,
    name: 'bench-device',
    ops: {
      pageFree: (pfn) => free.push(pfn),
      *migrateToRam() {
        return 'sigbus' as const;
      },
    },
  });
  if (typeof pgmap === 'number') throw new Error(`memremap_pages failed: ${pgmap}`);
  for (let p = pgmap.start; p < pgmap.start + pages; p++) free.push(p);
  let rate = 0;
  sim.spawn('bench', 0, function* () {
    const len = pages * PAGE_SIZE;
    const a = yield* proc.mmap(0, len, Prot.READ | Prot.WRITE, Map_.PRIVATE | Map_.ANONYMOUS);
    for (let i = 0; i < pages; i++) yield* proc.store(a + i * PAGE_SIZE, i);
    yield* proc.mm.mmapLock.downRead();
    const vma = proc.mm.vmas.find(a)!;
    let moved = 0;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let r = 0; r < rounds; r++) {
      for (let s = a; s < a + len; s += CHUNK * PAGE_SIZE)
        moved += yield* migrateChunk(core, vma, s, owner, true, free);
      for (let s = a; s < a + len; s += CHUNK * PAGE_SIZE)
        moved += yield* migrateChunk(core, vma, s, owner, false, free);
    }
    const secs = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(c0);
    cpuRate = (pages * rounds) / ((cpu.user + cpu.system) / 1e6);
    proc.mm.mmapLock.upRead();
    if (moved !== 2 * pages * rounds) throw new Error(`migrated ${moved} of ${2 * pages * rounds}`);
    if ((yield* proc.load(a + 5 * PAGE_SIZE)) !== 5) throw new Error('data lost');
    rate = (pages * rounds) / secs;
  });
  const r = sim.run();
  if (r.reason !== 'done') throw new Error(`migrate bench ended with ${r.reason}`);
  return rate;
}

/** `mm.migrate_pages_per_s`: best of five runs after a warm-up. */
export function benchMigrate(): Metric[] {
  const pages = 8192;
  roundTrips(pages, 1);
  let best = 0;
  let bestCpu = 0;
  for (let i = 0; i < 5; i++) {
    best = Math.max(best, roundTrips(pages, 2));
    bestCpu = Math.max(bestCpu, cpuRate);
  }
  return [
    { name: 'mm.migrate_pages_per_s', value: Math.round(best), unit: 'pages/s' },
    { name: 'mm.migrate_pages_per_cpu_s', value: Math.round(bestCpu), unit: 'pages/s' },
  ];
}
