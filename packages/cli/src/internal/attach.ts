/**
 * `--attach rdma`: puts a subscriber under a scenario's mapping history. Each top-level task and
 * spawned task registers an ODP memory region over its first private anonymous writable mapping
 * (as an RDMA application registers a buffer), posts an RDMA WRITE and READ to it without waiting
 * (so the NIC's page faults race the program's later munmap/mprotect/madvise/mremap) and
 * deregisters it before the task exits. Its own file because it rewrites a validated scenario.
 */
import type { OpValue, ScenarioFile } from './schema.js';

/** The subscribers `--attach` can add. */
export const ATTACH_KINDS = ['rdma'] as const;

/** One of {@link ATTACH_KINDS}. */
export type AttachKind = (typeof ATTACH_KINDS)[number];

/** Largest ODP region `--attach rdma` registers, in bytes (64 pages). */
export const ATTACH_MR_MAX = 64 * 4096;

type Op = Record<string, Record<string, unknown>>;

function attachToOps(ops: OpValue[], mr: () => string): void {
  let name: string | undefined;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as Op;
    const [kind, a] = Object.entries(op)[0]!;
    if (kind === 'spawn') attachToOps(a.do as OpValue[], mr);
    if (kind === 'repeat') continue;
    if (name === undefined && kind === 'mmap') {
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
        name = mr();
        const size = Math.min(Math.ceil(len / 4096) * 4096, ATTACH_MR_MAX);
        ops.splice(
          i + 1,
          0,
          {
            mr_register: {
              device: 'mlx5_0',
              addr: a.addr,
              len: size,
              access: ['local_write', 'remote_write', 'remote_read'],
              odp: true,
              name,
            },
          },
          { rdma_write: { mr: name, offset: 8, data: [1, 2], wait: false } },
          { rdma_read: { mr: name, offset: Math.max(0, size - 4096), length: 8, wait: false } },
        );
        i += 3;
      }
    } else if (name !== undefined && (kind === 'exit' || kind === 'exec') && a.in === undefined) {
      ops.splice(i, 0, { mr_deregister: { mr: name } });
      i++;
      name = undefined;
    }
  }
  if (name !== undefined) ops.push({ mr_deregister: { mr: name } });
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
    for (const t of out.tasks) attachToOps(t.do, () => `attached_mr${n++}`);
  }
  return out;
}
