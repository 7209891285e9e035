import { ConfigError, Errno, WaitQueue } from '@mmnsim/core';
import type { SchedOp, Task, TaskGen } from '@mmnsim/core';
import { PAGE_SIZE } from '@mmnsim/mm';
import { isAccessAllowed, isWritable, Spte, spteFlags, sptePfn, spteWithFlags } from './spte.js';
import { SPTES_PER_TABLE } from './tdp-mmu.js';
import type { Vm } from './vm.js';

/**
 * `vcpu->mode`: where a vCPU is, as the remote TLB flush sees it.
 * - `OUTSIDE_GUEST_MODE`: in the host (handling an exit, halted, not running); needs no IPI —
 *   it services its requests before it enters the guest again;
 * - `IN_GUEST_MODE`: running guest code; a request needs an IPI to make it exit;
 * - `EXITING_GUEST_MODE`: a sender has asked it to exit (it may still be running guest code
 *   until the IPI lands);
 * - `READING_SHADOW_PAGE_TABLES`: walking SPTEs without `mmu_lock` (the fast page fault path),
 *   with interrupts off: a WAIT request must wait for it, so the sender IPIs it too.
 *
 * @see enum kvm_vcpu_mode
 */
export const VcpuMode = {
  /** In the host. */
  OUTSIDE_GUEST_MODE: 'OUTSIDE_GUEST_MODE',
  /** Running guest code. */
  IN_GUEST_MODE: 'IN_GUEST_MODE',
  /** Asked to exit. */
  EXITING_GUEST_MODE: 'EXITING_GUEST_MODE',
  /** In a lockless SPTE walk. */
  READING_SHADOW_PAGE_TABLES: 'READING_SHADOW_PAGE_TABLES',
} as const;

/** One of {@link VcpuMode}. */
export type VcpuMode = (typeof VcpuMode)[keyof typeof VcpuMode];

/**
 * Bits of `vcpu->requests` modelled here.
 *
 * @see KVM_REQ_TLB_FLUSH
 */
export const KvmRequest = {
  /** `KVM_REQ_TLB_FLUSH` (flags WAIT | NO_WAKEUP): flush the guest TLB before the next entry. */
  TLB_FLUSH: 0x1,
  /** `KVM_REQ_VM_DEAD`: the VM is being destroyed or is bugged; KVM_RUN returns -EIO. */
  VM_DEAD: 0x2,
} as const;

/**
 * One translation in a vCPU's guest TLB (the EPT-tagged TLB of the physical CPU it runs on):
 * what the hardware cached when it walked the SPTE.
 */
export interface GuestTlbEntry {
  /** Frame. */
  readonly pfn: number;
  /** The frame's generation when the SPTE was made. */
  readonly gen: number;
  /** Host address of the gfn (for the oracles). */
  readonly hva: number;
  /** Writes allowed. */
  readonly writable: boolean;
  /** The SPTE's dirty bit was set when this entry was filled (a write needs no walk). */
  readonly dirty: boolean;
}

/** Counters of one vCPU, for tests. */
export interface VcpuStats {
  /** Guest loads and stores completed. */
  accesses: number;
  /** Hardware walks that filled the TLB. */
  tlbFills: number;
  /** EPT violations (VM exits for a page fault). */
  eptViolations: number;
  /** VM exits because an IPI or kick arrived. */
  irqExits: number;
  /** Guest TLB flushes serviced. */
  tlbFlushes: number;
  /** Guest entries. */
  entries: number;
}

/**
 * What a guest program can do: its loads and stores go through the vCPU's guest TLB and the
 * VM's SPTEs to host frames, faulting (a VM exit) when no SPTE allows the access. Every
 * operation is one guest instruction — a scheduling point — and enters guest mode first if the
 * vCPU is not in it.
 *
 * Loads return the 32-bit word (≥ 0); both return a negated errno when KVM_RUN would return to
 * userspace instead: -EFAULT when the host page cannot be faulted in (no VMA, no permission, the
 * process exited) or the address is not backed by a memslot (an MMIO exit), -EIO when the VM
 * is dead.
 *
 * ## Example
 * ```ts
 * function* guest(cpu: GuestCpu) {
 *   yield* cpu.store(0x100000, 42);
 *   const v = yield* cpu.load(0x100000); // 42
 *   yield* cpu.halt();                   // until vcpu.interrupt()
 * }
 * ```
 */
