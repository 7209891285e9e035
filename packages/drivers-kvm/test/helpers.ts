import { expect } from '@jest/globals';
import { Simulation } from '@mmnsim/core';
import type { SimEventMap, Strategy, StrategySpec, TaskGen } from '@mmnsim/core';
import {
  Map_,
  mmPlugin,
  MmService,
  MmuNotifierSubsystem,
  notifierOracles,
  PAGE_SIZE,
  Prot,
} from '@mmnsim/mm';
import type { Process } from '@mmnsim/mm';
import { kvmPlugin, KvmService } from '@mmnsim/drivers-kvm';
import type { KvmBugs, Vm } from '@mmnsim/drivers-kvm';

export const RW = Prot.READ | Prot.WRITE;
export const ANON = Map_.PRIVATE | Map_.ANONYMOUS;
/** Guest physical base of the test memslot: gfn 0x100 (users-and-hardware §7 scenario 1). */
export const GPA_BASE = 0x100 * PAGE_SIZE;

/** Options of {@link kvmSim}. */
export interface KvmSimOptions {
  seed?: number;
  cpus?: number;
  frames?: number;
  strategy?: StrategySpec | Strategy;
  log?: boolean;
  stop?: boolean;
  vcpus?: number;
  adBits?: boolean;
  tdpYieldEvery?: number;
  retryDelayNs?: number;
  bugs?: KvmBugs;
  /** Attach the mm notifier oracles (pairing, secondary-MMU, lifetime); default true. */
  notifierOracles?: boolean;
  maxSteps?: number;
}

/** A simulation with mm + kvm, the notifier oracles, and one process. */
export function kvmSim(o: KvmSimOptions = {}) {
  const sim = Simulation.create({
    seed: o.seed ?? 1,
    cpus: o.cpus ?? 3,
    strategy: o.strategy ?? 'round-robin',
    log: o.log ?? true,
    stopOnViolation: o.stop ?? true,
    maxSteps: o.maxSteps ?? 200_000,
    plugins: [
      mmPlugin({ totalFrames: o.frames ?? 256 }),
      kvmPlugin({
        vcpus: o.vcpus ?? 1,
        adBits: o.adBits ?? true,
        ...(o.tdpYieldEvery !== undefined ? { tdpYieldEvery: o.tdpYieldEvery } : {}),
        ...(o.retryDelayNs !== undefined ? { retryDelayNs: o.retryDelayNs } : {}),
        ...(o.bugs !== undefined ? { bugs: o.bugs } : {}),
      }),
    ],
  });
  if (o.notifierOracles ?? true) for (const x of notifierOracles(sim)) sim.addOracle(x);
  const svc = sim.get(MmService);
  return {
    sim,
    svc,
    core: svc.core,
    mmn: sim.get(MmuNotifierSubsystem),
    kvm: sim.get(KvmService),
    proc: svc.createProcess('qemu'),
  };
}

/**
 * From a host task: map `pages` anonymous pages, write `100 + i` into word 0 of page i, create a
 * VM and give it one memslot gfn 0x100.. ↔ the mapping.
 */
export function* vmWithMemory(
  kvm: KvmService,
  proc: Process,
  pages: number,
  options: { vcpus?: number; cpus?: number[]; touch?: boolean } = {},
): TaskGen<{ vm: Vm; hva: number }> {
  const hva = yield* proc.mmap(0, pages * PAGE_SIZE, RW, ANON);
  if (options.touch ?? true)
    for (let i = 0; i < pages; i++) expect(yield* proc.store(hva + i * PAGE_SIZE, 100 + i)).toBe(0);
  const vm = yield* kvm.createVm(proc, {
    ...(options.vcpus !== undefined ? { vcpus: options.vcpus } : {}),
    ...(options.cpus !== undefined ? { cpus: options.cpus } : {}),
  });
  expect(yield* vm.setMemslot({ slot: 0, gpa: GPA_BASE, size: pages * PAGE_SIZE, hva })).toBe(0);
  return { vm, hva };
}

/** Guest physical address of page `i` of the test memslot (word `word`). */
export function gpa(i: number, word = 0): number {
  return GPA_BASE + i * PAGE_SIZE + word * 4;
}

/** Runs the simulation and expects a clean end. */
export function runOk(sim: Simulation): void {
  const r = sim.run();
  expect(r.violations.map((v) => `${v.kind}: ${v.message}`)).toEqual([]);
  expect(r.reason).toBe('done');
}

/** The logged events of one type with their typed payloads. */
export function ofType<K extends keyof SimEventMap>(sim: Simulation, type: K) {
  return sim.log!.ofType(type).map(({ seq, task, data }) => ({ seq, task, data }));
}

/** `seq` of the first logged event of `type` matching `pred` (-1 if none). */
export function firstSeq<K extends keyof SimEventMap>(
  sim: Simulation,
  type: K,
  pred: (d: SimEventMap[K]) => boolean = () => true,
): number {
  return ofType(sim, type).find((e) => pred(e.data))?.seq ?? -1;
}

/** A condition flag tasks can spin or sleep on, with a waitqueue. */
export class Flag {
  value = false;
  constructor(private readonly sim: Simulation) {}
  set(): void {
    this.value = true;
  }
  /** Sleeps (yielding) until set. */
  *wait(): TaskGen<void> {
    while (!this.value) yield* this.sim.scheduler.sleepFor(100);
  }
  /** Spins (scheduling points, no sleeping) until set: usable in atomic context. */
  *spin(): TaskGen<void> {
    while (!this.value) yield* this.sim.scheduler.preempt();
  }
}
