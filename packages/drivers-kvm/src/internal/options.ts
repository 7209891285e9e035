import { serviceId } from '@mmnsim/core';
import { z } from 'zod';

/**
 * Deliberate bugs, for showing that exploration and the oracles find them (each is a mistake
 * KVM made or could make). All off by default.
 */
export const KvmBugsSchema = z.strictObject({
  /**
   * The fault path snapshots `mmu_invalidate_seq` after GUP instead of before: an invalidation
   * that completes between GUP and the snapshot goes unnoticed (users-and-hardware §7 scenario 1).
   */
  seqSnapshotAfterGup: z.boolean().optional(),
  /**
   * `mmu_invalidate_retry_gfn` looks at the sequence only, not at the in-progress range: a fault
   * between start and end installs an SPTE inside the window (scenario 2).
   */
  staleCheckIgnoresRange: z.boolean().optional(),
  /**
   * `invalidate_range_start` zaps but leaves the remote TLB flush to `invalidate_range_end`, so
   * vCPUs keep stale guest TLB entries after start returned (scenario 6).
   */
  flushAfterStartReturns: z.boolean().optional(),
  /** WAIT requests IPI only vCPUs in IN_GUEST_MODE, not lockless SPTE walkers (scenario 8). */
  ipiOnlyInGuestMode: z.boolean().optional(),
  /** The TDP zap loop drops `mmu_lock` to reschedule without flushing first (scenario 9). */
  zapYieldWithoutFlush: z.boolean().optional(),
  /** The fault path drops and retakes `mmu_lock` between the staleness check and the install (scenario 16). */
  dropLockBeforeInstall: z.boolean().optional(),
  /** `invalidate_range_end` decrements `in_progress` before bumping the sequence (scenario 4). */
  endOrderReversed: z.boolean().optional(),
  /** `invalidate_range_start` counts the window but zaps nothing: a missing notifier (scenario 11). */
  startSkipsZap: z.boolean().optional(),
});

/** The deliberate bugs of {@link KvmBugsSchema}. */
export type KvmBugs = z.output<typeof KvmBugsSchema>;

/** Schema of the `kvm` plugin's options; unknown keys are rejected. */
export const KvmOptionsSchema = z.strictObject({
  /** Number of vCPUs of a VM unless `createVm` says otherwise (1 .. 64, default 1). */
  vcpus: z.number().int().min(1).max(64).default(1),
  /** Whether SPTEs have hardware accessed/dirty bits (EPT A/D); without them KVM uses access tracking. */
  adBits: z.boolean().default(true),
  /**
   * `need_resched()` in the TDP MMU's zap loop: a blockable zap yields `mmu_lock` (flushing
   * first) after this many zapped SPTEs (1 .. 4096, default 8).
   */
  tdpYieldEvery: z.number().int().min(1).max(4096).default(8),
  /**
   * Virtual nanoseconds between a RET_PF_RETRY and the access faulting again (0 .. 10^9,
   * default 1000): a retrying vCPU sleeps instead of spinning, so it cannot starve the task that
   * holds the invalidation open under a priority-based strategy.
   */
  retryDelayNs: z.number().int().min(0).max(1_000_000_000).default(1000),
  /** Attach the {@link KvmOracle} (the `kvm-*` rules) to every simulation (default true). */
  oracle: z.boolean().default(true),
  /** Deliberate bugs (see {@link KvmBugsSchema}); none by default. */
  bugs: KvmBugsSchema.optional(),
});

/** The `kvm` plugin's options after validation and defaults. */
export type KvmOptions = z.output<typeof KvmOptionsSchema>;

/** Token of the `kvm` plugin's validated options in the simulation container. */
export const KvmOptions = serviceId<KvmOptions>('@mmnsim/drivers-kvm:KvmOptions');