export interface GuestCpu {
  /** The vCPU index. */
  readonly id: number;
  /** Loads the 32-bit word at guest physical `gpa`. */
  load(gpa: number): TaskGen<number>;
  /** Stores the 32-bit `value` at guest physical `gpa`; 0 or a negated errno. */
  store(gpa: number, value: number): TaskGen<number>;
  /** `HLT`: exits guest mode and blocks until an interrupt is injected; 0 or -EIO. */
  halt(): TaskGen<number>;
  /** A guest instruction that touches no memory (a scheduling point in guest mode). */
  pause(): TaskGen<number>;
}

/** A guest program: a generator function run by a vCPU task (`vcpu.run(program)`). */
export type GuestProgram<R = void> = (cpu: GuestCpu) => TaskGen<R>;

const PREEMPT: SchedOp = { kind: 'preempt' };
const ERR_EIO = -Errno.EIO;

/**
 * A virtual CPU (`struct kvm_vcpu`, x86 with EPT): it runs a guest program in a task on its
 * physical CPU, entering and leaving guest mode as KVM's `vcpu_enter_guest` does, with a guest
 * TLB filled by hardware walks of the SPTEs, the `mode` and `requests` the remote TLB flush
 * uses, and the halt/kick rules.
 *
 * Entry (`vcpu_enter_guest`): service requests (KVM_REQ_TLB_FLUSH flushes the guest TLB),
 * disable preemption and interrupts, publish IN_GUEST_MODE, drop `kvm->srcu`, then — after a
 * scheduling point standing for the full barrier — abort if a request arrived meanwhile;
 * otherwise run guest code with preemption off and interrupts on: an IPI that lands is a VM exit
 * at the next instruction boundary. Exits set OUTSIDE_GUEST_MODE and take `kvm->srcu` again.
 *
 * @see struct kvm_vcpu
 * @see vcpu_enter_guest
 */
export class Vcpu {
  /** `vcpu->mode`. */
  mode: VcpuMode = VcpuMode.OUTSIDE_GUEST_MODE;
  /** `vcpu->requests` ({@link KvmRequest} bits). */
  requests = 0;
  /** The guest TLB: guest frame → cached translation. */
  readonly tlb = new Map<number, GuestTlbEntry>();
  /** True while guest code runs (between a completed entry and the next exit). */
  executing = false;
  /** An IPI or kick landed while in guest mode: exit at the next instruction. */
  irqExit = false;
  /** True while blocked in HLT. */
  halted = false;
  /** An interrupt was injected and not yet taken by a halted guest. */
  interruptPending = false;
  /** The task running KVM_RUN, or null. */
  task: Task | null = null;
  /** Counters. */
  readonly stats: VcpuStats = {
    accesses: 0,
    tlbFills: 0,
    eptViolations: 0,
    irqExits: 0,
    tlbFlushes: 0,
    entries: 0,
  };
  /** @internal The `kvm->srcu` index held outside guest mode, or -1. */
  srcuIdx = -1;
  private readonly haltWq: WaitQueue;
  private readonly guest: GuestCpu;

  /**
   * Created by its VM.
   * @param vm the VM.
   * @param id vCPU index.
   * @param cpu the physical CPU it runs on.
   */
  constructor(
    readonly vm: Vm,
    readonly id: number,
    readonly cpu: number,
  ) {
    this.haltWq = new WaitQueue(vm.kernel.scheduler, `${vm.label}/vcpu${id} halt`);
    this.guest = {
      id,
      load: (gpa) => this.access(gpa, false, 0),
      store: (gpa, value) => this.access(gpa, true, value),
      halt: () => this.halt(),
      pause: () => this.pause(),
    };
  }

  /**
   * Runs `program` in a new task on this vCPU's CPU (the `KVM_RUN` ioctl, for the length of the
   * program): the task holds `kvm->srcu` whenever it is outside guest mode, enters guest mode at
   * the program's first instruction and leaves it when the program returns. Join the returned
   * task to wait for it (`yield* sim.scheduler.join(task)`).
   *
   * @param program the guest program.
   * @param name the task's name (default `<vm>/vcpu<i>`).
   * @returns the task.
   * @throws ConfigError when this vCPU already runs a program or the VM was destroyed.
   * @see kvm_arch_vcpu_ioctl_run
   */
  run<R>(program: GuestProgram<R>, name?: string): Task {
    if (this.task !== null)
      throw new ConfigError(`${this.vm.label}/vcpu${this.id} already runs a guest program`);
    if (this.vm.destroyed) throw new ConfigError(`${this.vm.label} was destroyed`);
    const vm = this.vm;
    const task = vm.kernel.scheduler.spawn(name ?? `${vm.label}/vcpu${this.id}`, this.cpu, () =>
      this.body(program),
    );
    this.task = task;
    return task;
  }

