/**
 * `--attach rdma|kvm`: puts a subscriber under a scenario's mapping history. Its own file because
 * it rewrites a validated scenario.
 *
 * - `rdma`: each top-level task and spawned task registers an ODP memory region over its first
 *   private anonymous writable mapping (as an RDMA application registers a buffer), posts an RDMA
 *   WRITE and READ to it without waiting (so the NIC's page faults race the program's later
 *   munmap/mprotect/madvise/mremap) and deregisters it before the task exits or execs.
 * - `kvm`: each such task creates a VM in its process right after its first private anonymous
 *   writable mapping (`vm_create`), installs a memslot over it (`memslot`, as a VMM backs guest
 *   RAM with anonymous memory), and only then spawns a vCPU task whose guest stores and loads
 *   fault the pages into the TDP MMU while the program's later mapping changes invalidate them
 *   through the VM's MMU notifier; the task waits for the vCPU (`join`, so every schedule runs
 *   the guest accesses) and destroys the VM (`vm_destroy`: the notifier is unregistered, the TDP
 *   tables freed) before it exits or execs.
 */
import type { OpValue, ScenarioFile } from './schema.js';

/** The subscribers `--attach` can add. */
export const ATTACH_KINDS = ['rdma', 'kvm'] as const;

/** One of {@link ATTACH_KINDS}. */
export type AttachKind = (typeof ATTACH_KINDS)[number];

/** Largest ODP region `--attach rdma` registers or memslot `--attach kvm` installs, in bytes (64 pages). */
export const ATTACH_MR_MAX = 64 * 4096;

/** Guest physical address of the memslot `--attach kvm` installs (1 MiB, as the KVM examples). */
export const ATTACH_GPA = 0x100000;

type Op = Record<string, Record<string, unknown>>;

/** What `attachToOps` inserts for one subscriber kind. */
interface Attacher {
  /** The operations after the first matching mmap (`size` is the attached length). */
  after(addr: string, size: number): OpValue[];
  /** The teardown before an exit or exec, and at the end of the task. */
  teardown(): OpValue[];
}

function rdmaAttacher(name: string): Attacher {
  return {
    after: (addr, size) => [
      {
        mr_register: {
          device: 'mlx5_0',
          addr,
          len: size,
          access: ['local_write', 'remote_write', 'remote_read'],
          odp: true,
          name,
        },
      },
      { rdma_write: { mr: name, offset: 8, data: [1, 2], wait: false } },
      { rdma_read: { mr: name, offset: Math.max(0, size - 4096), length: 8, wait: false } },
    ],
    teardown: () => [{ mr_deregister: { mr: name } }],
  };
}

function kvmAttacher(vm: string, vcpu: string): Attacher {
  return {
    after: (addr, size) => {
      const last = ATTACH_GPA + size - 4096;
      return [
        { vm_create: { vm, vcpus: 1 } },
        { memslot: { vm, slot: 0, gpa: ATTACH_GPA, size, hva: addr } },
        {
          spawn: {
            name: vcpu,
            vcpu: { vm, index: 0 },
            thread: false,
            do: [
              { guest_store: { gpa: ATTACH_GPA + 8, value: 1 } },
              { guest_load: { gpa: last } },
              { guest_store: { gpa: last + 8, value: 2 } },
              { guest_load: { gpa: ATTACH_GPA } },
            ],
          },
        },
      ];
    },
    teardown: () => [{ join: { task: vcpu } }, { vm_destroy: { vm } }],
  };
}

function attachToOps(ops: OpValue[], next: () => Attacher): void {
  let cur: Attacher | undefined;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as Op;
    const [kind, a] = Object.entries(op)[0]!;
    if (kind === 'spawn') attachToOps(a.do as OpValue[], next);
    if (kind === 'repeat') continue;
    if (cur === undefined && kind === 'mmap') {
      const flags = a.flags as string[];
      const prot = a.prot as string[];
      const len = a.len;
      if (
        flags.includes('anonymous') &&
        flags.includes('private') &&
        prot.includes('write') &&
        typeof len === 'number' &&
        typeof a.addr === 'string' &&
        /^0x/.test(a.addr) &&
        a.in === undefined
      ) {
        cur = next();
        const size = Math.min(Math.ceil(len / 4096) * 4096, ATTACH_MR_MAX);
        const added = cur.after(a.addr, size);
        ops.splice(i + 1, 0, ...added);
        i += added.length;
      }
    } else if (cur !== undefined && (kind === 'exit' || kind === 'exec') && a.in === undefined) {
      const down = cur.teardown();
      ops.splice(i, 0, ...down);
      i += down.length;
      cur = undefined;
    }
  }
  if (cur !== undefined) ops.push(...cur.teardown());
}

/**
 * Returns `sf` with the subscriber `kind` attached (the input is not changed).
 */
export function attachSubscriber(sf: ScenarioFile, kind: AttachKind): ScenarioFile {
  const out = structuredClone(sf);
  if (kind === 'rdma') {
    if (!out.plugins.some((p) => p.use === '@mmnsim/drivers-rdma'))
      out.plugins.push({ use: '@mmnsim/drivers-rdma' });
    if (!out.devices.includes('nic0')) out.devices.push('nic0');
    const devices = out.rdma?.devices ?? [];
    if (!devices.some((d) => d.name === 'mlx5_0'))
      devices.push({ name: 'mlx5_0', engine: 'nic0', bugs: [] });
    out.rdma = { devices };
    let n = 0;
    for (const t of out.tasks) attachToOps(t.do, () => rdmaAttacher(`attached_mr${n++}`));
  } else {
    if (!out.plugins.some((p) => p.use === '@mmnsim/drivers-kvm'))
      out.plugins.push({ use: '@mmnsim/drivers-kvm' });
    let n = 0;
    for (const t of out.tasks)
      attachToOps(t.do, () => {
        const k = n++;
        return kvmAttacher(`attached_vm${k}`, `attached_vcpu${k}`);
      });
  }
  return out;
}
