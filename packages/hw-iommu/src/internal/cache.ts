/**
 * The translation caches of the IOMMU model — the IOTLB, a device's ATC, the paging-structure
 * cache — as one bounded cache class, in its own file because the IOMMU unit and the devices
 * both hold instances and the oracles inspect them through the `SecondaryMmu` view.
 */
import type { Kernel } from '@mmnsim/core';
import { PAGE_SIZE, SecondaryMmuEvents } from '@mmnsim/mm';
import type { MmStruct, SecondaryMapping, SecondaryMmu } from '@mmnsim/mm';

/** One cached translation. */
export interface CacheEntry {
  /** `did * 2^21 + pasid + 1`: the (domain id, PASID) tag. */
  readonly tag: number;
  /** Domain id. */
  readonly did: number;
  /** PASID, -1 without. */
  readonly pasid: number;
  /** Page number of the input address (IOVA or process VA). */
  readonly vpn: number;
  /** The frame. */
  readonly pfn: number;
  /** `PhysMem.generation[pfn]` when the entry was made. */
  readonly gen: number;
  /** True if it allows writes. */
  readonly write: boolean;
  /** The mm whose page tables it was walked from (SVA), or null (DMA domain). */
  readonly mm: MmStruct | null;
  /** LRU stamp. */
  used: number;
  /** Fill stamp (from the clock shared by the caches of one simulation). */
  readonly stamp: number;
}

/** A cache entry with its links in the cache's LRU list (most recently used at the tail). */
interface LruEntry extends CacheEntry {
  prev: LruEntry | null;
  next: LruEntry | null;
}

/** The fill clock the caches of one simulation share (entries filled later have larger stamps). */
export interface FillClock {
  /** The last stamp given. */
  n: number;
}

/** The tag of (domain id, PASID). */
export function cacheTag(did: number, pasid: number): number {
  return did * 2 ** 21 + pasid + 1;
}

/**
 * A bounded translation cache tagged by (domain id, PASID, page), with least-recently-used
 * replacement: the IOTLB of an IOMMU (VT-d tags its entries by DID and PASID) or the ATC of an
 * ATS device. Entries walked from a process's page tables are reported as `smmu.*` events, so
 * the stale-mapping oracles of `@mmnsim/mm` check them; it is itself the {@link SecondaryMmu}
 * (kind `'tlb'`) they inspect.
 *
 * Context: every method is a plain, atomic function (hardware state).
 *
 * @see struct qi_desc (what invalidates it)
 */
export class TranslationCache implements SecondaryMmu {
  /** See {@link SecondaryMmu.kind}. */
  readonly kind = 'tlb' as const;
  private readonly tags = new Map<number, Map<number, LruEntry>>();
  private count = 0;
  private clock = 0;
  /**
   * Every entry in a doubly linked list, least recently used first: a hit moves its entry to
   * the tail without allocating (the hot path of every cached DMA access).
   */
  private head: LruEntry | null = null;
  private tail: LruEntry | null = null;
  private readonly ev: SecondaryMmuEvents;
  /** Hits, misses, evictions, fills and invalidated entries so far. */
  readonly stats: Record<'hits' | 'misses' | 'evictions' | 'fills' | 'invalidated', number> = {
    hits: 0,
    misses: 0,
    evictions: 0,
    fills: 0,
    invalidated: 0,
  };

  /**
   * @param kernel the kernel services.
   * @param name the cache's name in events (`'dmar0.iotlb'`, `'accel0.atc'`).
   * @param capacity entries it can hold.
   * @param fills the shared fill clock.
   */
  constructor(
    kernel: Kernel,
    readonly name: string,
    readonly capacity: number,
    private readonly fills: FillClock = { n: 0 },
  ) {
    this.ev = new SecondaryMmuEvents(kernel, name);
  }

  /** Entries held now. */
  get size(): number {
    return this.count;
  }

  /** The entry for (tag, vpn), touching it, or undefined. */
  lookup(tag: number, vpn: number): CacheEntry | undefined {
    const e = this.tags.get(tag)?.get(vpn);
    if (e === undefined) {
      this.stats.misses++;
      return undefined;
    }
    this.stats.hits++;
    e.used = ++this.clock;
    if (e !== this.tail) {
      this.unlink(e);
      this.append(e);
    }
    return e;
  }