  private *body<R>(program: GuestProgram<R>): TaskGen<R> {
    const vm = this.vm;
    this.srcuIdx = vm.srcu.readLock();
    const r = yield* program(this.guest);
    if (this.executing) this.exitGuest('done');
    vm.srcu.readUnlock(this.srcuIdx);
    this.srcuIdx = -1;
    this.task = null;
    return r;
  }

  /**
   * True if the guest can still use its TLB entries before flushing them: no flush request is
   * pending, or it is running guest code and no IPI has reached it yet.
   */
  tlbLive(): boolean {
    return (this.requests & KvmRequest.TLB_FLUSH) === 0 || (this.executing && !this.irqExit);
  }

  /**
   * Injects an interrupt and kicks the vCPU (`kvm_vcpu_kick`): a halted vCPU wakes up, one in
   * guest mode gets an IPI (not waited for) and exits. Any context; never sleeps.
   *
   * @see kvm_vcpu_kick
   */
  interrupt(): void {
    this.interruptPending = true;
    this.kick();
  }

  /** @internal `kvm_vcpu_kick` without an interrupt (VM death). */
  kick(): void {
    if (this.halted) {
      this.haltWq.wakeAll();
      return;
    }
    if (this.mode === VcpuMode.IN_GUEST_MODE) {
      this.mode = VcpuMode.EXITING_GUEST_MODE;
      this.vm.spawnIpis([this.cpu], null);
    }
  }

  // --- guest mode -------------------------------------------------------------------------------

  /** `vcpu_enter_guest` up to VM entry; 0, or -EIO when the VM is dead. */
  private *enterGuest(): TaskGen<number> {
    const vm = this.vm;
    const k = vm.kernel;
    for (;;) {
      if (vm.dead || (this.requests & KvmRequest.VM_DEAD) !== 0) return ERR_EIO;
      if ((this.requests & KvmRequest.TLB_FLUSH) !== 0) {
        this.requests &= ~KvmRequest.TLB_FLUSH;
        this.flushTlb();
      }
      this.irqExit = false;
      k.preemptDisable('vcpu in guest mode');
      k.localIrqSave();
      this.mode = VcpuMode.IN_GUEST_MODE;
      vm.srcu.readUnlock(this.srcuIdx);
      this.srcuIdx = -1;
      // smp_mb: a sender that sets a request now either sees IN_GUEST_MODE (and IPIs us; the
      // IPI lands once interrupts are on again) or its request is seen just below.
      yield PREEMPT;
      if (this.requests !== 0 || vm.dead) {
        this.mode = VcpuMode.OUTSIDE_GUEST_MODE;
        k.localIrqRestore();
        k.preemptEnable();
        this.srcuIdx = vm.srcu.readLock();
        continue;
      }
      this.executing = true;
      k.localIrqRestore(); // external interrupts now cause VM exits
      this.stats.entries++;
      const bus = k.bus;
      if (bus.wants('kvm.vcpu.enter')) bus.emit('kvm.vcpu.enter', { vm: vm.id, vcpu: this.id });
      return 0;
    }
  }

  /** A VM exit: OUTSIDE_GUEST_MODE, preemption on, `kvm->srcu` taken again. */
  private exitGuest(reason: string): void {
    const vm = this.vm;
    this.executing = false;
    this.mode = VcpuMode.OUTSIDE_GUEST_MODE;
    if (this.irqExit) this.stats.irqExits++;
    this.irqExit = false;
    vm.kernel.preemptEnable();
    this.srcuIdx = vm.srcu.readLock();
    const bus = vm.kernel.bus;
    if (bus.wants('kvm.vcpu.exit')) bus.emit('kvm.vcpu.exit', { vm: vm.id, vcpu: this.id, reason });
  }

  /** `kvm_vcpu_flush_tlb_all`: drop every guest TLB entry. */
  private flushTlb(): void {
    const n = this.tlb.size;
    this.tlb.clear();
    this.stats.tlbFlushes++;
    const vm = this.vm;
    const bus = vm.kernel.bus;
    if (bus.wants('kvm.tlb.flush'))
      bus.emit('kvm.tlb.flush', { vm: vm.id, vcpu: this.id, entries: n });
  }

