import type { RandomStream, Task } from '@mmnsim/core';
import type { MmStruct } from '@mmnsim/mm';
import type { TlbReplacement } from './options.js';

/** Dynamic ASIDs per CPU (`TLB_NR_DYN_ASIDS`): the mms whose entries a CPU keeps tagged at once. */
export const TLB_NR_DYN_ASIDS = 6;

/** Tag of global entries (they match every ASID). */
export const GLOBAL_TAG = 7;

/** Bits of a TLB entry beyond its frame. */
export const EntryBit = {
  /** Writable (R/W of the PTE at fill time). */
  WRITE: 1,
  /** Dirty as cached: a store through an entry without it walks again to set the PTE's D bit. */
  DIRTY: 2,
  /** Global (`_PAGE_GLOBAL`): not flushed by a PCID or CR3 flush. */
  GLOBAL: 4,
  /** Accessed as the walk left the PTE (always, except after a speculative walk of an old PTE). */
  ACCESSED: 8,
} as const;

/**
 * Why an entry is stale (set when its PTE changes, for the oracle): `ANY` — the PTE no longer
 * maps its frame, every access through it is wrong once the covering flush completed; `WRITE` —
 * the PTE lost its write or dirty bit, only stores through it are wrong.
 */
export const Stale = { NONE: 0, ANY: 1, WRITE: 2 } as const;

/** One paging-structure-cache entry: an upper-level entry's target table, as it was cached. */
export interface PscEntry {
  /** Frame of the lower table it points at. */
  readonly pfn: number;
  /** That frame's allocation generation when it was cached. */
  readonly gen: number;
  /** Scheduler step when it was cached. */
  readonly step: number;
  /** The mm whose walk cached it. */
  readonly mm: number;
}

/**
 * One CPU's TLB hardware and its `cpu_tlbstate`: a set-associative TLB whose entries are tagged
 * with an ASID (0..5) or {@link GLOBAL_TAG}, a small paging-structure cache (upper-level entries
 * by PCID), the loaded mm, the current ASID, lazy mode, and the 6 ASID slots
 * (`ctxs[].ctx_id`/`tlb_gen`).
 *
 * Entries live in parallel typed arrays (index = set * ways + way) so that a hit costs a few
 * array reads; each one also keeps the evidence the stale-TLB oracle reports: when it was filled,
 * the PTE change that made it stale, and the flush that should have removed it.
 *
 * Context: plain functions, called by the TLB model with the CPU's "interrupts off" (inside one
 * step).
 */
export class CpuTlb {
  /** `cpu_tlbstate.loaded_mm` (null: init_mm). */
  loadedMm: MmStruct | null = null;
  /** `cpu_tlbstate.loaded_mm_asid`. */
  asid = 0;
  /** `cpu_tlbstate_shared.is_lazy`. */
  lazy = false;
  /** `cpu_tlbstate.next_asid`. */
  nextAsid = 1;
  /** `cpu_tlbstate.ctxs[].ctx_id` (0: never used). */
  readonly ctxId = new Float64Array(TLB_NR_DYN_ASIDS);
  /** `cpu_tlbstate.ctxs[].tlb_gen`. */
  readonly ctxGen = new Float64Array(TLB_NR_DYN_ASIDS);
  /** The task last seen running here (context switches are applied when the CPU is next looked at). */
  task: Task | null = null;
  /** That task's mm when last seen (null: a kernel task). */
  taskMm: MmStruct | null = null;

  /** Sets. */
  readonly sets: number;
  /** Ways per set. */
  readonly ways: number;
  /** `vpn * 8 + asid tag`, or -1 for an invalid entry. */
  readonly tag: Float64Array;
  /** Frame. */
  readonly pfn: Float64Array;
  /** The frame's allocation generation at fill time. */
  readonly gen: Uint32Array;
  /** {@link EntryBit}s. */
  readonly bits: Uint8Array;
  /** Replacement stamp (last use for LRU, fill for FIFO). */
  readonly stamp: Float64Array;
  /** The mm id the entry was filled for. */
  readonly mm: Float64Array;
  /** Model tick of the fill (identifies this fill). */
  readonly fillTick: Float64Array;
  /** Event seq of the fill (-1 when not recorded). */
  readonly fillSeq: Float64Array;
  /** Step of the fill. */
  readonly fillStep: Float64Array;
  /** {@link Stale} mark. */
  readonly stale: Uint8Array;
  /** Seq of the PTE change that made it stale. */
  readonly staleSeq: Float64Array;
  /** Step of that change. */
  readonly staleStep: Float64Array;
  /** The PTE before that change. */
  readonly staleOld: Float64Array;
  /** The PTE after that change. */
  readonly staleNew: Float64Array;
  /** {@link Stale} kind once a flush that should have removed it completed (0 before). */
  readonly poison: Uint8Array;
  /** Seq of that flush's completion event (-1 when not recorded). */
  readonly flushSeq: Float64Array;
  /** Step of that completion. */
  readonly flushStep: Float64Array;
  /** 1 once a violation was reported for this fill. */
  readonly reported: Uint8Array;
  /** Paging-structure cache: key (prefix, level, asid) → entry, oldest first. */
  readonly psc = new Map<number, PscEntry>();
  private clock = 0;