  /** The entry for (tag, vpn) without touching it. */
  peek(tag: number, vpn: number): CacheEntry | undefined {
    return this.tags.get(tag)?.get(vpn);
  }

  /** Inserts (or replaces) a translation, evicting the least recently used entry when full. */
  fill(
    did: number,
    pasid: number,
    vpn: number,
    pfn: number,
    gen: number,
    write: boolean,
    mm: MmStruct | null,
  ): CacheEntry {
    const tag = cacheTag(did, pasid);
    let m = this.tags.get(tag);
    if (m === undefined) {
      m = new Map();
      this.tags.set(tag, m);
    }
    const old = m.get(vpn);
    if (old !== undefined) this.drop(m, old);
    else if (this.count >= this.capacity) this.evictLru();
    const e: LruEntry = {
      tag,
      did,
      pasid,
      vpn,
      pfn,
      gen,
      write,
      mm,
      used: ++this.clock,
      stamp: ++this.fills.n,
      prev: null,
      next: null,
    };
    m.set(vpn, e);
    this.append(e);
    this.count++;
    this.stats.fills++;
    if (mm !== null) this.ev.map(mm, vpn * PAGE_SIZE, pfn, gen, write);
    return e;
  }

  /**
   * Drops the entries of `tag` for pages `[vpn, vpn + pages)`; `pages` 0 drops every entry of the
   * tag. Returns how many were dropped.
   */
  invalidate(tag: number, vpn: number, pages: number): number {
    const m = this.tags.get(tag);
    if (m === undefined) return 0;
    let n = 0;
    if (pages === 0 || pages > m.size) {
      for (const e of [...m.values()]) {
        if (pages === 0 || (e.vpn >= vpn && e.vpn < vpn + pages)) {
          this.drop(m, e);
          n++;
        }
      }
    } else {
      for (let p = vpn; p < vpn + pages; p++) {
        const e = m.get(p);
        if (e !== undefined) {
          this.drop(m, e);
          n++;
        }
      }
    }
    if (m.size === 0) this.tags.delete(tag);
    this.stats.invalidated += n;
    return n;
  }

  /** Drops the entries of every tag of domain `did` (a domain-selective flush). */
  invalidateDomain(did: number): number {
    let n = 0;
    for (const [tag, m] of [...this.tags]) {
      const first = m.values().next().value;
      if (first !== undefined && first.did === did) n += this.invalidate(tag, 0, 0);
    }
    return n;
  }

  /** Every entry (for the oracles and tests). */
  *entries(): IterableIterator<CacheEntry> {
    for (const m of this.tags.values()) yield* m.values();
  }

  /** See {@link SecondaryMmu.mappings}: the entries walked from `mm`'s page tables. */
  *mappings(mm?: MmStruct): IterableIterator<SecondaryMapping> {
    for (const e of this.entries()) {
      if (e.mm === null || (mm !== undefined && e.mm !== mm)) continue;
      yield { mm: e.mm, va: e.vpn * PAGE_SIZE, pfn: e.pfn, gen: e.gen, writable: e.write };
    }
  }

  /** Reports a use of entry `e` (an `smmu.access` event for the oracles). */
  access(e: CacheEntry, write: boolean): void {
    if (e.mm !== null) this.ev.access(e.mm, e.vpn * PAGE_SIZE, e.pfn, e.gen, write);
  }

  private append(e: LruEntry): void {
    const t = this.tail;
    e.prev = t;
    e.next = null;
    if (t === null) this.head = e;
    else t.next = e;
    this.tail = e;
  }

  private unlink(e: LruEntry): void {
    const p = e.prev;
    const n = e.next;
    if (p === null) this.head = n;
    else p.next = n;
    if (n === null) this.tail = p;
    else n.prev = p;
    e.prev = null;
    e.next = null;
  }

  private drop(m: Map<number, LruEntry>, e: LruEntry): void {
    m.delete(e.vpn);
    this.unlink(e);
    this.count--;
    if (e.mm !== null) this.ev.unmap(e.mm, e.vpn * PAGE_SIZE);
  }

  private evictLru(): void {
    const victim = this.head;
    if (victim === null) return;
    const vm = this.tags.get(victim.tag)!;
    this.drop(vm, victim);
    if (vm.size === 0) this.tags.delete(victim.tag);
    this.stats.evictions++;
  }
}
