/**
 * The kvm package's event types, merged into core's SimEventMap. `vm` is the VM's id, `vcpu` a
 * vCPU index, `mm` the host mm id; guest frames (`gfn`) and host addresses (`hva`) are numbers.
 */
declare module '@mmnsim/core' {
  interface SimEventMap {
    /** A VM was created and its MMU notifier registered on its process's mm. */
    'kvm.vm.create': {
      /** The VM's id. */
      vm: number;
      /** Its name. */
      name: string;
      /** The host mm id. */
      mm: number;
      /** Number of vCPUs. */
      vcpus: number;
    };
    /** A VM was destroyed (`kvm_destroy_vm`). */
    'kvm.vm.destroy': {
      /** The VM's id. */
      vm: number;
    };
    /** A memslot set was published (`kvm_swap_active_memslots`). */
    'kvm.memslot': {
      /** The VM's id. */
      vm: number;
      /** The slot id. */
      slot: number;
      /** `'create'`, `'delete'`, `'move'`, `'flags'` or `'invalidate'` (the INVALID copy of a delete or move). */
      op: string;
      /** First guest frame. */
      baseGfn: number;
      /** Pages. */
      npages: number;
      /** First host address. */
      hva: number;
      /** Slot flags. */
      flags: number;
      /** Generation of the published set. */
      generation: number;
    };
    /** The fault path installed a leaf SPTE. */
    'kvm.spte.map': {
      /** The VM's id. */
      vm: number;
      /** The host mm id. */
      mm: number;
      /** Guest frame. */
      gfn: number;
      /** Host address the gfn had in its memslot. */
      hva: number;
      /** Frame. */
      pfn: number;
      /** Frame generation at GUP time. */
      gen: number;
      /** Writable SPTE. */
      writable: boolean;
      /** The faulting vCPU. */
      vcpu: number;
    };
    /** A present leaf SPTE was zapped (after its frozen phase, for a zap under the read lock). */
    'kvm.spte.zap': {
      /** The VM's id. */
      vm: number;
      /** Guest frame. */
      gfn: number;
      /** Host address. */
      hva: number;
      /** Frame it pointed at. */
      pfn: number;
      /** It was dirty: the page was marked dirty. */
      dirty: boolean;
      /** It was accessed: the page was marked accessed. */
      accessed: boolean;
    };
    /** A zap under the read lock froze an SPTE (`FROZEN_SPTE`) until its TLB flush completes. */
    'kvm.spte.freeze': {
      /** The VM's id. */
      vm: number;
      /** Guest frame. */
      gfn: number;
    };
    /** `kvm_mmu_notifier_invalidate_range_start` returned. */
    'kvm.invalidate.start': {
      /** The VM's id. */
      vm: number;
      /** First host address. */
      start: number;
      /** Exclusive end. */
      end: number;
      /** A memslot overlapped (mmu_lock was taken and `in_progress` incremented). */
      found: boolean;
      /** `mmu_invalidate_in_progress` after the call. */
      inProgress: number;
      /** `mmu_invalidate_seq`. */
      seq: number;
      /** `mmu_invalidate_range_start` (gfn; -1 when unset). */
      rangeStart: number;
      /** `mmu_invalidate_range_end` (gfn; -1 when unset). */
      rangeEnd: number;
      /** SPTEs zapped. */
      zapped: number;
    };
    /** `kvm_mmu_notifier_invalidate_range_end` returned. */
    'kvm.invalidate.end': {
      /** The VM's id. */
      vm: number;
      /** First host address. */
      start: number;
      /** Exclusive end. */
      end: number;
      /** A memslot overlapped. */
      found: boolean;
      /** `mmu_invalidate_in_progress` after the call. */
      inProgress: number;
      /** `mmu_invalidate_seq` after the call. */
      seq: number;
    };
    /** A guest page fault (EPT violation) was handled. */
    'kvm.fault': {
      /** The VM's id. */
      vm: number;
      /** The vCPU. */
      vcpu: number;
      /** Guest physical address. */
      gpa: number;
      /** Write access. */
      write: boolean;
      /** `'fixed'`, `'spurious'`, `'retry'`, `'efault'`, `'mmio'`, `'dead'` or `'bug'`. */
      result: string;
      /** `'fast'` (lockless fix-up) or `'slow'`; for a retry, why (`'seq'`, `'range'`, `'precheck'`, `'frozen'`, `'cmpxchg'`, `'invalid-slot'`). */
      why: string;
    };
    /** The lockless pre-check of the fault path (`mmu_invalidate_retry_gfn_unsafe`) read the counters. */
    'kvm.precheck': {
      /** The VM's id. */
      vm: number;
      /** The vCPU. */
      vcpu: number;
      /** Guest frame. */
      gfn: number;
      /** `mmu_invalidate_in_progress` as read (first). */
      inProgress: number;
      /** `mmu_invalidate_seq` as read (after the read barrier). */
      seq: number;
      /** The fault's snapshot of the seq. */
      snapshot: number;
      /** The verdict. */
      retry: boolean;
    };
    /** `kvm_flush_remote_tlbs`: KVM_REQ_TLB_FLUSH made on every vCPU; IPIs sent to `ipis`. */
    'kvm.flush': {
      /** The VM's id. */
      vm: number;
      /** CPUs that got the IPI (the sender waits for each to acknowledge). */
      ipis: number[];
      /** Modes of the vCPUs when the request was made, by vCPU index. */
      modes: string[];
    };
    /** Every IPI of a remote TLB flush was acknowledged: the flush returns. */
    'kvm.flush.done': {
      /** The VM's id. */
      vm: number;
    };
    /** An IPI (or kick) reached a CPU: a vCPU in guest mode there exits. */
    'kvm.ipi': {
      /** The VM's id. */
      vm: number;
      /** The CPU. */
      cpu: number;
    };
    /** A vCPU entered guest mode. */
    'kvm.vcpu.enter': {
      /** The VM's id. */
      vm: number;
      /** The vCPU. */
      vcpu: number;
    };
    /** A vCPU left guest mode (a VM exit). */
    'kvm.vcpu.exit': {
      /** The VM's id. */
      vm: number;
      /** The vCPU. */
      vcpu: number;
      /** `'ept-violation'`, `'external-interrupt'`, `'hlt'`, `'done'`. */
      reason: string;
    };
    /** A halted vCPU blocked (`kvm_vcpu_halt`) or woke up. */
    'kvm.vcpu.halt': {
      /** The VM's id. */
      vm: number;
      /** The vCPU. */
      vcpu: number;
      /** True when it blocks, false when it wakes. */
      blocked: boolean;
    };
    /** A vCPU flushed its guest TLB (KVM_REQ_TLB_FLUSH serviced before entry). */
    'kvm.tlb.flush': {
      /** The VM's id. */
      vm: number;
      /** The vCPU. */
      vcpu: number;
      /** Entries dropped. */
      entries: number;
    };
    /** The hardware walked an SPTE and filled a vCPU's guest TLB. */
    'kvm.tlb.fill': {
      /** The VM's id. */
      vm: number;
      /** The vCPU. */
      vcpu: number;
      /** Guest frame. */
      gfn: number;
      /** Frame. */
      pfn: number;
      /** The walk set the SPTE's accessed bit. */
      setAccessed: boolean;
    };
    /** TDP page-table pages were freed (after the TLB flush that followed their unlinking). */
    'kvm.sp.free': {
      /** The VM's id. */
      vm: number;
      /** Number of table pages. */
      tables: number;
    };
  }
}

export {};
