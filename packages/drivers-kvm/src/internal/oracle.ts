import type { Oracle, OracleContext, SimEvent } from '@mmnsim/core';
import { Pte, pteFlags, ptePfn, ptePresent } from '@mmnsim/mm';
import type { MmStruct } from '@mmnsim/mm';
import type { KvmService } from './service.js';
import { isShadowPresent, sptePfn } from './spte.js';
import { SPTES_PER_TABLE } from './tdp-mmu.js';

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/**
 * The rules KVM's MMU-notifier protocol must keep (users-and-hardware.md §1, §7), checked
 * against the host page tables and KVM's own bookkeeping. Contributed by the `kvm` plugin
 * (option `oracle`, default on). Reported kinds:
 *
 * - `kvm-stale-spte`: the fault path installed an SPTE to a frame the host PTE no longer maps
 *   (or a writable SPTE where the host PTE is read-only): its GUP result went stale between the
 *   `mmu_invalidate_seq` snapshot and the install, and `is_page_fault_stale` did not notice —
 *   the snapshot must be taken before GUP and checked under `mmu_lock`;
 * - `kvm-spte-in-invalidation`: an SPTE was installed for a gfn inside the range of an
 *   invalidation still in progress (between start and end): the staleness check must test the
 *   in-progress range, since the seq only moves at end;
 * - `kvm-tlb-survived-start`: when `invalidate_range_start` returned, a vCPU could still use a
 *   guest TLB entry for the range: the remote TLB flush (with IPIs to vCPUs in guest mode and
 *   lockless walkers, waited for) must complete before start returns;
 * - `kvm-spte-survived-start`: when start returned, an SPTE of the range was still present;
 * - `kvm-stale-access`: a guest load or store went through a translation (SPTE or guest TLB
 *   entry) to a frame the host PTE no longer maps there — a stale translation was used, whether
 *   or not the frame was freed yet.
 *
 * The rest is reported by the model itself: `kvm-bug-spte-pfn-change` (KVM's BUG() in
 * `handle_changed_spte`), `kvm-walk-freed-table`, `kvm-ad-writeback-freed-page`,
 * `kvm-bug-in-progress-negative` and the WARNs.
 *
 * ## Example
 * ```ts
 * const sim = Simulation.create({ seed: 1, plugins: [mmPlugin(), kvmPlugin()] }); // attached
 * const sim2 = Simulation.create({ seed: 1, plugins: [mmPlugin(), kvmPlugin({ oracle: false })] });
 * sim2.addOracle(new KvmOracle(sim2.get(KvmService))); // by hand
 * ```
 */
export class KvmOracle implements Oracle {
  /** See {@link Oracle.id}. */
  readonly id = 'kvm';

  /**
   * @param kvm the KVM service whose VMs are checked.
   * @param enabled false makes `attach` a no-op (the plugin's `oracle: false`).
   */
  constructor(
    private readonly kvm: KvmService,
    private readonly enabled = true,
  ) {}

  /** See {@link Oracle.attach}. */
  attach(ctx: OracleContext): void {
    if (!this.enabled) return;
    const bus = ctx.bus;
    bus.on('kvm.spte.map').subscribe((e) => this.onMap(ctx, e));
    bus.on('smmu.access').subscribe((e) => {
      if (e.data.mmu === this.kvm.name) this.onAccess(ctx, e);
    });
    bus.on('mmn.invalidate_start').subscribe((e) => this.onStart(ctx, e));
  }

  private mmOf(id: number): MmStruct | undefined {
    return this.kvm.core.mms.get(id);
  }

  /** Why the host no longer maps `pfn` at `va` (writable, for `write`), or null if it does. */
  private hostMismatch(mmId: number, va: number, pfn: number, write: boolean): string | null {
    const mm = this.mmOf(mmId);
    if (mm === undefined || mm.exited) return `mm#${mmId} has no address space any more`;
    const pte = this.kvm.core.pt.pte(mm, va);
    if (!ptePresent(pte)) return `the host PTE at ${hex(va)} is not present`;
    if (ptePfn(pte) !== pfn) return `the host PTE at ${hex(va)} maps frame ${ptePfn(pte)}`;
    if (write && (pteFlags(pte) & Pte.WRITE) === 0)
      return `the host PTE at ${hex(va)} is read-only`;
    return null;
  }

