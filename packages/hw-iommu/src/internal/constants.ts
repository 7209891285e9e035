/**
 * Constants and the broken-variant names of the IOMMU model, in their own file because every
 * other file of the model (units, queues, devices, SVA, the oracle) uses them.
 */
import type { SchedOp } from '@mmnsim/core';

/**
 * Deliberate bugs the IOMMU model can plant (the `bugs` option), each breaking one rule of the
 * kernel's IOMMU drivers, for teaching and for checking that exploration finds them:
 * - `devtlb-before-iotlb`: `arch_invalidate_secondary_tlbs` queues the device-TLB (ATS)
 *   invalidation before the IOTLB one, so the device can refill its ATC from the stale IOTLB
 *   entry in between (drivers/iommu/intel/cache.c orders IOTLB first);
 * - `no-ats-invalidation`: no device-TLB invalidation for an ATS device;
 * - `no-wait-descriptor`: invalidations are queued without a wait descriptor, so the flush
 *   returns before the hardware completed it (`qi_submit_sync` without its wait);
 * - `unbind-no-drain`: unbind detaches the PASID without `intel_drain_pasid_prq`;
 * - `release-keeps-pasid`: the notifier's `release` leaves the PASID entry live (no
 *   `intel_pasid_tear_down_entry`), relying on later invalidations that never come;
 * - `lazy-reuse-before-flush`: in lazy mode an unmapped IOVA goes back to the allocator at once
 *   instead of through the flush queue;
 * - `response-before-fault`: the I/O page-fault handler answers the page request group before
 *   `handle_mm_fault` ran.
 */
export const IOMMU_BUGS = [
  'devtlb-before-iotlb',
  'no-ats-invalidation',
  'no-wait-descriptor',
  'unbind-no-drain',
  'release-keeps-pasid',
  'lazy-reuse-before-flush',
  'response-before-fault',
] as const;

/** One of {@link IOMMU_BUGS}. */
export type IommuBug = (typeof IOMMU_BUGS)[number];

/** The PASID space of the IOMMU core (`IOMMU_MAX_PASIDS` would be 2^20; PASID 0 is `IOMMU_NO_PASID`). */
export const PASID_SPACE = 1 << 20;

/** `IOMMU_FIRST_GLOBAL_PASID`: global PASIDs for SVA start at 1. */
export const FIRST_GLOBAL_PASID = 1;

/** `IOVA_FQ_TIMEOUT` (10 ms): the flush-queue timer of lazy mode, in ns. */
export const IOVA_FQ_TIMEOUT_NS = 10_000_000;

/** Page request group indexes are 9 bits (PCIe PRG index). */
export const PRG_INDEX_MASK = 0x1ff;

/** Canonical 48-bit user address limit: a page request above it is non-canonical. */
export const CANONICAL_LIMIT = 2 ** 47;

/** How a page request group is answered (`enum iommu_page_response_code`). */
export type PageResponseCode = 'success' | 'invalid' | 'failure';

/** Hex for messages. */
export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/**
 * A plain scheduling point (what `Scheduler.preempt` yields), yielded directly on the model's
 * per-access paths so that they do not allocate a generator at every step.
 */
export const PREEMPT: SchedOp = { kind: 'preempt' };
