import { Errno } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import type { MmCore } from './core.js';
import { cpuAccess } from './fault.js';
import type { SigInfo } from './fault.js';
import type { SimFile } from './file.js';
import { dupMmap } from './fork.js';
import type { MmStruct } from './mm.js';
import { doBrk, doMmap } from './mmap.js';
import { doMprotect } from './mprotect.js';
import { doMremap } from './mremap.js';
import { doMadvise, doMunmap, mmput } from './unmap.js';

/**
 * A user process: an mm and the system calls its threads make on it. Every method is a
 * task-callable generator (`yield* proc.munmap(addr, len)`) returning what the syscall returns
 * (an address, 0, or a negated errno); `load`/`store` are the CPU's memory accesses.
 *
 * The threads of a process are ordinary tasks: any task may act for any process, and the CPU it
 * runs on is the task's execution context.
 *
 * ## Example
 * ```ts
 * const proc = sim.get(MmService).createProcess('app');
 * sim.spawn('app', 0, function* () {
 *   const addr = yield* proc.mmap(0, 4096 * 4, Prot.READ | Prot.WRITE, Map_.PRIVATE | Map_.ANONYMOUS);
 *   yield* proc.store(addr, 42);
 *   const v = yield* proc.load(addr); // 42
 *   yield* proc.munmap(addr, 4096 * 4);
 * });
 * ```
 */
export class Process {
  /** The signal the last failed access raised, if any. */
  siginfo: SigInfo | null = null;

  /**
   * @param core the memory model.
   * @param pid process id.
   * @param name process name.
   * @param mm its address space.
   * @param onFork called with each child this process forks (the service registers it).
   */
  constructor(
    readonly core: MmCore,
    readonly pid: number,
    readonly name: string,
    readonly mm: MmStruct,
    private readonly onFork: (child: Process) => void = () => {},
  ) {}

  /** `mmap(addr, len, prot, flags, fd, offset)`; see `doMmap` for the errors. */
  *mmap(
    addr: number,
    len: number,
    prot: number,
    flags: number,
    file: SimFile | null = null,
    offset = 0,
  ): TaskGen<number> {
    this.sysEnter('mmap', { addr, len, prot, flags, file: file?.name ?? null, offset });
    return this.sysExit(
      'mmap',
      yield* doMmap(this.core, this.mm, addr, len, prot, flags, file, offset),
    );
  }

  /** `munmap(addr, len)`: 0, or -EINVAL for an unaligned address, zero length or a range outside the address space. */
  *munmap(addr: number, len: number): TaskGen<number> {
    this.sysEnter('munmap', { addr, len });
    return this.sysExit('munmap', yield* doMunmap(this.core, this.mm, addr, len));
  }

  /** `mprotect(addr, len, prot)`. */
  *mprotect(addr: number, len: number, prot: number): TaskGen<number> {
    this.sysEnter('mprotect', { addr, len, prot });
    return this.sysExit('mprotect', yield* doMprotect(this.core, this.mm, addr, len, prot));
  }

  /** `madvise(addr, len, advice)` (MADV_DONTNEED, MADV_FREE). */
  *madvise(addr: number, len: number, advice: number): TaskGen<number> {
    this.sysEnter('madvise', { addr, len, advice });
    return this.sysExit('madvise', yield* doMadvise(this.core, this.mm, addr, len, advice));
  }

  /** `mremap(old, oldLen, newLen, flags, newAddr)`: the new address or a negated errno. */
  *mremap(
    oldAddr: number,
    oldLen: number,
    newLen: number,
    flags: number,
    newAddr = 0,
  ): TaskGen<number> {
    this.sysEnter('mremap', { oldAddr, oldLen, newLen, flags, newAddr });
    return this.sysExit(
      'mremap',
      yield* doMremap(this.core, this.mm, oldAddr, oldLen, newLen, flags, newAddr),
    );
  }

  /** `brk(addr)`: the new break, or the old one if refused. */
  *brk(addr: number): TaskGen<number> {
    this.sysEnter('brk', { addr });
    return this.sysExit('brk', yield* doBrk(this.core, this.mm, addr));
  }

  /** `fork()`: the child process, or a negated errno (-ENOMEM). */
  *fork(childName: string): TaskGen<Process | number> {
    this.sysEnter('fork', { child: childName });
    const child = yield* dupMmap(this.core, this.mm, childName);
    if (typeof child === 'number') return this.sysExit('fork', child);
    const p = new Process(this.core, child.id, childName, child, this.onFork);
    this.onFork(p);
    this.sysExit('fork', child.id);
    return p;
  }

  /** The last thread exits: drops the mm's user reference (`mmput`), tearing it down if it was the last. */
  *exit(): TaskGen<void> {
    this.sysEnter('exit_group', {});
    yield* mmput(this.core, this.mm);
    this.sysExit('exit_group', 0);
  }

  /** Logs a system call's entry (`mm.syscall.enter`), only when someone wants it. */
  private sysEnter(name: string, args: { [arg: string]: number | string | null }): void {
    const bus = this.core.kernel.bus;
    if (!bus.wants('mm.syscall.enter')) return;
    for (const k of Object.keys(args)) {
      const v = args[k];
      if (typeof v === 'number' && !Number.isFinite(v)) args[k] = String(v);
    }
    bus.emit('mm.syscall.enter', { mm: this.mm.id, name, args });
  }

  /** Logs a system call's return (`mm.syscall.exit`) and passes `ret` through. */
  private sysExit(name: string, ret: number): number {
    const bus = this.core.kernel.bus;
    if (bus.wants('mm.syscall.exit'))
      bus.emit('mm.syscall.exit', {
        mm: this.mm.id,
        name,
        ret: Number.isFinite(ret) ? ret : -Errno.EINVAL,
      });
    return ret;
  }

  /**
   * A CPU load of the 32-bit word at `va`: the value, or -EFAULT with {@link Process.siginfo} set.
   * @throws RangeError naming `va` when it is not an address (NaN, not an integer, negative, at
   *   or past 2^64), before anything is touched (no lock is taken).
   */
  *load(va: number): TaskGen<number> {
    checkAddress('Process.load', va);
    const r = yield* cpuAccess(this.core, this.mm, va, false, 0);
    return this.result(r);
  }

  /**
   * A CPU store of a 32-bit `value` at `va`: 0, or -EFAULT with {@link Process.siginfo} set.
   * @throws RangeError naming `va` or `value` when `va` is not an address (see
   *   {@link Process.load}) or `value` is not an integer in [-2^31, 2^32), before anything is
   *   touched.
   */
  *store(va: number, value: number): TaskGen<number> {
    checkAddress('Process.store', va);
    if (!Number.isInteger(value) || value < -(2 ** 31) || value >= 2 ** 32) {
      throw new RangeError(
        `Process.store: "value" must be a 32-bit integer in [-2^31, 2^32) (got ${String(value)})`,
      );
    }
    const r = yield* cpuAccess(this.core, this.mm, va, true, value);
    return typeof r === 'number' ? 0 : this.result(r);
  }

  private result(r: number | SigInfo): number {
    if (typeof r === 'number') return r;
    this.siginfo = r;
    return -Errno.EFAULT;
  }
}

/** Refuses a value that is no user address at all (an address past TASK_SIZE faults instead). */
function checkAddress(where: string, va: number): void {
  if (typeof va !== 'number' || !Number.isInteger(va) || va < 0 || va >= 2 ** 64) {
    throw new RangeError(
      `${where}: "va" must be an integer address in [0, 2^64) (got ${typeof va === 'number' ? String(va) : typeof va})`,
    );
  }
}
