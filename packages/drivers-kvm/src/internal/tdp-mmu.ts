import type { Kernel, TaskGen } from '@mmnsim/core';
import { Frame, PhysMem } from '@mmnsim/mm';
import type { MmStruct, SecondaryMapping, SecondaryMmuEvents } from '@mmnsim/mm';
import {
  describeSpte,
  isAccessed,
  isDirty,
  isShadowPresent,
  isWritable,
  markForAccessTrack,
  SPTE_NONPRESENT,
  sptePfn,
} from './spte.js';

/** Entries of one TDP page-table page (`SPTE_ENT_PER_PAGE`). */
export const SPTES_PER_TABLE = 512;

/**
 * One leaf page-table page of the TDP MMU (`struct kvm_mmu_page` at level 1): the SPTEs of 512
 * consecutive guest frames, with, per entry, the host address the gfn had in its memslot and
 * the frame's allocation generation when the SPTE was made (for the oracles). The upper levels
 * of the tree are folded into the root's map from block number to table.
 *
 * A table unlinked by a zap of the whole root is freed only after the TLB flush that follows
 * (the kernel frees it from an RCU callback); a lockless walker that still reads it afterwards
 * reads freed memory, which `freed` makes visible.
 *
 * @see struct kvm_mmu_page
 */
export interface SpTable {
  /** Identity, for events. */
  readonly id: number;
  /** `gfn >> 9` of its first entry. */
  readonly block: number;
  /** The SPTEs. */
  readonly sptes: Float64Array;
  /** Host address of each entry's gfn when its SPTE was made. */
  readonly hvas: Float64Array;
  /** Frame generation of each entry's pfn when its SPTE was made. */
  readonly gens: Uint32Array;
  /** True once freed (after the flush that followed its unlinking). */
  freed: boolean;
}

/** What the TDP MMU needs from its VM. */
export interface TdpHost {
  /** The VM's id, for events. */
  readonly id: number;
  /** The kernel services. */
  readonly kernel: Kernel;
  /** Physical memory of the host. */
  readonly phys: PhysMem;
  /** The host mm the VM's memory belongs to. */
  readonly mm: MmStruct;
  /** EPT A/D bits enabled. */
  readonly adBits: boolean;
  /** The secondary-MMU events (`smmu.*`) of KVM. */
  readonly events: SecondaryMmuEvents;
}

/** What a zap loop did. */
export interface ZapResult {
  /** A remote TLB flush is still needed. */
  readonly flush: boolean;
  /** Present leaf SPTEs zapped. */
  readonly zapped: number;
}

/**
 * The TDP MMU of one VM (`arch/x86/kvm/mmu/tdp_mmu.c`, one root, 4 KiB leaves): the SPTEs per
 * guest frame, the changes every SPTE write goes through (`handle_changed_spte`), zapping with
 * and without yielding, zapping the whole root, and aging.
 *
 * Locking is the VM's business: the fault path and shared zaps hold `mmu_lock` for read and
 * change SPTEs with (modelled) cmpxchg; notifier zaps hold it for write; aging and the fast page
 * fault path are lockless. Every method that does not yield is one atomic step.
 *
 * @see arch/x86/kvm/mmu/tdp_mmu.c
 */
export class TdpMmu {
  /** The root: leaf tables by block number (`gfn >> 9`). */
  readonly tables = new Map<number, SpTable>();
  private nextTableId = 1;

  /** @param host the VM. */
  constructor(private readonly host: TdpHost) {}

  /** The SPTE of `gfn` (none if its table does not exist). */
  lookup(gfn: number): number {
    const t = this.tables.get(Math.floor(gfn / SPTES_PER_TABLE));
    return t === undefined ? SPTE_NONPRESENT : t.sptes[gfn % SPTES_PER_TABLE]!;
  }

  /**
   * The leaf table of `gfn`, linking a new one if needed (`tdp_mmu_link_sp`; its page comes
   * from the vCPU's memory cache, topped up before `mmu_lock` was taken).
   */
  linkTable(gfn: number): SpTable {
    const block = Math.floor(gfn / SPTES_PER_TABLE);
    let t = this.tables.get(block);
    if (t === undefined) {
      t = {
        id: this.nextTableId++,
        block,
        sptes: new Float64Array(SPTES_PER_TABLE),
        hvas: new Float64Array(SPTES_PER_TABLE),
        gens: new Uint32Array(SPTES_PER_TABLE),
        freed: false,
      };
      this.tables.set(block, t);
    }
    return t;
  }

