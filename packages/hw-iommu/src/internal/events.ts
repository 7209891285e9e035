/**
 * The IOMMU model's event types, merged into core's SimEventMap (one file so every `iommu.*`
 * payload is declared in one place). `unit` is an IOMMU's name, `device` a device's, `pasid` -1
 * for a request without PASID (DMA-API traffic through the RID's domain).
 */
declare module '@mmnsim/core' {
  interface SimEventMap {
    /** `iommu_map`: `pages` I/O pages from `iova` now map frames from `pfn` in domain `did`. */
    'iommu.map': {
      /** The IOMMU. */
      unit: string;
      /** Domain id. */
      did: number;
      /** First IOVA. */
      iova: number;
      /** First frame. */
      pfn: number;
      /** Pages mapped. */
      pages: number;
    };
    /** `iommu_unmap`: the I/O page-table entries of `[iova, iova + pages)` were cleared. */
    'iommu.unmap': {
      /** The IOMMU. */
      unit: string;
      /** Domain id. */
      did: number;
      /** First IOVA. */
      iova: number;
      /** Pages unmapped. */
      pages: number;
    };
    /** The IOVA allocator handed out `[iova, iova + pages)` of domain `did` (`alloc_iova_fast`). */
    'iommu.iova.alloc': {
      /** The IOMMU. */
      unit: string;
      /** Domain id. */
      did: number;
      /** First IOVA. */
      iova: number;
      /** Pages. */
      pages: number;
    };
    /** An IOVA range went back to the allocator (`free_iova_fast`), `lazy` if through the flush queue. */
    'iommu.iova.free': {
      /** The IOMMU. */
      unit: string;
      /** Domain id. */
      did: number;
      /** First IOVA. */
      iova: number;
      /** Pages. */
      pages: number;
      /** True when freed by a flush-queue flush. */
      lazy: boolean;
    };
    /** An IOTLB entry was created by a walk. */
    'iommu.iotlb.fill': {
      /** The IOMMU. */
      unit: string;
      /** Domain id. */
      did: number;
      /** PASID, -1 without. */
      pasid: number;
      /** Page address (IOVA or process VA). */
      va: number;
      /** Frame. */
      pfn: number;
      /** True if it allows writes. */
      write: boolean;
    };
    /** A descriptor was queued on the invalidation queue. */
    'iommu.qi.submit': {
      /** The IOMMU. */
      unit: string;
      /** Descriptor id. */
      id: number;
      /** `iotlb`, `piotlb`, `devtlb`, `pasid-cache` or `wait`. */
      kind: string;
      /** Domain id (-1 if none). */
      did: number;
      /** PASID (-1 if none). */
      pasid: number;
      /** First address (0 with `pages` 0: everything). */
      addr: number;
      /** Pages (0: the whole space). */
      pages: number;
      /** The device of a device-TLB descriptor (empty otherwise). */
      device: string;
    };
    /** The hardware completed a queued descriptor (for `devtlb`: the device's ATS completion arrived). */
    'iommu.qi.done': {
      /** The IOMMU. */
      unit: string;
      /** Descriptor id. */
      id: number;
      /** Its kind. */
      kind: string;
      /** PASID (-1 if none). */
      pasid: number;
      /** First address. */
      addr: number;
      /** Pages (0: all). */
      pages: number;
    };
    /** A device's ATC got a translation (ATS translation completion). */
    'iommu.atc.fill': {
      /** The device. */
      device: string;
      /** PASID. */
      pasid: number;
      /** Page address. */
      va: number;
      /** Frame. */
      pfn: number;
      /** True if writable. */
      write: boolean;
    };
    /** A device executed an ATS invalidation request on its ATC (before it sends the completion). */
    'iommu.atc.inv': {
      /** The device. */
      device: string;
      /** PASID. */
      pasid: number;
      /** First address. */
      addr: number;
      /** Pages (0: all). */
      pages: number;
      /** Entries dropped. */
      dropped: number;
    };
    /** One DMA access of a device: through its ATC, the IOTLB, a fresh walk, or a fault. */
    'iommu.dma': {
      /** The device. */
      device: string;
      /** PASID, -1 without. */
      pasid: number;
      /** The address the device used (IOVA or process VA). */
      addr: number;
      /** True for a write. */
      write: boolean;
      /** `atc`, `iotlb`, `walk`, `identity` or `fault`. */
      via: string;
      /** The frame reached (-1 on a fault). */
      pfn: number;
      /** The frame's allocation generation the translation was made for (-1 on a fault). */
      gen: number;
    };
    /** A device sent a PCIe page request (PRI) and the IOMMU queued it (or dropped it on overflow). */
    'iommu.prq.request': {
      /** The IOMMU. */
      unit: string;
      /** The device. */
      device: string;
      /** PASID, -1 if the request carries none. */
      pasid: number;
      /** Page address. */
      va: number;
      /** `r`, `w`, `x`, `p` (privileged) flags. */
      perm: string;
      /** Page request group index. */
      group: number;
      /** Last in group. */
      last: boolean;
      /** Request serial. */
      id: number;
      /** False if the queue was full (overflow: the request was dropped). */
      queued: boolean;
    };
    /** The page-request thread took a request off the queue (`prq_event_thread`). */
    'iommu.prq.dequeue': {
      /** The IOMMU. */
      unit: string;
      /** Request serial. */
      id: number;
      /** `fault` (reported to the I/O page-fault queue), `invalid`, `stop-marker`, `partial` or `no-handler`. */
      action: string;
    };
    /** The I/O page-fault handler finished one fault of a group (`iommu_sva_handle_mm`). */
    'iommu.iopf.handle': {
      /** The device. */
      device: string;
      /** PASID. */
      pasid: number;
      /** Page address. */
      va: number;
      /** The group's serial. */
      serial: number;
      /** Its code. */
      code: string;
    };
    /** A fault group was queued for the I/O page-fault handler. */
    'iommu.iopf.queue': {
      /** The device. */
      device: string;
      /** PASID. */
      pasid: number;
      /** Group index. */
      group: number;
      /** The group's serial. */
      serial: number;
      /** Faults in the group. */
      faults: number;
    };
    /** The SVA notifier's `arch_invalidate_secondary_tlbs` began for a range. */
    'iommu.sva.flush': {
      /** The IOMMU. */
      unit: string;
      /** The mm id. */
      mm: number;
      /** Range start. */
      start: number;
      /** Range end. */
      end: number;
      /** The translation caches' fill stamp when it began. */
      stamp: number;
    };
    /** A page group response was sent to a device (`intel_svm_page_response`). */
    'iommu.page_response': {
      /** The device. */
      device: string;
      /** PASID (-1 if none). */
      pasid: number;
      /** Group index. */
      group: number;
      /** The group's serial (-1 for a response the hardware or the request thread generated). */
      serial: number;
      /** `success`, `invalid` or `failure`. */
      code: string;
    };
    /** `iommu_sva_bind_device` returned. */
    'iommu.sva.bind': {
      /** The device. */
      device: string;
      /** The mm id. */
      mm: number;
      /** The PASID, or -1. */
      pasid: number;
      /** 0 or a negated errno. */
      result: number;
    };
    /** `iommu_sva_unbind_device` detached a PASID (the last handle reference went). */
    'iommu.sva.unbind': {
      /** The device. */
      device: string;
      /** The mm id. */
      mm: number;
      /** The PASID. */
      pasid: number;
    };
    /** The SVA notifier's `release` finished for an mm (its PASID entries torn down, unless a bug is planted). */
    'iommu.sva.release': {
      /** The mm id. */
      mm: number;
      /** The PASID. */
      pasid: number;
    };
    /** A PASID-table entry was torn down (`intel_pasid_tear_down_entry`) or quieted (SMMUv3). */
    'iommu.pasid.teardown': {
      /** The device. */
      device: string;
      /** The PASID. */
      pasid: number;
      /** `clear` (VT-d) or `quiet` (SMMUv3 CD with translation disabled). */
      how: string;
    };
  }
}

export {};