  /**
   * One guest load or store. Hit path: the guest TLB (a write needs an entry whose dirty bit is
   * set); otherwise the hardware walks the SPTE, setting its accessed bit (and dirty bit for a
   * write) when A/D bits are enabled, and fills the TLB; otherwise an EPT violation exits to
   * KVM's page fault handler and the access is retried.
   */
  private *access(gpa: number, write: boolean, value: number): TaskGen<number> {
    const vm = this.vm;
    if (!Number.isInteger(gpa) || gpa < 0) return -Errno.EFAULT;
    const gfn = Math.floor(gpa / PAGE_SIZE);
    const word = Math.floor((gpa % PAGE_SIZE) / 4);
    for (;;) {
      if (!this.executing) {
        const e = yield* this.enterGuest();
        if (e !== 0) return e;
      }
      yield PREEMPT; // one guest instruction
      if (this.irqExit) {
        this.exitGuest('external-interrupt');
        continue;
      }
      let e = this.tlb.get(gfn);
      if (e === undefined || (write && !e.dirty)) e = this.walk(gfn, write);
      if (e !== undefined) {
        this.stats.accesses++;
        vm.events.access(vm.mm, e.hva, e.pfn, e.gen, write);
        if (write) {
          vm.phys.write(e.pfn, word, value);
          return 0;
        }
        return vm.phys.read(e.pfn, word);
      }
      this.stats.eptViolations++;
      this.exitGuest('ept-violation');
      const r = yield* vm.pageFault(this, gpa, write);
      if (r < 0) return r;
    }
  }

  /**
   * The hardware walk of `gfn`'s SPTE for an access: the TLB entry it fills, or undefined for an
   * EPT violation (and the stale entry, if any, is dropped).
   */
  private walk(gfn: number, write: boolean): GuestTlbEntry | undefined {
    const vm = this.vm;
    const t = vm.tdp.tables.get(Math.floor(gfn / SPTES_PER_TABLE));
    const i = gfn % SPTES_PER_TABLE;
    let spte = t === undefined ? 0 : t.sptes[i]!;
    if (t === undefined || !isAccessAllowed(spte, write)) {
      this.tlb.delete(gfn);
      return undefined;
    }
    let setAccessed = false;
    if (vm.adBits) {
      const f = spteFlags(spte);
      const want = f | Spte.A | (write ? Spte.D : 0);
      setAccessed = (f & Spte.A) === 0;
      if (want !== f) {
        spte = spteWithFlags(spte, want);
        t.sptes[i] = spte;
      }
    }
    const writable = isWritable(spte);
    const e: GuestTlbEntry = {
      pfn: sptePfn(spte),
      gen: t.gens[i]!,
      hva: t.hvas[i]!,
      writable,
      dirty: vm.adBits ? (spteFlags(spte) & Spte.D) !== 0 : writable,
    };
    this.tlb.set(gfn, e);
    this.stats.tlbFills++;
    const bus = vm.kernel.bus;
    if (bus.wants('kvm.tlb.fill'))
      bus.emit('kvm.tlb.fill', { vm: vm.id, vcpu: this.id, gfn, pfn: e.pfn, setAccessed });
    return e;
  }

  /** `HLT`: exit, then block (without `kvm->srcu`) until an interrupt is injected. */
  private *halt(): TaskGen<number> {
    const vm = this.vm;
    if (vm.dead) return ERR_EIO;
    if (this.executing) this.exitGuest('hlt');
    vm.srcu.readUnlock(this.srcuIdx);
    this.srcuIdx = -1;
    this.halted = true;
    const bus = vm.kernel.bus;
    if (bus.wants('kvm.vcpu.halt'))
      bus.emit('kvm.vcpu.halt', { vm: vm.id, vcpu: this.id, blocked: true });
    // kvm_vcpu_check_block: an interrupt (or death) wakes it; requests with NO_WAKEUP do not.
    yield* this.haltWq.waitEvent(
      () => this.interruptPending || vm.dead || (this.requests & KvmRequest.VM_DEAD) !== 0,
    );
    this.halted = false;
    if (bus.wants('kvm.vcpu.halt'))
      bus.emit('kvm.vcpu.halt', { vm: vm.id, vcpu: this.id, blocked: false });
    this.srcuIdx = vm.srcu.readLock();
    this.interruptPending = false;
    return vm.dead ? ERR_EIO : 0;
  }

  /** A guest instruction without a memory access. */
  private *pause(): TaskGen<number> {
    for (;;) {
      if (!this.executing) {
        const e = yield* this.enterGuest();
        if (e !== 0) return e;
      }
      yield PREEMPT;
      if (this.irqExit) {
        this.exitGuest('external-interrupt');
        continue;
      }
      return 0;
    }
  }
}
