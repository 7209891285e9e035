/**
 * The GART's oracles: the init-order rule of `gart_iommu_init`, and device accesses through a
 * GART TLB entry whose GATT entry changed without a flush. Their own file: checks, not hardware.
 */
import type { Oracle, OracleContext } from '@mmnsim/core';
import type { GartHw } from './gart.js';

function hex(v: number): string {
  return '0x' + (v >>> 0).toString(16);
}

/**
 * Reports `gart-init-order` when GART translation is enabled before its preconditions, in the
 * order `gart_iommu_init` keeps them: the GATT made uncached (`set_memory_uc`), the direct map
 * of the aperture's IOMMU part made not-present (`set_memory_np`), then a full `wbinvd`, then
 * enable and a GART TLB flush before any device access. Also reports CPU cache lines left at
 * the aperture's addresses when translation is enabled (stale lines that lead to GART PTE
 * errors).
 *
 * @see arch/x86/kernel/amd_gart_64.c: gart_iommu_init, init_amd_gatt (6.17)
 */
export class GartInitOrderOracle implements Oracle {
  /** Oracle id. */
  readonly id = 'gart-init-order';

  /**
   * @param hw the GART hardware.
   * @param iommuStart first aperture page of the IOMMU part (its direct map must be not-present).
   */
  constructor(
    private readonly hw: GartHw,
    private readonly iommuStart: number,
  ) {}

  /** Subscribes to memory-type changes, `wbinvd`, enable, flush and accesses. */
  attach(ctx: OracleContext): void {
    const hw = this.hw;
    let lastNp = -1;
    let lastWbinvd = -1;
    let flushedSinceEnable = false;
    let reported = false;
    const report = (message: string, seq: number): void => {
      if (reported) return;
      reported = true;
      ctx.report({ kind: 'gart-init-order', message, evidence: [seq] });
    };
    ctx.bus.on('cache.memtype').subscribe((e) => {
      if (e.data.type === 'NP') lastNp = e.seq;
    });
    ctx.bus.on('cache.wbinvd').subscribe((e) => {
      lastWbinvd = e.seq;
    });
    ctx.bus.on('gart.flush').subscribe(() => {
      if (hw.enabled) flushedSinceEnable = true;
    });
    ctx.bus.on('gart.enable').subscribe((e) => {
      flushedSinceEnable = false;
      const dm = hw.caches.directMap;
      const wbGatt = hw.gattPfns.filter((p) => dm.type(p) !== 'UC');
      if (wbGatt.length > 0)
        return report(
          `GART enabled while the GATT (frame ${wbGatt[0]}) is ${dm.type(wbGatt[0]!)}: init_amd_gatt makes it uncached (set_memory_uc) first`,
          e.seq,
        );
      const ap = hw.apertureFrames.slice(this.iommuStart);
      const present = ap.filter((p) => dm.type(p) !== 'NP');
      if (present.length > 0)
        return report(
          `GART enabled while the direct map of aperture frame ${present[0]} is present (${dm.type(present[0]!)}): the CPU may prefetch lines at the aperture's addresses; set_memory_np comes first`,
          e.seq,
        );
      if (lastWbinvd < lastNp)
        return report(
          'GART enabled without a full wbinvd after the aperture was made not-present: lines cached before remain and a stray write-out can hit the remapped pages',
          e.seq,
        );
      const cached = ap.filter((p) => hw.caches.allDomains.some((d) => d.holds(p)));
      if (cached.length > 0)
        return report(
          `GART enabled with CPU cache lines at aperture frame ${cached[0]} (stale lines lead to GART PTE errors)`,
          e.seq,
        );
    });
    ctx.bus.on('gart.access').subscribe((e) => {
      if (!flushedSinceEnable)
        report(
          `device ${e.data.dev} used the GART before the GART TLB was flushed after enabling translation`,
          e.seq,
        );
    });
  }
}

/**
 * Reports `gart-stale-tlb` when a device access is translated by a GART TLB entry that differs
 * from the GATT entry in memory: the entry changed and the GART TLB was not flushed (the lazy
 * policy must flush when the allocator wraps, `need_flush` in `alloc_iommu`).
 *
 * @see arch/x86/kernel/amd_gart_64.c: alloc_iommu, flush_gart (6.17)
 */
export class GartStaleTlbOracle implements Oracle {
  /** Oracle id. */
  readonly id = 'gart-stale-tlb';

  /** Subscribes to `gart.access`. */
  attach(ctx: OracleContext): void {
    ctx.bus.on('gart.access').subscribe((e) => {
      const d = e.data;
      if (d.used === d.gatt) return;
      ctx.report({
        kind: 'gart-stale-tlb',
        message: `${d.dev} ${d.write ? 'wrote' : 'read'} aperture page ${d.index} through a GART TLB entry ${hex(d.used)} (frame ${d.pfn}) while the GATT holds ${hex(d.gatt)}: the entry changed without a GART TLB flush`,
        evidence: [e.seq],
      });
    });
  }
}
