/**
 * The mm package's event types, merged into core's SimEventMap. Addresses and pfns are numbers;
 * `mm` is the mm id.
 */
declare module '@mmnsim/core' {
  interface SimEventMap {
    /** A frame was allocated. */
    'mm.frame.alloc': {
      /** Frame number. */
      pfn: number;
      /** `'anon'`, `'file'`, `'pagetable'` or `'kernel'`. */
      kind: string;
      /** Allocation generation of the frame. */
      gen: number;
    };
    /** A frame went back to the free list. */
    'mm.frame.free': {
      /** Frame number. */
      pfn: number;
    };
    /** A word of a frame was written (by any path: CPU, device, kernel copy). */
    'mm.frame.write': {
      /** Frame number. */
      pfn: number;
      /** Word index (0..1023). */
      word: number;
      /** The 32-bit value written. */
      value: number;
    };
    /** A frame's content was copied to another frame (COW, migration). */
    'mm.frame.copy': {
      /** Source frame. */
      from: number;
      /** Destination frame. */
      to: number;
    };
    /** An mm was created. */
    'mm.create': {
      /** The mm id. */
      mm: number;
      /** The process name. */
      name: string;
      /** Frame of its top-level table. */
      pgd: number;
    };
    /** A page-table entry changed (any level below the top is a table page). */
    'mm.pte.set': {
      /** The mm id. */
      mm: number;
      /** Virtual address of the PTE. */
      va: number;
      /** The new entry (see `describePte`). */
      pte: number;
      /** The previous entry. */
      old: number;
    };
    /** A page-table page was linked into an mm's tree. */
    'mm.pt.alloc': {
      /** The mm id. */
      mm: number;
      /** Its frame. */
      pfn: number;
      /** Level of the new table: 2 = PUD table, 1 = PMD table, 0 = PTE table. */
      level: number;
      /** First address it maps. */
      va: number;
    };
    /** A page-table page was unlinked (it is freed after the next TLB flush). */
    'mm.pt.unlink': {
      /** The mm id. */
      mm: number;
      /** Its frame. */
      pfn: number;
      /** Level of the table. */
      level: number;
      /** First address it mapped. */
      va: number;
    };
    /** A VMA was added. */
    'mm.vma.add': {
      /** The mm id. */
      mm: number;
      /** Start address. */
      start: number;
      /** Exclusive end. */
      end: number;
      /** `vm_flags`. */
      flags: number;
      /** Backing file id, or 0 for anonymous memory. */
      file: number;
      /** Page offset. */
      pgoff: number;
    };
    /** A VMA was removed (or replaced by the pieces of a split). */
    'mm.vma.remove': {
      /** The mm id. */
      mm: number;
      /** Start address. */
      start: number;
      /** Exclusive end. */
      end: number;
    };
    /**
     * A simulated system call entered the kernel (the `Process` facade: mmap, munmap, mprotect,
     * madvise, mremap, brk, fork, exit_group); its `mm.syscall.exit` follows on the same task.
     */
    'mm.syscall.enter': {
      /** The mm id. */
      mm: number;
      /** The system call (`'mmap'`, `'munmap'`, …). */
      name: string;
      /** Its arguments by name (non-finite numbers as strings). */
      args: { [arg: string]: number | string | null };
    };
    /** A simulated system call returned (`ret`: an address, 0, a child pid, or a negated errno). */
    'mm.syscall.exit': {
      /** The mm id. */
      mm: number;
      /** The system call. */
      name: string;
      /** What it returned. */
      ret: number;
    };
    /** A page fault was handled. */
    'mm.fault': {
      /** The mm id. */
      mm: number;
      /** Faulting address. */
      va: number;
      /** True for a write fault. */
      write: boolean;
      /** `'ok'`, `'retry'`, `'sigsegv'`, `'sigbus'`, `'oom'`. */
      result: string;
    };
    /** A CPU TLB flush of an mm's range completed (`flush_tlb_mm_range`). */
    'mm.tlb.flush': {
      /** The mm id. */
      mm: number;
      /** Start address. */
      start: number;
      /** Exclusive end. */
      end: number;
      /** True if page-table pages were freed (lazy CPUs must flush too). */
      freedTables: boolean;
    };
    /** An mmu_gather freed the pages it had batched (after the flush that covers them). */
    'mm.gather.free': {
      /** The mm id. */
      mm: number;
      /** The pages freed or released (their frames). */
      pfns: number[];
      /** Page-table pages freed. */
      tables: number[];
    };
    /** The mm's users reached zero and its address space was torn down. */
    'mm.exit': {
      /** The mm id. */
      mm: number;
    };
    /** An anonymous page was written to swap and its PTEs replaced by swap entries. */
    'mm.swap.out': {
      /** The frame. */
      pfn: number;
      /** The swap slot. */
      slot: number;
    };
    /** A swapped page was read back into a new frame. */
    'mm.swap.in': {
      /** The mm id. */
      mm: number;
      /** The address. */
      va: number;
      /** The swap slot. */
      slot: number;
      /** The new frame. */
      pfn: number;
    };
    /** A folio was migrated to a new frame. */
    'mm.migrate': {
      /** Old frame. */
      from: number;
      /** New frame. */
      to: number;
      /** `'ok'` or why it failed (`'busy'`, `'pinned'`, `'nomem'`). */
      result: string;
    };
    /** `mmu_notifier_invalidate_range_start` was called. */
    'mmn.invalidate_start': {
      /** The mm id. */
      mm: number;
      /** Range start. */
      start: number;
      /** Exclusive range end. */
      end: number;
      /** Event name (`'UNMAP'`, `'CLEAR'` …). */
      event: string;
      /** True for the blocking wrapper. */
      blockable: boolean;
      /** 0 or the errno returned. */
      result: number;
      /** Identity of the range object, to pair with its end. */
      range: number;
    };
    /** `mmu_notifier_invalidate_range_end` was called. */
    'mmn.invalidate_end': {
      /** The mm id. */
      mm: number;
      /** Range start. */
      start: number;
      /** Exclusive range end. */
      end: number;
      /** Event name. */
      event: string;
      /** Identity of the range object. */
      range: number;
    };
    /** A young notifier was called. */
    'mmn.young': {
      /** `'clear_flush_young'`, `'clear_young'` or `'test_young'`. */
      op: string;
      /** The mm id. */
      mm: number;
      /** Range start. */
      start: number;
      /** Exclusive range end. */
      end: number;
      /** The combined result. */
      result: number;
    };
    /** `__mmu_notifier_release` ran at exit. */
    'mmn.release': {
      /** The mm id. */
      mm: number;
    };
    /** `mmu_notifier_arch_invalidate_secondary_tlbs` was called from a CPU TLB flush. */
    'mmn.secondary_tlbs': {
      /** The mm id. */
      mm: number;
      /** Range start. */
      start: number;
      /** Exclusive range end. */
      end: number;
    };
    /** A classic subscription was registered, or an mm switched to interval mode (`sub` 0). */
    'mmn.register': {
      /** The mm id. */
      mm: number;
      /** Subscription id (0 for the interval-mode switch). */
      sub: number;
      /** The ops' name. */
      name: string;
      /** `'list'` or `'itree'`. */
      kind: string;
    };
    /** `mmu_notifier_unregister` returned. */
    'mmn.unregister': {
      /** The mm id. */
      mm: number;
      /** Subscription id. */
      sub: number;
      /** The ops' name. */
      name: string;
      /** Always `'list'`. */
      kind: string;
    };
    /** `mmu_notifier_get` found an existing subscription. */
    'mmn.get': {
      /** The mm id. */
      mm: number;
      /** Subscription id. */
      sub: number;
      /** Users after the get. */
      users: number;
    };
    /** `mmu_notifier_put` dropped a user. */
    'mmn.put': {
      /** The mm id. */
      mm: number;
      /** Subscription id. */
      sub: number;
      /** Users after the put. */
      users: number;
    };
    /** The SRCU callback of the last put ran `free_notifier`. */
    'mmn.free': {
      /** The mm id. */
      mm: number;
      /** Subscription id. */
      sub: number;
      /** The ops' name. */
      name: string;
    };
    /** A subscriber callback returned. */
    'mmn.callback': {
      /** The mm id. */
      mm: number;
      /** Subscription id. */
      sub: number;
      /** The ops' name. */
      name: string;
      /** `'invalidate'` (interval), `'invalidate_range_start'`, `'invalidate_range_end'`, `'release'`. */
      op: string;
      /** The range's identity (0 for release). */
      range: number;
      /** `cur_seq` for interval invalidates, else 0. */
      seq: number;
      /** The result (1/0 for interval invalidate, the errno for start). */
      result: number;
    };
    /** The interval machinery's counters changed. */
    'mmn.itree.state': {
      /** The mm id. */
      mm: number;
      /** `invalidate_seq`. */
      seq: number;
      /** `active_invalidate_ranges`. */
      active: number;
      /** `'idle'`, `'partial'` or `'full'`. */
      state: string;
    };
    /** An interval subscription was inserted (or queued for insertion). */
    'mmn.interval.insert': {
      /** The mm id. */
      mm: number;
      /** Subscription id. */
      sub: number;
      /** The ops' name. */
      name: string;
      /** First address. */
      start: number;
      /** Last address (inclusive). */
      last: number;
      /** The subscription's initial seq. */
      seq: number;
      /** True if the insert was deferred (tree frozen). */
      deferred: boolean;
    };
    /** An interval subscription was removed (or its removal deferred). */
    'mmn.interval.remove': {
      /** The mm id. */
      mm: number;
      /** Subscription id. */
      sub: number;
      /** The ops' name. */
      name: string;
      /** True if the removal waits for the Full period to end. */
      deferred: boolean;
    };
    /** A deferred insert or remove was applied at the end of a Full period. */
    'mmn.deferred.apply': {
      /** The mm id. */
      mm: number;
      /** Subscription id. */
      sub: number;
      /** `'insert'` or `'remove'`. */
      op: string;
    };
    /** `mmu_interval_read_begin` returned. */
    'mmn.read_begin': {
      /** The mm id. */
      mm: number;
      /** Subscription id. */
      sub: number;
      /** The sequence returned. */
      seq: number;
      /** True if it slept first. */
      waited: boolean;
    };
    /** `mmu_interval_read_retry` was evaluated. */
    'mmn.read_retry': {
      /** The mm id. */
      mm: number;
      /** Subscription id. */
      sub: number;
      /** The sequence from read_begin. */
      seq: number;
      /** True: a collision, retry. */
      retry: boolean;
    };
    /** `mmu_interval_set_seq` was called. */
    'mmn.set_seq': {
      /** The mm id. */
      mm: number;
      /** Subscription id. */
      sub: number;
      /** The (odd) sequence stored. */
      seq: number;
    };
    /** A task sleeps until the Full period ends. */
    'mmn.wait': {
      /** The mm id. */
      mm: number;
      /** Subscription id. */
      sub: number;
      /** The sequence it waits to change. */
      seq: number;
      /** `'read_begin'` or `'remove'`. */
      why: string;
    };
    /** The end of a Full period woke sleepers. */
    'mmn.wake': {
      /** The mm id. */
      mm: number;
      /** The new (even) sequence. */
      seq: number;
      /** How many were woken. */
      woken: number;
    };
    /** A secondary MMU created a translation. */
    'smmu.map': {
      /** The secondary MMU's name. */
      mmu: string;
      /** The mm id. */
      mm: number;
      /** Virtual address. */
      va: number;
      /** Frame. */
      pfn: number;
      /** Frame generation when mapped. */
      gen: number;
      /** Writable translation. */
      writable: boolean;
    };
    /** A secondary MMU removed a translation. */
    'smmu.unmap': {
      /** The secondary MMU's name. */
      mmu: string;
      /** The mm id. */
      mm: number;
      /** Virtual address. */
      va: number;
    };
    /** A device accessed memory through a secondary translation. */
    'smmu.access': {
      /** The secondary MMU's name. */
      mmu: string;
      /** The mm id. */
      mm: number;
      /** Virtual address. */
      va: number;
      /** Frame reached. */
      pfn: number;
      /** Frame generation the translation was made with. */
      gen: number;
      /** True for a write. */
      write: boolean;
    };
  }
}

export {};