  /**
   * Writes SPTE `index` of `t` and does the bookkeeping of `handle_changed_spte`: a present leaf
   * replaced by a present leaf with another pfn is KVM's BUG() — proof of a missing notifier —
   * and is refused (reported as `kvm-bug-spte-pfn-change`); a dirty or accessed leaf that goes
   * away marks its page dirty or accessed; a present leaf that goes away is reported unmapped.
   *
   * @returns false when the change was refused.
   * @see handle_changed_spte
   */
  setSpte(t: SpTable, index: number, spte: number, hva = -1, gen = 0): boolean {
    const old = t.sptes[index]!;
    const gfn = t.block * SPTES_PER_TABLE + index;
    if (!this.changed(gfn, old, spte, t.hvas[index]!, t.gens[index]!)) return false;
    t.sptes[index] = spte;
    if (hva >= 0) {
      t.hvas[index] = hva;
      t.gens[index] = gen;
    }
    return true;
  }

  /**
   * The bookkeeping of a change `old → spte` of `gfn`'s SPTE (after the write, for a frozen
   * zap). Returns false for the forbidden pfn change.
   */
  changed(gfn: number, old: number, spte: number, hva: number, gen: number): boolean {
    const h = this.host;
    const adBits = h.adBits;
    const was = isShadowPresent(old);
    const is = isShadowPresent(spte);
    if (!was) return true;
    const pfn = sptePfn(old);
    if (is && sptePfn(spte) !== pfn) {
      h.kernel.report(
        'kvm-bug-spte-pfn-change',
        `kernel BUG in handle_changed_spte: VM ${h.id} gfn 0x${gfn.toString(16)}: present leaf SPTE (${describeSpte(old)}) replaced by a present leaf to another frame (${describeSpte(spte)}); every pfn change must be zap + flush, then re-fault — a host PTE changed without an MMU-notifier invalidation reaching KVM`,
      );
      return false;
    }
    const dirty = isDirty(old, adBits) && (!is || !isDirty(spte, adBits));
    const accessed = isAccessed(old, adBits) && (!is || !isAccessed(spte, adBits));
    if (dirty || accessed) this.propagate(gfn, pfn, gen, dirty, accessed);
    if (!is) {
      const bus = h.kernel.bus;
      if (bus.wants('kvm.spte.zap'))
        bus.emit('kvm.spte.zap', { vm: h.id, gfn, hva, pfn, dirty, accessed });
      h.events.unmap(h.mm, hva);
    }
    return true;
  }

  /**
   * `kvm_set_pfn_dirty` / `kvm_set_pfn_accessed` for a leaf that goes away. The frame must still
   * be the one the SPTE was made for: a write-back of A/D bits to a freed frame is a
   * use-after-free (`kvm-ad-writeback-freed-page`) and is not done.
   */
  private propagate(gfn: number, pfn: number, gen: number, dirty: boolean, accessed: boolean) {
    const h = this.host;
    const phys = h.phys;
    if (pfn === PhysMem.ZERO_PFN) return;
    if (phys.isFree(pfn) || phys.generation[pfn] !== gen) {
      h.kernel.report(
        'kvm-ad-writeback-freed-page',
        `VM ${h.id} zapped gfn 0x${gfn.toString(16)} and would mark frame ${pfn} ${dirty ? 'dirty' : 'accessed'}, but that frame was freed${phys.isFree(pfn) ? '' : ' and reallocated'} while the SPTE still pointed at it: A/D write-back after the page was freed (use-after-free of struct page)`,
      );
      return;
    }
    if (dirty) phys.flags[pfn]! |= Frame.DIRTY;
    if (accessed) phys.flags[pfn]! |= Frame.REFERENCED;
  }

  /**
   * `tdp_mmu_zap_leafs` under `mmu_lock` held for write: clear every present leaf of
   * `[gfnStart, gfnEnd)`. With `canYield` (a blockable invalidation), after every `yieldEvery`
   * zapped SPTEs it calls `resched` (`tdp_mmu_iter_cond_resched`), which must flush a pending
   * flush before it drops the lock; `resched` returns whether the flush is still pending.
   *
   * @see tdp_mmu_zap_leafs
   */
  *zapLeafs(
    gfnStart: number,
    gfnEnd: number,
    canYield: boolean,
    flush: boolean,
    yieldEvery: number,
    resched: (flush: boolean) => TaskGen<boolean>,
  ): TaskGen<ZapResult> {
    let zapped = 0;
    let since = 0;
    const first = Math.floor(gfnStart / SPTES_PER_TABLE);
    const last = Math.floor((gfnEnd - 1) / SPTES_PER_TABLE);
    for (let b = first; b <= last; b++) {
      const from = Math.max(gfnStart, b * SPTES_PER_TABLE) - b * SPTES_PER_TABLE;
      const to = Math.min(gfnEnd, (b + 1) * SPTES_PER_TABLE) - b * SPTES_PER_TABLE;
      for (let i = from; i < to; i++) {
        let t = this.tables.get(b);
        if (t === undefined) break;
        if (!isShadowPresent(t.sptes[i]!)) continue;
        if (canYield && since >= yieldEvery) {
          flush = yield* resched(flush);
          since = 0;
          t = this.tables.get(b);
          if (t === undefined) break;
          if (!isShadowPresent(t.sptes[i]!)) continue;
        }
        this.setSpte(t, i, SPTE_NONPRESENT);
        flush = true;
        zapped++;
        since++;
      }
    }
    return { flush, zapped };
  }

