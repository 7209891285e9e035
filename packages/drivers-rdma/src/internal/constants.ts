/**
 * `enum ib_access_flags` (include/rdma/ib_verbs.h): what a memory region allows. Combine with
 * `|`.
 *
 * ## Example
 * ```ts
 * const access = IbAccess.LOCAL_WRITE | IbAccess.REMOTE_WRITE | IbAccess.REMOTE_READ;
 * ```
 *
 * @see enum ib_access_flags
 */
export const IbAccess = {
  /** `IB_ACCESS_LOCAL_WRITE`: the local NIC may write the MR (the destination of an RDMA READ). */
  LOCAL_WRITE: 1,
  /** `IB_ACCESS_REMOTE_WRITE`: a peer may RDMA WRITE into the MR. */
  REMOTE_WRITE: 2,
  /** `IB_ACCESS_REMOTE_READ`: a peer may RDMA READ from the MR. */
  REMOTE_READ: 4,
  /** `IB_ACCESS_REMOTE_ATOMIC`: a peer may run atomics on the MR (not modelled; counts as writable). */
  REMOTE_ATOMIC: 8,
  /** `IB_ACCESS_MW_BIND`: memory windows may be bound (not modelled; counts as writable). */
  MW_BIND: 16,
  /** `IB_ACCESS_ON_DEMAND`: an on-demand-paging MR (`registerOdpMr` implies it; `registerPinnedMr` rejects it). */
  ON_DEMAND: 64,
} as const;

/**
 * `ib_access_writable`: true if an MR with `access` lets the device write its pages — then
 * pinned registrations pin with FOLL_WRITE and ODP faults ask for writable pages.
 *
 * @param access {@link IbAccess} bits.
 * @returns whether the umem is writable.
 * @see ib_access_writable
 */
export function ibAccessWritable(access: number): boolean {
  return (
    (access &
      (IbAccess.LOCAL_WRITE |
        IbAccess.REMOTE_WRITE |
        IbAccess.REMOTE_ATOMIC |
        IbAccess.MW_BIND)) !==
    0
  );
}

/**
 * Permission bits of an MTT entry (`MLX5_IB_MTT_READ`, `MLX5_IB_MTT_WRITE`), and of an ODP page's
 * DMA mapping (`ODP_READ_ALLOWED_BIT`, `ODP_WRITE_ALLOWED_BIT`, kept in the low bits of
 * `dma_list[]` in the kernel). 0 means "no translation".
 *
 * @see MLX5_IB_MTT_READ
 */
export const MttAccess = {
  /** The device may read through the entry. */
  READ: 1,
  /** The device may write through the entry. */
  WRITE: 2,
} as const;

/**
 * `HMM_RANGE_DEFAULT_TIMEOUT` (1000 ms) in virtual nanoseconds: how long the ODP fault path keeps
 * retrying `hmm_range_fault` while it returns -EBUSY (a collision with an invalidation).
 *
 * @see HMM_RANGE_DEFAULT_TIMEOUT
 */
export const HMM_RANGE_DEFAULT_TIMEOUT_NS = 1_000_000_000;

/**
 * MTT entries per alignment unit of a UMR (`MLX5_UMR_MTT_NUM_ENTRIES_ALIGNMENT`: 64 bytes of
 * 8-byte entries). The invalidate op coalesces mapped entries into blocks and may only end a
 * block at an unmapped entry whose index is a multiple of this.
 *
 * @see MLX5_UMR_MTT_NUM_ENTRIES_ALIGNMENT
 */
export const UMR_MTT_ALIGNMENT = 8;

/**
 * Status of a work completion (`enum ib_wc_status`, the subset the model produces).
 *
 * - `SUCCESS`: done.
 * - `LOC_LEN_ERR`: an address or length is not a multiple of 4 bytes (the model moves 32-bit
 *   words), or inline data is shorter than the length.
 * - `LOC_PROT_ERR`: the local MR does not allow the access, the range is outside it, or its page
 *   fault failed.
 * - `REM_ACCESS_ERR`: the same for the remote MR (rkey).
 * - `RETRY_EXC_ERR`: one page faulted more often than the NIC retries (`maxFaultsPerPage`).
 * - `GENERAL_ERR`: a DMA access faulted (an IOMMU refused it).
 * - `WR_FLUSH_ERR`: the queue pair was in the error state; the request was not executed.
 *
 * @see enum ib_wc_status
 */
export type WcStatus =
  | 'SUCCESS'
  | 'LOC_LEN_ERR'
  | 'LOC_PROT_ERR'
  | 'REM_ACCESS_ERR'
  | 'RETRY_EXC_ERR'
  | 'GENERAL_ERR'
  | 'WR_FLUSH_ERR';

/**
 * Known ways to get the ODP protocol wrong, for teaching and for checking that exploration finds
 * them (pass them to {@link RdmaDeviceOptions.bugs}; a correct driver uses none):
 *
 * - `'no-read-retry'`: the fault path programs the MTT without `mmu_interval_read_retry`
 *   (users-and-hardware.md §7 scenario 17: DMA into freed memory).
 * - `'read-retry-outside-lock'`: it calls `mmu_interval_read_retry` right after
 *   `hmm_range_fault`, before taking `umem_mutex` (notifier-core.md invariant 40).
 * - `'mtt-after-unlock'`: it builds the MTT update under `umem_mutex` but lets the device write
 *   it (posts the UMR and waits) only after dropping the mutex (scenario 17).
 * - `'dma-unmap-before-zap'`: the invalidate op DMA-unmaps the pages before the MTT zap has
 *   completed (§2.3's order reversed).
 * - `'set-seq-if-mapped'`: the invalidate op calls `mmu_interval_set_seq` only when pages are
 *   mapped (after the `npages == 0` early return) — invariant 39.
 * - `'umr-in-nonblockable'`: the invalidate op handles a non-blockable range (trylock, zap, wait
 *   for the UMR) instead of returning false (scenario 20).
 */
export const RDMA_BUGS = [
  'no-read-retry',
  'read-retry-outside-lock',
  'mtt-after-unlock',
  'dma-unmap-before-zap',
  'set-seq-if-mapped',
  'umr-in-nonblockable',
] as const;

/** One of {@link RDMA_BUGS}. */
export type RdmaBug = (typeof RDMA_BUGS)[number];
