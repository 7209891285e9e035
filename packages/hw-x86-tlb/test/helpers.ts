// Shared set-up for the x86 TLB tests: a simulation with the memory model and the TLB model,
// typed access to the logged events, and small workload pieces.
import { expect } from '@jest/globals';
import { Simulation } from '@mmnsim/core';
import type { SimEventMap, StrategySpec, TaskGen } from '@mmnsim/core';
import { Map_, mmPlugin, MmService, PAGE_SIZE, Prot } from '@mmnsim/mm';
import type { Process } from '@mmnsim/mm';
import { X86Tlb, x86TlbPlugin } from '@mmnsim/hw-x86-tlb';
import type { X86TlbOptionsInput } from '@mmnsim/hw-x86-tlb';

export const RW = Prot.READ | Prot.WRITE;
export const ANON = Map_.PRIVATE | Map_.ANONYMOUS;
/** A 1 GiB-aligned address: a mapping there has page tables of its own (PTE, PMD tables). */
export const ALONE = 2 ** 40;

/** A simulation with the memory model, the x86 TLB model and one process. */
export function x86Sim(
  options: {
    seed?: number;
    cpus?: number;
    totalFrames?: number;
    gatherMaxPages?: number;
    strategy?: StrategySpec;
    log?: boolean;
    tlb?: X86TlbOptionsInput;
  } = {},
): { sim: Simulation; svc: MmService; proc: Process; tlb: X86Tlb } {
  const sim = Simulation.create({
    seed: options.seed ?? 1,
    cpus: options.cpus ?? 2,
    strategy: options.strategy ?? 'round-robin',
    log: options.log ?? true,
    plugins: [
      mmPlugin({
        totalFrames: options.totalFrames ?? 1024,
        ...(options.gatherMaxPages !== undefined ? { gatherMaxPages: options.gatherMaxPages } : {}),
      }),
      x86TlbPlugin(options.tlb ?? {}),
    ],
  });
  const svc = sim.get(MmService);
  return { sim, svc, proc: svc.createProcess('app'), tlb: sim.get(X86Tlb) };
}

/** Runs the simulation and expects a clean end. */
export function runOk(sim: Simulation): void {
  const r = sim.run();
  expect(r.violations).toEqual([]);
  expect(r.reason).toBe('done');
}

/** The logged events of one type with their typed payloads. */
export function ofType<K extends keyof SimEventMap>(sim: Simulation, type: K) {
  return sim.log!.ofType(type).map(({ seq, step, task, data }) => ({ seq, step, task, data }));
}

/** Stores `i + 1` into the first word of each of `pages` pages from `addr`. */
export function* touch(proc: Process, addr: number, pages: number): TaskGen<void> {
  for (let i = 0; i < pages; i++) expect(yield* proc.store(addr + i * PAGE_SIZE, i + 1)).toBe(0);
}

/** Yields `n` times. */
export function* spin(sim: Simulation, n: number): TaskGen<void> {
  for (let i = 0; i < n; i++) yield* sim.scheduler.preempt();
}
