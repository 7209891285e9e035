import { serviceId } from '@mmnsim/core';
import { z } from 'zod';
import { HMM_RANGE_DEFAULT_TIMEOUT_NS, RDMA_BUGS } from './constants.js';
import type { RdmaBug } from './constants.js';

/** Schema of the `rdma` plugin's options; unknown keys are rejected. */
export const RdmaOptionsSchema = z.strictObject({
  /** RLIMIT_MEMLOCK for pinned registrations, in pages (default 16384 = 64 MiB). */
  memlockLimitPages: z.number().int().min(0).default(16384),
  /** The registering process has CAP_IPC_LOCK: pinned registrations ignore RLIMIT_MEMLOCK (default false). */
  capIpcLock: z.boolean().default(false),
  /** How long an ODP fault keeps retrying `hmm_range_fault` on -EBUSY, in ns (default 1 s, `HMM_RANGE_DEFAULT_TIMEOUT`). */
  odpFaultTimeoutNs: z.number().int().min(0).default(HMM_RANGE_DEFAULT_TIMEOUT_NS),
  /** Most pages one NIC page fault asks for (the faulting page and the rest of the access; default 16). */
  odpFaultMaxPages: z.number().int().min(1).max(4096).default(16),
  /** Page faults the NIC raises for one page of one work request before failing it with RETRY_EXC_ERR (default 16). */
  maxFaultsPerPage: z.number().int().min(1).max(1_000_000).default(16),
});

/** The `rdma` plugin's options after validation and defaults. */
export type RdmaOptions = z.output<typeof RdmaOptionsSchema>;

/** Token of the `rdma` plugin's validated options in the simulation container. */
export const RdmaOptions = serviceId<RdmaOptions>('@mmnsim/drivers-rdma:RdmaOptions');

/** Schema of {@link RdmaDeviceOptions}; unknown keys are rejected. @internal */
export const RdmaDeviceOptionsSchema = z.strictObject({
  /** The device execution context its engines run on (default: the device's name). */
  engine: z.string().min(1).optional(),
  /** The CPU its page-fault kworker runs on (default: the last CPU). */
  faultCpu: z.number().int().min(0).optional(),
  /** Deliberate protocol bugs, for teaching and for checking that exploration finds them (default none). */
  bugs: z.array(z.enum(RDMA_BUGS)).default([]),
});

/**
 * Options of `RdmaService.createDevice` (validated; unknown keys are rejected).
 *
 * ## Example
 * ```ts
 * const nic = rdma.createDevice('mlx5_0', { engine: 'nic0', faultCpu: 1 });
 * const broken = rdma.createDevice('mlx5_1', { engine: 'nic1', bugs: ['no-read-retry'] });
 * ```
 */
export interface RdmaDeviceOptions {
  /** The device execution context its engines run on (default: the device's name). */
  readonly engine?: string;
  /** The CPU its page-fault kworker runs on (default: the last CPU). */
  readonly faultCpu?: number;
  /** Deliberate protocol bugs (`RDMA_BUGS`), for teaching and for checking that exploration finds them (default none). */
  readonly bugs?: readonly RdmaBug[];
}