  /**
   * Zaps every leaf and unlinks every table (`kvm_tdp_mmu_zap_all`); returns the unlinked
   * tables, which the caller frees after its TLB flush ({@link TdpMmu.freeTables}).
   *
   * @see kvm_tdp_mmu_zap_all
   */
  zapAll(): SpTable[] {
    const out: SpTable[] = [];
    for (const t of this.tables.values()) {
      for (let i = 0; i < SPTES_PER_TABLE; i++) {
        if (isShadowPresent(t.sptes[i]!)) this.setSpte(t, i, SPTE_NONPRESENT);
      }
      out.push(t);
    }
    this.tables.clear();
    return out;
  }

  /** Frees unlinked tables (`tdp_mmu_free_sp_rcu_callback`, after the flush and grace period). */
  freeTables(tables: readonly SpTable[]): void {
    if (tables.length === 0) return;
    for (const t of tables) t.freed = true;
    const h = this.host;
    const bus = h.kernel.bus;
    if (bus.wants('kvm.sp.free')) bus.emit('kvm.sp.free', { vm: h.id, tables: tables.length });
  }

  /**
   * `kvm_tdp_mmu_age_gfn_range` (`clear`) or `kvm_tdp_mmu_test_age_gfn` over
   * `[gfnStart, gfnEnd)`: true if a leaf was accessed. Clearing takes the accessed bit away with
   * an atomic bit clear (A/D bits), or — without A/D bits — marks the page dirty if the SPTE is
   * writable and then rewrites it in access-tracked form, so the next guest access faults. No
   * TLB flush: a cached translation may keep a page looking idle, which only makes aging
   * inaccurate. One atomic step, without `mmu_lock`.
   *
   * @see age_gfn_range
   */
  age(gfnStart: number, gfnEnd: number, clear: boolean): boolean {
    const h = this.host;
    const adBits = h.adBits;
    let young = false;
    const first = Math.floor(gfnStart / SPTES_PER_TABLE);
    const last = Math.floor((gfnEnd - 1) / SPTES_PER_TABLE);
    for (let b = first; b <= last; b++) {
      const t = this.tables.get(b);
      if (t === undefined) continue;
      const from = Math.max(gfnStart, b * SPTES_PER_TABLE) - b * SPTES_PER_TABLE;
      const to = Math.min(gfnEnd, (b + 1) * SPTES_PER_TABLE) - b * SPTES_PER_TABLE;
      for (let i = from; i < to; i++) {
        const spte = t.sptes[i]!;
        if (!isAccessed(spte, adBits)) continue;
        young = true;
        if (!clear) continue;
        if (!adBits && isWritable(spte)) {
          // The write permission goes away: keep the only trace of a write.
          this.propagate(b * SPTES_PER_TABLE + i, sptePfn(spte), t.gens[i]!, true, false);
        }
        t.sptes[i] = markForAccessTrack(spte, adBits);
      }
    }
    return young;
  }

  /** Every shadow-present leaf, as the oracles see translations. */
  *mappings(mm: MmStruct): Iterable<SecondaryMapping> {
    for (const t of this.tables.values()) {
      for (let i = 0; i < SPTES_PER_TABLE; i++) {
        const spte = t.sptes[i]!;
        if (!isShadowPresent(spte)) continue;
        yield {
          mm,
          va: t.hvas[i]!,
          pfn: sptePfn(spte),
          gen: t.gens[i]!,
          writable: isWritable(spte),
        };
      }
    }
  }

  /** Number of shadow-present leaves. */
  countPresent(): number {
    let n = 0;
    for (const t of this.tables.values())
      for (let i = 0; i < SPTES_PER_TABLE; i++) if (isShadowPresent(t.sptes[i]!)) n++;
    return n;
  }
}
