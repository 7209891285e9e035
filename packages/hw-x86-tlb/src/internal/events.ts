/**
 * The x86 TLB model's event types, merged into core's SimEventMap. `cpu` is the CPU number,
 * `mm` an mm id (0 for `init_mm`, the kernel's own address space), `pcid` the hardware PCID
 * (ASID + 1; 0 without PCIDs).
 */
declare module '@mmnsim/core' {
  interface SimEventMap {
    /** A CPU load or store found its translation in the TLB. */
    'tlb.hit': {
      /** The CPU. */
      cpu: number;
      /** The mm id. */
      mm: number;
      /** Page address. */
      va: number;
      /** The frame used. */
      pfn: number;
      /** True for a store. */
      write: boolean;
    };
    /** A CPU access could not use a TLB entry and walks the page table. */
    'tlb.miss': {
      /** The CPU. */
      cpu: number;
      /** The mm id. */
      mm: number;
      /** Page address. */
      va: number;
      /** True for a store. */
      write: boolean;
      /**
       * `'miss'` (no entry), `'dirty'` (a store through an entry whose cached dirty bit is clear:
       * the CPU walks again to set it), `'protection'` (a store through a read-only entry: the
       * page fault invalidates the entry).
       */
      cause: string;
    };
    /** A page walk (a miss, or a speculative walk) created a TLB entry. */
    'tlb.fill': {
      /** The CPU. */
      cpu: number;
      /** The mm id. */
      mm: number;
      /** Page address. */
      va: number;
      /** The frame. */
      pfn: number;
      /** PCID the entry is tagged with. */
      pcid: number;
      /** Writable. */
      writable: boolean;
      /** The dirty bit as cached. */
      dirty: boolean;
      /** A global entry (survives PCID and CR3 flushes). */
      global: boolean;
      /** True for a speculative walk (no access happened). */
      speculative: boolean;
      /** Page address of the entry evicted to make room, or -1. */
      evicted: number;
    };
    /** A CPU invalidated TLB entries (INVLPG per page, or a full flush of its current PCID). */
    'tlb.flush': {
      /** The CPU. */
      cpu: number;
      /** The mm whose entries were flushed (0 for init_mm). */
      mm: number;
      /** The PCID flushed. */
      pcid: number;
      /** `'pages'` (INVLPG each page) or `'full'` (the whole PCID, with its paging-structure cache). */
      kind: string;
      /** First address (pages) or 0. */
      start: number;
      /** Exclusive end (pages) or -1 for a full flush. */
      end: number;
      /** Entries removed. */
      removed: number;
      /** `'local'` (the initiator), `'ipi'` (a shootdown handler), `'switch'` (a context switch). */
      reason: string;
    };
    /** A shootdown IPI was sent. */
    'tlb.ipi.send': {
      /** Initiating CPU (-1 outside a CPU). */
      from: number;
      /** Target CPU. */
      to: number;
      /** The mm (0 for a batched flush, which flushes whatever each CPU has loaded). */
      mm: number;
      /** The flush's generation (`new_tlb_gen`; -1 for a batched flush). */
      gen: number;
      /** True if page tables are being freed. */
      freedTables: boolean;
    };
    /** A shootdown IPI handler finished on its CPU (the initiator may go on once all did). */
    'tlb.ipi.ack': {
      /** The CPU that handled it. */
      cpu: number;
      /** Initiating CPU. */
      from: number;
      /** The mm (0 for a batched flush). */
      mm: number;
    };
    /**
     * A TLB generation changed: an mm's `context.tlb_gen` (a flush was requested; `cpu` -1), or a
     * CPU's generation for the mm it has loaded (it caught up).
     */
    'tlb.gen': {
      /** The mm id. */
      mm: number;
      /** The new generation. */
      gen: number;
      /** -1 for the mm's own generation, else the CPU. */
      cpu: number;
    };
    /** `switch_mm_irqs_off`: a CPU loaded an mm (or reloaded the one it had lazily). */
    'tlb.switch': {
      /** The CPU. */
      cpu: number;
      /** The mm loaded before (0 for init_mm). */
      from: number;
      /** The mm loaded now (0 for init_mm). */
      to: number;
      /** PCID used. */
      pcid: number;
      /** True if the PCID was flushed (a new ASID, or a generation behind the mm's). */
      flush: boolean;
      /**
       * `'task'` (a task of another mm runs), `'lazy-return'` (back to the lazily kept mm),
       * `'lazy-ipi'` (a shootdown reached a lazy CPU, which drops to init_mm), `'mm-freed'`.
       */
      reason: string;
    };
    /** `enter_lazy_tlb`: a kernel task (no mm) runs, and the CPU keeps its mm loaded, lazily. */
    'tlb.lazy': {
      /** The CPU. */
      cpu: number;
      /** The mm kept loaded. */
      mm: number;
    };
  }
}

export {};
