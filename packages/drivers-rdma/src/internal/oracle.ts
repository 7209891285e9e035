import type { Oracle, OracleContext } from '@mmnsim/core';
import type { RdmaService } from './service.js';

/** What the oracle remembers of a fault path's snapshot: its sequence and whether it was checked. */
interface Snapshot {
  readonly seq: number;
  /** `seq` of the `mmn.read_begin` event. */
  readonly ev: number;
  /** A `read_retry` with this sequence said "no collision" (and no MTT update used it yet). */
  confirmed: boolean;
}

/**
 * Checks the ODP driver rules the generic notifier oracles cannot see, from the `rdma.*` and
 * `mmn.*` events and the MTTs (users-and-hardware.md §2.2, §2.3):
 *
 * - `odp-mtt-update-unlocked`: an MTT update of an ODP MR was posted without the MR's
 *   `umem_mutex` held (mlx5's `lockdep_assert_held(&umem_odp->umem_mutex)` in
 *   `mlx5_odp_populate_xlt`): the NIC may then write entries after an invalidation already ran,
 *   giving it translations to pages about to be freed (scenario 17).
 * - `odp-mtt-update-unchecked`: an MTT update of an ODP MR was posted by a task whose last
 *   snapshot of that MR (`mmu_interval_read_begin` + `hmm_range_fault`) no
 *   `mmu_interval_read_retry` confirmed: the pages may have changed since the snapshot
 *   (§2.2 step e, scenario 17).
 * - `odp-dma-unmap-before-zap`: an ODP page is DMA-unmapped while its MTT entry still holds the
 *   address: the device may use a DMA address that no longer belongs to it (§2.3's order:
 *   zap, UMR completed, then unmap).
 *
 * The `rdma` plugin contributes it to every simulation it is part of.
 *
 * @see mlx5_ib_invalidate_range
 * @see ib_umem_odp_map_dma_and_lock
 */
export class RdmaOracle implements Oracle {
  /** See {@link Oracle.id}. */
  readonly id = 'rdma';

  /** @param rdma the service whose devices' MTTs it inspects. */
  constructor(private readonly rdma: RdmaService) {}

  /** See {@link Oracle.attach}. */
  attach(ctx: OracleContext): void {
    const snaps = new Map<string, Snapshot>();
    const bus = ctx.bus;
    bus.on('mmn.read_begin').subscribe((e) => {
      snaps.set(`${e.task}|${e.data.sub}`, { seq: e.data.seq, ev: e.seq, confirmed: false });
    });
    bus.on('mmn.read_retry').subscribe((e) => {
      const s = snaps.get(`${e.task}|${e.data.sub}`);
      if (s !== undefined && s.seq === e.data.seq) s.confirmed = !e.data.retry;
    });
    bus.on('rdma.umr.post').subscribe((e) => {
      const d = e.data;
      if (d.kind !== 'odp' || d.op !== 'update') return;
      const what = `the MTT update of entries ${d.first}..${d.first + d.count - 1} of mr${d.mr} on ${d.dev}`;
      if (!d.locked) {
        ctx.report({
          kind: 'odp-mtt-update-unlocked',
          message: `${what} was posted without umem_mutex held (lockdep_assert_held in mlx5_odp_populate_xlt): the NIC can write the entries after an invalidation of those pages has run, and keep translations to freed pages (users-and-hardware.md §2.2 step 4, §7 scenario 17)`,
          evidence: [e.seq],
        });
      }
      const s = snaps.get(`${e.task}|${d.sub}`);
      if (s === undefined || !s.confirmed) {
        ctx.report({
          kind: 'odp-mtt-update-unchecked',
          message: `${what} uses a snapshot that no mmu_interval_read_retry under umem_mutex confirmed: an invalidation between mmu_interval_read_begin and the update goes unnoticed and the MTT points at pages the mm may free (users-and-hardware.md §2.2 step e, §7 scenario 17)`,
          evidence: s !== undefined ? [s.ev, e.seq] : [e.seq],
        });
      }
      if (s !== undefined) s.confirmed = false;
    });
    bus.on('rdma.odp.dma_unmap').subscribe((e) => {
      const d = e.data;
      const mr = this.rdma.findMr(d.dev, d.mr);
      if (mr === undefined || mr.mtt.access[d.index] === 0) return;
      ctx.report({
        kind: 'odp-dma-unmap-before-zap',
        message: `page ${d.index} of mr${d.mr} on ${d.dev} is DMA-unmapped (0x${d.dma.toString(16)}) while its MTT entry still holds the address: the NIC can still DMA through it; the invalidation must zap the MTT and wait for the UMR before dma_unmap (users-and-hardware.md §2.3)`,
        evidence: [e.seq],
      });
    });
  }
}
