/**
 * The GART model's event types, merged into core's SimEventMap. Their own file so the package's
 * other models keep theirs separate.
 */
declare module '@mmnsim/core' {
  interface SimEventMap {
    /** A GATT entry was written by the CPU. */
    'gart.gatt.set': {
      /** Aperture page index. */
      index: number;
      /** Frame the entry points at (the scratch page for a cleared entry). */
      pfn: number;
      /** The encoded entry (GPTE_VALID, GPTE_COHERENT, address bits). */
      entry: number;
    };
    /** GART translation enabled (GARTEN in the aperture control register). */
    'gart.enable': {
      /** Aperture bus address. */
      base: number;
      /** Aperture pages. */
      pages: number;
    };
    /** The GART TLB was flushed (`amd_flush_garts`). */
    'gart.flush': {
      /** Entries dropped. */
      dropped: number;
    };
    /** A device access translated by the GART. */
    'gart.access': {
      /** The device. */
      dev: string;
      /** Aperture page index. */
      index: number;
      /** Frame reached. */
      pfn: number;
      /** True for a write. */
      write: boolean;
      /** True if the access is snooped (PCI DMA with GPTE_COHERENT). */
      snooped: boolean;
      /** The entry the GART TLB used. */
      used: number;
      /** The GATT entry in memory at the time of the access. */
      gatt: number;
    };
    /** A device access the GART refused (outside the aperture, invalid entry, GART disabled). */
    'gart.error': {
      /** The device. */
      dev: string;
      /** Bus address. */
      bus: number;
      /** Why. */
      reason: string;
    };
    /** The GART IOMMU allocator wrapped around (`need_flush` is due). */
    'gart.alloc.wrap': {
      /** `next_bit` before the wrap. */
      from: number;
    };
  }
}
export {};