  /**
   * @param index the CPU number.
   * @param entries TLB capacity.
   * @param ways associativity (capped at `entries`).
   * @param replacement replacement policy.
   * @param pscEntries paging-structure-cache capacity.
   * @param random the stream random replacement draws from.
   */
  constructor(
    readonly index: number,
    entries: number,
    ways: number,
    readonly replacement: TlbReplacement,
    readonly pscEntries: number,
    private readonly random: RandomStream,
  ) {
    this.ways = Math.min(ways, entries);
    this.sets = entries / this.ways;
    this.tag = new Float64Array(entries).fill(-1);
    this.pfn = new Float64Array(entries);
    this.gen = new Uint32Array(entries);
    this.bits = new Uint8Array(entries);
    this.stamp = new Float64Array(entries);
    this.mm = new Float64Array(entries);
    this.fillTick = new Float64Array(entries);
    this.fillSeq = new Float64Array(entries);
    this.fillStep = new Float64Array(entries);
    this.stale = new Uint8Array(entries);
    this.staleSeq = new Float64Array(entries);
    this.staleStep = new Float64Array(entries);
    this.staleOld = new Float64Array(entries);
    this.staleNew = new Float64Array(entries);
    this.poison = new Uint8Array(entries);
    this.flushSeq = new Float64Array(entries);
    this.flushStep = new Float64Array(entries);
    this.reported = new Uint8Array(entries);
  }

  /** The index of the entry for `vpn` tagged `asidTag`, or -1. */
  find(vpn: number, asidTag: number): number {
    const ways = this.ways;
    const base = (vpn % this.sets) * ways;
    const want = vpn * 8 + asidTag;
    const tag = this.tag;
    for (let i = base, end = base + ways; i < end; i++) if (tag[i] === want) return i;
    return -1;
  }

  /** Marks entry `i` used (LRU). */
  touch(i: number): void {
    if (this.replacement === 'lru') this.stamp[i] = ++this.clock;
  }

  /**
   * The entry a fill of `vpn` goes to: an invalid way of its set, else the victim of the
   * replacement policy. The caller overwrites it.
   */
  victim(vpn: number): number {
    const ways = this.ways;
    const base = (vpn % this.sets) * ways;
    const tag = this.tag;
    for (let i = base, end = base + ways; i < end; i++) if (tag[i] === -1) return i;
    if (this.replacement === 'random') return base + this.random.int(0, ways - 1);
    let best = base;
    const stamp = this.stamp;
    for (let i = base + 1, end = base + ways; i < end; i++) if (stamp[i]! < stamp[best]!) best = i;
    return best;
  }

  /** Writes a fresh entry at `i` (evidence and marks reset). */
  install(
    i: number,
    vpn: number,
    asidTag: number,
    pfn: number,
    gen: number,
    bits: number,
    mm: number,
    tick: number,
    seq: number,
    step: number,
  ): void {
    this.tag[i] = vpn * 8 + asidTag;
    this.pfn[i] = pfn;
    this.gen[i] = gen;
    this.bits[i] = bits;
    this.stamp[i] = ++this.clock;
    this.mm[i] = mm;
    this.fillTick[i] = tick;
    this.fillSeq[i] = seq;
    this.fillStep[i] = step;
    this.stale[i] = 0;
    this.poison[i] = 0;
    this.reported[i] = 0;
  }

  /** Invalidates entry `i`. */
  invalidate(i: number): void {
    this.tag[i] = -1;
    this.stale[i] = 0;
    this.poison[i] = 0;
  }

  /**
   * A full flush of one PCID (a CR3 write without NOFLUSH, `flush_tlb_local`): every non-global
   * entry tagged `asid`, and that PCID's paging-structure cache. Returns the entries removed.
   */
  flushAsid(asid: number): number {
    const tag = this.tag;
    let n = 0;
    for (let i = 0; i < tag.length; i++) {
      const t = tag[i]!;
      if (t >= 0 && t % 8 === asid) {
        this.invalidate(i);
        n++;
      }
    }
    this.pscDropAsid(asid);
    return n;
  }

  /**
   * INVLPG of `vpn` in PCID `asid`: its entry and a global entry for the address. Like the
   * instruction, it also drops every paging-structure-cache entry of the PCID, whatever its
   * address. Returns the entries removed.
   */
  flushPage(vpn: number, asid: number): number {
    let n = 0;
    const a = this.find(vpn, asid);
    if (a >= 0) {
      this.invalidate(a);
      n++;
    }
    const g = this.find(vpn, GLOBAL_TAG);
    if (g >= 0) {
      this.invalidate(g);
      n++;
    }
    return n;
  }

  /** Valid entries tagged `asid` (or every valid entry with -1). */
  count(asid = -1): number {
    let n = 0;
    for (const t of this.tag) if (t >= 0 && (asid < 0 || t % 8 === asid)) n++;
    return n;
  }

  // --- paging-structure cache ----------------------------------------------------------------

  /**
   * Key of the cached upper-level entry that maps `va` to a table of `level` (0: a PTE table,
   * cached from the PMD entry; 1: a PMD table; 2: a PUD table) in PCID `asid`.
   */
  static pscKey(va: number, level: number, asid: number): number {
    const prefix = Math.floor(va / 2 ** (21 + 9 * level));
    return (prefix * 3 + level) * 8 + asid;
  }

  /** Caches an upper-level entry (evicting the oldest when full). */
  pscSet(key: number, e: PscEntry): void {
    if (this.pscEntries === 0) return;
    const psc = this.psc;
    psc.delete(key);
    if (psc.size >= this.pscEntries) {
      const oldest = psc.keys().next();
      if (oldest.done !== true) psc.delete(oldest.value);
    }
    psc.set(key, e);
  }

  /** Drops every paging-structure-cache entry of PCID `asid`. */
  pscDropAsid(asid: number): void {
    for (const k of this.psc.keys()) if (k % 8 === asid) this.psc.delete(k);
  }

  /** Drops the paging-structure-cache entries that would translate `va` in PCID `asid` (a page fault does). */
  pscDropVa(va: number, asid: number): void {
    for (let level = 0; level < 3; level++) this.psc.delete(CpuTlb.pscKey(va, level, asid));
  }
}
