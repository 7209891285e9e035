/**
 * The workload interpreter: runs a scenario file's operations (simulated syscalls, CPU and guest
 * accesses, RDMA work requests, loops, spawns) as task generators against the plugins' public
 * services (`Process`, `KvmService`/`Vm`/`Vcpu`, `RdmaService`/`RdmaDevice`/`QueuePair`). Its
 * own file because it is the meaning of the operation vocabulary `schema.ts` defines.
 */
import { errnoName } from '@mmnsim/core';
import type { Simulation, Task, TaskGen } from '@mmnsim/core';
import { KvmService } from '@mmnsim/drivers-kvm';
import type { GuestCpu, Vm } from '@mmnsim/drivers-kvm';
import { IbAccess } from '@mmnsim/drivers-rdma';
import type { MemoryRegion, QueuePair, RdmaDevice } from '@mmnsim/drivers-rdma';
import {
  Madv,
  Map_,
  mmget,
  MmService,
  Mremap,
  PAGE_SIZE,
  Prot,
  pteMapsPage,
  ptePfn,
} from '@mmnsim/mm';
import type { Process, SimFile } from '@mmnsim/mm';
import { evalExpr, UnboundVariableError } from './expr.js';
import type { OpValue } from './schema.js';

/** A scenario's operation failed in a way that is the scenario's fault (exit status 2). */
export class ScenarioRunError extends Error {
  /** Always `'ScenarioRunError'`. */
  override readonly name = 'ScenarioRunError';

  /**
   * @param field the operation's YAML path (`tasks.0.do.3.munmap`).
   * @param detail what went wrong.
   */
  constructor(
    readonly field: string,
    readonly detail: string,
  ) {
    super(`${field}: ${detail}`);
  }
}

/** The shared state of one run of a compiled scenario. */
export interface World {
  /** The simulation. */
  readonly sim: Simulation;
  /** Variables bound so far. */
  readonly vars: Map<string, number>;
  /** Processes by name. */
  readonly procs: Map<string, Process>;
  /** Files by name. */
  readonly files: Map<string, SimFile>;
  /** VMs by name. */
  readonly vms: Map<string, Vm>;
  /** RDMA devices by name. */
  readonly devices: Map<string, RdmaDevice>;
  /** One queue pair per RDMA device. */
  readonly qps: Map<RdmaDevice, QueuePair>;
  /** Memory regions by name. */
  readonly mrs: Map<string, MemoryRegion>;
  /** Tasks by name. */
  readonly tasks: Map<string, Task>;
}

/** What a running task carries: its process (if any) and, in a vCPU task, the guest CPU. */
export interface TaskContext {
  /** The process it acts for. */
  proc: Process | undefined;
  /** The guest CPU of a vCPU task. */
  readonly guest?: GuestCpu;
}

const PROT: Record<string, number> = { read: Prot.READ, write: Prot.WRITE, exec: Prot.EXEC };
const MAP: Record<string, number> = {
  shared: Map_.SHARED,
  private: Map_.PRIVATE,
  shared_validate: Map_.SHARED_VALIDATE,
  fixed: Map_.FIXED,
  anonymous: Map_.ANONYMOUS,
  noreserve: Map_.NORESERVE,
  populate: Map_.POPULATE,
  fixed_noreplace: Map_.FIXED_NOREPLACE,
};
const MADV: Record<string, number> = { dontneed: Madv.DONTNEED, free: Madv.FREE };
const MREMAP: Record<string, number> = {
  maymove: Mremap.MAYMOVE,
  fixed: Mremap.FIXED,
  dontunmap: Mremap.DONTUNMAP,
};
const ACCESS: Record<string, number> = {
  local_write: IbAccess.LOCAL_WRITE,
  remote_write: IbAccess.REMOTE_WRITE,
  remote_read: IbAccess.REMOTE_READ,
  remote_atomic: IbAccess.REMOTE_ATOMIC,
  mw_bind: IbAccess.MW_BIND,
};

