/**
 * The rdma package's event types, merged into core's SimEventMap. `dev` is the device's name,
 * `mr` the memory region's key (lkey = rkey), `mm` the mm id, `qp` the queue pair's number.
 * Together with the `smmu.*` events (the translations as the oracles see them) and mm's
 * `dma.*` events they describe every change of the model's device state.
 */
declare module '@mmnsim/core' {
  interface SimEventMap {
    /** A NIC was created. */
    'rdma.device.create': {
      /** The device's name. */
      dev: string;
      /** The device execution context its engines run on. */
      engine: string;
      /** The CPU its page-fault kworker runs on. */
      faultCpu: number;
    };
    /** A memory region was registered. */
    'rdma.mr.reg': {
      /** The device. */
      dev: string;
      /** The MR's key. */
      mr: number;
      /** `'odp'` or `'pinned'`. */
      kind: string;
      /** The mm id of the owning process. */
      mm: number;
      /** First byte (the iova). */
      addr: number;
      /** Length in bytes. */
      length: number;
      /** `IbAccess` bits. */
      access: number;
      /** Pages spanned. */
      pages: number;
    };
    /** A registration failed. */
    'rdma.mr.reg_fail': {
      /** The device. */
      dev: string;
      /** `'odp'` or `'pinned'`. */
      kind: string;
      /** The mm id. */
      mm: number;
      /** First byte asked for. */
      addr: number;
      /** Length asked for. */
      length: number;
      /** The negated errno returned. */
      errno: number;
      /** Why, for a person (for example the RLIMIT_MEMLOCK arithmetic). */
      reason: string;
    };
    /** A memory region was deregistered (its pages released). */
    'rdma.mr.dereg': {
      /** The device. */
      dev: string;
      /** The MR's key. */
      mr: number;
    };
    /** The driver posted a UMR (an MTT update done by the NIC) and will wait for it. */
    'rdma.umr.post': {
      /** The device. */
      dev: string;
      /** The MR's key. */
      mr: number;
      /** `'odp'` or `'pinned'`. */
      kind: string;
      /** Id of the MR's interval subscription (0 for pinned MRs). */
      sub: number;
      /** `'update'` (program entries), `'zap'` (zero them), `'revoke'` (disable the mkey). */
      op: string;
      /** First MTT index. */
      first: number;
      /** Number of entries. */
      count: number;
      /** True if the posting task held the MR's `umem_mutex`. */
      locked: boolean;
    };
    /** The NIC executed a UMR; its completion is signalled. */
    'rdma.umr.done': {
      /** The device. */
      dev: string;
      /** The MR's key. */
      mr: number;
      /** See `rdma.umr.post`. */
      op: string;
      /** First MTT index. */
      first: number;
      /** Number of entries. */
      count: number;
    };
    /** An MTT entry changed (written by a UMR). */
    'rdma.mtt.set': {
      /** The device. */
      dev: string;
      /** The MR's key. */
      mr: number;
      /** The entry's index (page of the MR). */
      index: number;
      /** The DMA address it holds (0 when cleared). */
      dma: number;
      /** `MttAccess` bits; 0 = no translation. */
      access: number;
    };
    /** The ODP fault path's `hmm_range_fault` returned. */
    'rdma.odp.snapshot': {
      /** The device. */
      dev: string;
      /** The MR's key. */
      mr: number;
      /** First address snapshotted. */
      start: number;
      /** Pages snapshotted. */
      pages: number;
      /** The `mmu_interval_read_begin` sequence it belongs to. */
      seq: number;
      /** `hmm_range_fault`'s result (0 or a negated errno). */
      result: number;
      /** True if pages were faulted in (a device fault), false for a snapshot (registration). */
      fault: boolean;
    };
    /** An ODP page was DMA-mapped (`ib_umem_odp_map_dma_single_page`). */
    'rdma.odp.dma_map': {
      /** The device. */
      dev: string;
      /** The MR's key. */
      mr: number;
      /** Page index in the MR. */
      index: number;
      /** The frame. */
      pfn: number;
      /** Its DMA address. */
      dma: number;
      /** `MttAccess` bits granted. */
      access: number;
    };
    /** An ODP page's DMA mapping is about to be removed (`ib_umem_odp_unmap_dma_pages`). */
    'rdma.odp.dma_unmap': {
      /** The device. */
      dev: string;
      /** The MR's key. */
      mr: number;
      /** Page index in the MR. */
      index: number;
      /** The DMA address. */
      dma: number;
      /** True if the page was mapped writable and is marked dirty. */
      dirty: boolean;
    };
    /** The ODP interval invalidate op returned. */
    'rdma.odp.invalidate': {
      /** The device. */
      dev: string;
      /** The MR's key. */
      mr: number;
      /** Start of the invalidated range (clipped to the MR). */
      start: number;
      /** End of the range (exclusive, clipped). */
      end: number;
      /** The notifier event (`UNMAP`, `CLEAR` …). */
      event: string;
      /** Whether the range was blockable. */
      blockable: boolean;
      /** Pages whose DMA mapping it removed. */
      unmapped: number;
      /** What it returned. */
      result: boolean;
    };
    /** The NIC raised a page fault and stalled the queue pair. */
    'rdma.pf.raise': {
      /** The device. */
      dev: string;
      /** The queue pair. */
      qp: number;
      /** The MR's key. */
      mr: number;
      /** The faulting address. */
      va: number;
      /** Bytes the NIC needs from there. */
      bytes: number;
      /** True for a write access. */
      write: boolean;
    };
    /** The page-fault handler resumed the queue pair. */
    'rdma.pf.resume': {
      /** The device. */
      dev: string;
      /** The queue pair. */
      qp: number;
      /** The MR's key. */
      mr: number;
      /** 0, or the negated errno the fault failed with (the work request then fails). */
      result: number;
    };
    /** A work request was posted to a send queue. */
    'rdma.wr.post': {
      /** The device. */
      dev: string;
      /** The queue pair. */
      qp: number;
      /** The work request id. */
      wr: number;
      /** `'RDMA_WRITE'` or `'RDMA_READ'`. */
      opcode: string;
      /** Bytes to move. */
      length: number;
    };
    /** A work request completed. */
    'rdma.wr.complete': {
      /** The device. */
      dev: string;
      /** The queue pair. */
      qp: number;
      /** The work request id. */
      wr: number;
      /** The completion status (`WcStatus`). */
      status: string;
    };
  }
}

export {};
