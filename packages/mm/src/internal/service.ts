import type { Kernel, TaskGen } from '@mmnsim/core';
import { MmCore } from './core.js';
import type { MmConfig } from './core.js';
import type { SimFile } from './file.js';
import { migrateFolio } from './migrate.js';
import type { MmuNotifiers } from './notifier.js';
import { Process } from './process.js';
import { shrinkLru } from './reclaim.js';
import type { TlbFlushProvider } from './tlb.js';
import { oomReap } from './unmap.js';

/**
 * The memory model as a service: creates processes and files, and runs the kernel's own memory
 * activities (reclaim, migration, the OOM reaper) from any task. Drivers reach the internals
 * (physical memory, page tables, notifier entry points) through {@link MmService.core}.
 *
 * ## Example
 * ```ts
 * const sim = Simulation.create({ seed: 1, cpus: 2, plugins: [mmPlugin({ totalFrames: 4096 })] });
 * const mmSvc = sim.get(MmService);
 * const proc = mmSvc.createProcess('app');
 * ```
 */
export class MmService {
  /** The shared state every operation works on. */
  readonly core: MmCore;
  private readonly procs: Process[] = [];
  private nextPid = 1;

  /**
   * Built by the `mm` plugin.
   * @param kernel the kernel services.
   * @param options the validated plugin options.
   * @param tlb the TLB provider.
   * @param notifiers the MMU notifier entry points.
   */
  constructor(kernel: Kernel, options: MmConfig, tlb: TlbFlushProvider, notifiers: MmuNotifiers) {
    this.core = new MmCore(kernel, options, tlb, notifiers);
    this.core.reclaimer = shrinkLru;
  }

  /** Every process created so far. */
  get processes(): readonly Process[] {
    return this.procs;
  }

  /** Creates a process with an empty address space (`mm_users` = 1). */
  createProcess(name: string): Process {
    const mm = this.core.newMm(name);
    const p = new Process(this.core, this.nextPid++, name, mm, (child) => this.adopt(child));
    this.procs.push(p);
    return p;
  }

  /** Registers a process created by `fork` (done by `Process.fork`; idempotent). */
  adopt(p: Process): Process {
    if (!this.procs.includes(p)) this.procs.push(p);
    return p;
  }

  /** Creates a file of `sizePages` pages; `content` maps page offsets to [word, value] pairs. */
  newFile(
    name: string,
    sizePages: number,
    content?: ReadonlyMap<number, readonly number[]>,
  ): SimFile {
    return this.core.newFile(name, sizePages, content);
  }

  /** Reclaims up to `nr` pages from the LRU (kswapd-style); returns how many were freed. */
  *reclaim(nr: number): TaskGen<number> {
    return yield* shrinkLru(this.core, nr);
  }

  /** Migrates the folio in frame `pfn` to a new frame; returns the new pfn or a negated errno. */
  *migrate(pfn: number): TaskGen<number> {
    return yield* migrateFolio(this.core, pfn);
  }

  /** Runs the OOM reaper on `proc`'s mm; true once every eligible VMA was reaped. */
  *oomReap(proc: Process): TaskGen<boolean> {
    return yield* oomReap(this.core, proc.mm);
  }
}