/** OR of the named bits. */
export function bits(names: readonly string[], table: Readonly<Record<string, number>>): number {
  let b = 0;
  for (const n of names) b |= table[n]!;
  return b;
}
/** `PROT_*` bits of names. */
export const protBits = (names: readonly string[]): number => bits(names, PROT);
/** `MAP_*` bits of names. */
export const mapBits = (names: readonly string[]): number => bits(names, MAP);
/** `IB_ACCESS_*` bits of names. */
export const accessBits = (names: readonly string[]): number => bits(names, ACCESS);

type Args = Record<string, unknown>;

/** Runs `ops` (at YAML path `path`) in the calling task. */
export function* runOps(
  w: World,
  t: TaskContext,
  ops: readonly OpValue[],
  path: string,
): TaskGen<void> {
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    const name = Object.keys(op)[0]!;
    yield* runOp(w, t, name, op[name] as Args, `${path}.${i}.${name}`);
  }
}

function* runOp(w: World, t: TaskContext, name: string, a: Args, here: string): TaskGen<void> {
  const ev = (e: unknown, field: string): number => {
    try {
      return evalExpr(e as number | string, w.vars);
    } catch (err) {
      if (err instanceof UnboundVariableError)
        throw new ScenarioRunError(
          `${here}.${field}`,
          `${err.message} when this task reaches it (is it bound by a task that has not run yet? add a "join")`,
        );
      throw err;
    }
  };
  const opt = (e: unknown, field: string, dflt: number): number =>
    e === undefined ? dflt : ev(e, field);
  const proc = (): Process => {
    const p = a.in !== undefined ? w.procs.get(a.in as string) : t.proc;
    if (p === undefined)
      throw new ScenarioRunError(
        here,
        a.in !== undefined
          ? `process "${a.in as string}" does not exist yet in this run`
          : 'the task has no process (give the task a "process" or the operation an "in")',
      );
    return p;
  };
  const bind = (v: number): void => {
    if (typeof a.as === 'string') w.vars.set(a.as, v);
  };
  const guest = (): GuestCpu => {
    if (t.guest === undefined)
      throw new ScenarioRunError(here, `${name} runs only in a vCPU task (a task with "vcpu")`);
    return t.guest;
  };
  const mr = (): MemoryRegion => {
    const m = w.mrs.get(a.mr as string);
    if (m === undefined)
      throw new ScenarioRunError(
        `${here}.mr`,
        `memory region "${String(a.mr)}" is not registered (yet) in this run`,
      );
    return m;
  };
  const sched = w.sim.scheduler;
  switch (name) {
    case 'mmap': {
      const file = a.file !== undefined ? w.files.get(a.file as string)! : null;
      bind(
        yield* proc().mmap(
          opt(a.addr, 'addr', 0),
          ev(a.len, 'len'),
          protBits(a.prot as string[]),
          mapBits(a.flags as string[]),
          file,
          opt(a.offset, 'offset', 0),
        ),
      );
      return;
    }
    case 'munmap':
      yield* proc().munmap(ev(a.addr, 'addr'), ev(a.len, 'len'));
      return;
    case 'mprotect':
      yield* proc().mprotect(ev(a.addr, 'addr'), ev(a.len, 'len'), protBits(a.prot as string[]));
      return;
    case 'madvise':
      yield* proc().madvise(ev(a.addr, 'addr'), ev(a.len, 'len'), MADV[a.advice as string]!);
      return;
    case 'mremap':
      bind(
        yield* proc().mremap(
          ev(a.addr, 'addr'),
          ev(a.oldLen, 'oldLen'),
          ev(a.newLen, 'newLen'),
          bits(a.flags as string[], MREMAP),
          opt(a.newAddr, 'newAddr', 0),
        ),
      );
      return;
    case 'brk':
      bind(yield* proc().brk(ev(a.addr, 'addr')));
      return;
    case 'fork': {
      const child = yield* proc().fork(a.child as string);
      if (typeof child === 'number')
        throw new ScenarioRunError(here, `fork failed with ${errnoName(child)}`);
      w.procs.set(a.child as string, child);
      return;
    }
    case 'exec': {
      // execve: a new mm for the task; the old one loses this task's mm_users reference.
      const old = t.proc;
      t.proc = w.sim.get(MmService).createProcess(a.process as string);
      w.procs.set(a.process as string, t.proc);
      if (a.brk !== undefined) {
        t.proc.mm.brkStart = ev(a.brk, 'brk');
        t.proc.mm.brk = t.proc.mm.brkStart;
      }
      if (old !== undefined) yield* old.exit();
      return;
    }
    case 'exit': {
      yield* proc().exit();
      if (a.in === undefined) t.proc = undefined;
      return;
    }
    case 'load':
      bind(yield* proc().load(ev(a.addr, 'addr')));
      return;
    case 'store':
      yield* proc().store(ev(a.addr, 'addr'), ev(a.value, 'value'));
      return;
    case 'touch': {
      const p = proc();
      const start = ev(a.addr, 'addr');
      const len = ev(a.len, 'len');
      const value = opt(a.value, 'value', 1);
      for (let va = start; va < start + len; va += PAGE_SIZE) {
        if (a.write === false) yield* p.load(va);
        else yield* p.store(va, value);
      }
      return;
    }
    case 'reclaim':
      yield* w.sim.get(MmService).reclaim(a.pages as number);
      return;
    case 'migrate': {
      const p = proc();
      const svc = w.sim.get(MmService);
      const pte = svc.core.pt.pte(p.mm, ev(a.addr, 'addr'));
      if (!p.mm.exited && pteMapsPage(pte)) yield* svc.migrate(ptePfn(pte));
      return;
    }
    case 'oom_reap': {
      const p = w.procs.get(a.process as string);
      if (p === undefined)
        throw new ScenarioRunError(
          `${here}.process`,
          `process "${String(a.process)}" does not exist yet in this run`,
        );
      yield* w.sim.get(MmService).oomReap(p);
      return;
    }
    case 'preempt':
      yield* sched.preempt();
      return;
    case 'join': {
      const task = w.tasks.get(a.task as string);
      if (task === undefined)
        throw new ScenarioRunError(
          `${here}.task`,
          `task "${String(a.task)}" has not been started yet in this run`,
        );
      yield* sched.join(task);
      return;
    }
    case 'guest_load':
      bind(yield* guest().load(ev(a.gpa, 'gpa')));
      return;
    case 'guest_store':
      yield* guest().store(ev(a.gpa, 'gpa'), ev(a.value, 'value'));
      return;
    case 'guest_pause':
      yield* guest().pause();
      return;
    case 'memslot': {
      const vm = w.vms.get(a.vm as string);
      if (vm === undefined)
        throw new ScenarioRunError(`${here}.vm`, `VM "${String(a.vm)}" does not exist in this run`);
      const r = yield* vm.setMemslot({
        slot: a.slot as number,
        gpa: ev(a.gpa, 'gpa'),
        size: ev(a.size, 'size'),
        hva: ev(a.hva, 'hva'),
      });
      if (r !== 0)
        throw new ScenarioRunError(here, `KVM_SET_USER_MEMORY_REGION failed with ${errnoName(r)}`);
      return;
    }
    case 'vm_destroy': {
      const vm = w.vms.get(a.vm as string);
      if (vm !== undefined) yield* vm.destroy();
      w.vms.delete(a.vm as string);
      return;
    }
    case 'vm_create': {
      let kvm: KvmService;
      try {
        kvm = w.sim.get(KvmService);
      } catch {
        throw new ScenarioRunError(here, 'vm_create needs the @mmnsim/drivers-kvm plugin');
      }
      if (w.vms.has(a.vm as string))
        throw new ScenarioRunError(`${here}.vm`, `VM "${String(a.vm)}" already exists in this run`);
      const vm = yield* kvm.createVm(proc(), { name: a.vm as string, vcpus: a.vcpus as number });
      w.vms.set(a.vm as string, vm);
      return;
    }
    case 'mr_register':
      yield* registerMr(w, proc(), a, here, ev);
      return;
    case 'mr_deregister': {
      const m = mr();
      yield* m.device.deregisterMr(m);
      w.mrs.delete(a.mr as string);
      return;
    }
    case 'rdma_write':
    case 'rdma_read': {
      const m = mr();
      const qp = w.qps.get(m.device)!;
      const addr = m.start + ev(a.offset, 'offset');
      const wr =
        name === 'rdma_write'
          ? { opcode: 'RDMA_WRITE' as const, remote: { mr: m, addr }, data: a.data as number[] }
          : { opcode: 'RDMA_READ' as const, remote: { mr: m, addr }, length: a.length as number };
      if (a.wait === false) {
        qp.postSend(wr);
        return;
      }
      const wc = yield* qp.execute(wr);
      if (wc.status !== 'SUCCESS') qp.reset(); // the page was gone: the QP left the error state
      return;
    }
    case 'repeat': {
      const v = a.var as string | undefined;
      for (let k = 0; k < (a.count as number); k++) {
        if (v !== undefined) w.vars.set(v, k);
        yield* runOps(w, t, a.do as OpValue[], `${here}.do`);
      }
      return;
    }
    case 'spawn': {
      const p = a.process !== undefined ? w.procs.get(a.process as string) : t.proc;
      if (a.process !== undefined && p === undefined)
        throw new ScenarioRunError(
          `${here}.process`,
          `process "${a.process as string}" does not exist yet in this run`,
        );
      if (a.thread === true && p !== undefined) mmget(p.mm);
      const ctx: TaskContext = { proc: p };
      const body = a.do as OpValue[];
      const vc = a.vcpu as { vm: string; index: number } | undefined;
      let task: Task;
      if (vc !== undefined) {
        const vm = w.vms.get(vc.vm);
        if (vm === undefined)
          throw new ScenarioRunError(`${here}.vcpu.vm`, `VM "${vc.vm}" does not exist in this run`);
        if (vc.index >= vm.vcpus.length)
          throw new ScenarioRunError(
            `${here}.vcpu.index`,
            `VM "${vc.vm}" has ${vm.vcpus.length} vCPUs (0..${vm.vcpus.length - 1})`,
          );
        task = vm
          .vcpu(vc.index)
          .run((cpu) => runOps(w, { proc: p, guest: cpu }, body, `${here}.do`), a.name as string);
      } else {
        task = w.sim.spawn(a.name as string, a.cpu as number | string, () =>
          runOps(w, ctx, body, `${here}.do`),
        );
      }
      w.tasks.set(a.name as string, task);
      return;
    }
    default:
      throw new ScenarioRunError(here, `unknown operation "${name}"`);
  }
}

/** `ibv_reg_mr`: registers an ODP or pinned MR and records it under its name. */
export function* registerMr(
  w: World,
  p: Process,
  a: Args,
  here: string,
  ev: (e: unknown, field: string) => number,
): TaskGen<void> {
  const dev = w.devices.get(a.device as string);
  if (dev === undefined)
    throw new ScenarioRunError(
      `${here}.device`,
      `RDMA device "${String(a.device)}" does not exist`,
    );
  const access = accessBits(
    (a.access as string[] | undefined) ?? ['local_write', 'remote_write', 'remote_read'],
  );
  const r =
    a.odp === false
      ? yield* dev.registerPinnedMr(p, ev(a.addr, 'addr'), ev(a.len, 'len'), access)
      : yield* dev.registerOdpMr(p, ev(a.addr, 'addr'), ev(a.len, 'len'), access);
  if (typeof r === 'number')
    throw new ScenarioRunError(here, `ibv_reg_mr failed with ${errnoName(r)}`);
  w.mrs.set(a.name as string, r);
}