  private frameState(pfn: number, gen: number): string {
    const phys = this.kvm.core.phys;
    if (phys.isFree(pfn)) return ` (frame ${pfn} is free)`;
    if (phys.generation[pfn] !== gen) return ` (frame ${pfn} was freed and reallocated)`;
    return '';
  }

  private onMap(ctx: OracleContext, e: SimEvent<'kvm.spte.map'>): void {
    const d = e.data;
    const vm = this.kvm.vm(d.vm);
    if (
      vm !== undefined &&
      vm.mmuInvalidateInProgress > 0 &&
      d.gfn >= vm.mmuInvalidateRangeStart &&
      d.gfn < vm.mmuInvalidateRangeEnd
    ) {
      ctx.report({
        kind: 'kvm-spte-in-invalidation',
        message: `${vm.label} installed an SPTE for gfn ${hex(d.gfn)} → frame ${d.pfn} while an invalidation covering gfns [${hex(vm.mmuInvalidateRangeStart)}, ${hex(vm.mmuInvalidateRangeEnd)}) is in progress (mmu_invalidate_in_progress ${vm.mmuInvalidateInProgress}): is_page_fault_stale must retry a fault on a gfn inside the in-progress range, because mmu_invalidate_seq moves only at invalidate_range_end`,
        evidence: [e.seq],
      });
      return;
    }
    const why = this.hostMismatch(d.mm, d.hva, d.pfn, d.writable);
    if (why === null) return;
    ctx.report({
      kind: 'kvm-stale-spte',
      message: `${vm?.label ?? `VM ${d.vm}`} installed ${d.writable ? 'a writable' : 'an'} SPTE for gfn ${hex(d.gfn)} → frame ${d.pfn}${this.frameState(d.pfn, d.gen)}, but ${why}: the page GUP returned was invalidated after the fault's mmu_invalidate_seq snapshot and the fault did not retry — the snapshot must be taken before GUP and compared under mmu_lock (is_page_fault_stale)`,
      evidence: [e.seq],
    });
  }

  private onAccess(ctx: OracleContext, e: SimEvent<'smmu.access'>): void {
    const d = e.data;
    const why = this.hostMismatch(d.mm, d.va, d.pfn, d.write);
    if (why === null) return;
    ctx.report({
      kind: 'kvm-stale-access',
      message: `a guest ${d.write ? 'store' : 'load'} at host address ${hex(d.va)} of mm#${d.mm} went to frame ${d.pfn}${this.frameState(d.pfn, d.gen)} through a KVM translation (SPTE or guest TLB entry), but ${why}: a translation survived the invalidation that replaced it`,
      evidence: [e.seq],
    });
  }

  private onStart(ctx: OracleContext, e: SimEvent<'mmn.invalidate_start'>): void {
    const d = e.data;
    if (d.result !== 0) return;
    for (const vm of this.kvm.vms) {
      if (vm.mm.id !== d.mm || !vm.notifier.hashed) continue;
      for (const v of vm.vcpus) {
        if (!v.tlbLive()) continue;
        for (const [gfn, t] of v.tlb) {
          if (t.hva < d.start || t.hva >= d.end) continue;
          ctx.report({
            kind: 'kvm-tlb-survived-start',
            message: `invalidate_range_start(${d.event} [${hex(d.start)}, ${hex(d.end)})) returned while ${vm.label}/vcpu${v.id} (mode ${v.mode}) can still use its guest TLB entry gfn ${hex(gfn)} → frame ${t.pfn}: KVM must complete the remote TLB flush (KVM_REQ_TLB_FLUSH with IPIs, waited for) before start returns, since the pages may be freed before end`,
            evidence: [e.seq],
          });
          return;
        }
      }
      for (const t of vm.tdp.tables.values()) {
        for (let i = 0; i < SPTES_PER_TABLE; i++) {
          const s = t.sptes[i]!;
          if (!isShadowPresent(s) || t.hvas[i]! < d.start || t.hvas[i]! >= d.end) continue;
          ctx.report({
            kind: 'kvm-spte-survived-start',
            message: `invalidate_range_start(${d.event} [${hex(d.start)}, ${hex(d.end)})) returned while ${vm.label} still has an SPTE for gfn ${hex(t.block * SPTES_PER_TABLE + i)} → frame ${sptePfn(s)}: start must zap every SPTE of the range (kvm_unmap_gfn_range)`,
            evidence: [e.seq],
          });
          return;
        }
      }
    }
  }
}
