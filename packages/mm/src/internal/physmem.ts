import { ConfigError, KernelBug } from '@mmnsim/core';
import type { Kernel, LockClass, TaskGen } from '@mmnsim/core';
import { WaitQueue } from '@mmnsim/core';
import { WORDS_PER_PAGE } from './constants.js';

/** Frame state bits (`page->flags`, reduced to what the model needs). */
export const Frame = {
  /** On the free list. */
  FREE: 0x1,
  /** Anonymous memory (`PageAnon`). */
  ANON: 0x2,
  /** Page-cache page of a file. */
  FILE: 0x4,
  /** A page-table page. */
  PAGETABLE: 0x8,
  /** The shared zero page. */
  ZERO: 0x10,
  /** `PG_locked`: the folio lock is held. */
  LOCKED: 0x20,
  /** `PG_dirty`. */
  DIRTY: 0x40,
  /** `PG_referenced`: seen referenced by one aging pass. */
  REFERENCED: 0x80,
  /** Lazily freeable (MADV_FREE): may be discarded by reclaim while clean. */
  LAZYFREE: 0x100,
  /** On the LRU (a reclaim candidate). */
  LRU: 0x200,
  /** Allocated for a device or kernel use that reclaim must not touch. */
  KERNEL: 0x400,
  /**
   * A ZONE_DEVICE page of a driver's `dev_pagemap` (`memremap_pages`): never on the free list;
   * its last reference calls the pagemap's `page_free` instead (`free_zone_device_folio`).
   */
  DEVICE: 0x100000,
  /** The head frame of a large folio (`PG_head`); its tails are in {@link PhysMem.headOf}. */
  HEAD: 0x800,
} as const;

/** What a frame is used for, for events and reports. */
export type FrameKind = 'anon' | 'file' | 'pagetable' | 'kernel';

/** Frame content in a sparse form: word index and value pairs, for frames with few written words. */
type Sparse = number[];
const SPARSE_MAX = 8;

/**
 * Physical memory: a fixed number of 4 KiB frames with their metadata (`struct page`/folio:
 * refcount, mapcount, pin count, flags, rmap mapping and index) and their content.
 *
 * The allocator is deterministic and reuses the most recently freed frame first, so a
 * use-after-free touches whoever got the frame next — as on a real machine, a stale translation
 * reads someone else's data. Content is 32-bit words, stored lazily (untouched frames cost
 * nothing; a frame with a few written words keeps them sparsely), so a write through any path is
 * visible to reads through any other path.
 *
 * Frame 0 is the shared zero page: always allocated, never written, never freed.
 *
 * Context: plain functions; the folio lock is the only sleeping operation.
 *
 * @see struct page
 * @see alloc_pages
 */
export class PhysMem {
  /** Number of frames, including the zero page. */
  readonly total: number;
  /** `page_ref_count`: references, including one per mapping PTE and one for the page cache. */
  readonly refcount: Int32Array;
  /** `page_mapcount`: present PTEs mapping the frame. */
  readonly mapcount: Int32Array;
  /** FOLL_PIN pins (`folio_maybe_dma_pinned`). */
  readonly pincount: Int32Array;
  /** {@link Frame} bits. */
  readonly flags: Uint32Array;
  /** rmap owner: anon_vma id for anon frames, file id for page-cache frames, 0 otherwise. */
  readonly mapping: Int32Array;
  /** Page offset in the anon_vma's or file's space (`folio->index`). */
  readonly index: Float64Array;
  /** Allocation generation: bumped on every allocation, so a stale (pfn, gen) pair is detectable. */
  readonly generation: Uint32Array;
  /**
   * For a tail frame of a large folio, its head frame (`compound_head`); 0 for every other
   * frame. References (`folio_get`/`folio_put`) on a tail go to the head.
   */
  readonly headOf: Int32Array;
  /** Order of each large folio by head frame (`folio_order`); absent for order-0 frames. */
  readonly folioOrder = new Map<number, number>();
  /** Entries of page-table frames (512 per table page). */
  readonly tables: (Float64Array | undefined)[] = [];
  private readonly content: (Uint32Array | Sparse | undefined)[] = [];
  private readonly freeList: Int32Array;
  private freeTop: number;
  /**
   * 1 while `pfn` has an entry in `freeList`. A large allocation takes frames without removing
   * their entries; `alloc` skips such stale entries, and a freed frame whose entry is still
   * listed is not pushed again.
   */
  private readonly listed: Uint8Array;
  private nFree: number;
  private readonly lockWait: WaitQueue[] = [];
  private readonly folioLockClass: LockClass;

  /** The zero page's frame number. */
  static readonly ZERO_PFN = 0;

  /**
   * @param kernel the kernel services (events, wait queues, lockdep).
   * @param total number of frames (at least 16).
   */
  constructor(
    private readonly kernel: Kernel,
    total: number,
  ) {
    if (!Number.isInteger(total) || total < 16) {
      throw new ConfigError(`PhysMem: totalFrames (${total}) must be an integer >= 16`);
    }
    this.total = total;
    this.refcount = new Int32Array(total);
    this.mapcount = new Int32Array(total);
    this.pincount = new Int32Array(total);
    this.flags = new Uint32Array(total);
    this.mapping = new Int32Array(total);
    this.index = new Float64Array(total);
    this.generation = new Uint32Array(total);
    this.freeList = new Int32Array(total);
    this.listed = new Uint8Array(total);
    this.headOf = new Int32Array(total);
    // Fill so that the lowest frame numbers come out first.
    let top = 0;
    for (let pfn = total - 1; pfn >= 1; pfn--) {
      this.flags[pfn] = Frame.FREE;
      this.freeList[top++] = pfn;
      this.listed[pfn] = 1;
    }
    this.freeTop = top;
    this.nFree = top;
    this.flags[0] = Frame.ZERO;
    this.refcount[0] = 1;
    for (let i = 0; i < 64; i++)
      this.lockWait.push(new WaitQueue(kernel.scheduler, `folio lock waitqueue ${i}`));
    this.folioLockClass = kernel.lockdep.classOf('folio_lock');
  }

  /** Frames on the free list. */
  get freeFrames(): number {
    return this.nFree;
  }

  /** True if `pfn` is on the free list. */
  isFree(pfn: number): boolean {
    return (this.flags[pfn]! & Frame.FREE) !== 0;
  }

  /**
   * Takes a frame off the free list (`alloc_page`): refcount 1, zeroed content, state `kind`.
   * Returns -1 when memory is exhausted; the caller reclaims or fails with -ENOMEM.
   */
  alloc(kind: FrameKind): number {
    let pfn: number;
    do {
      if (this.freeTop === 0) return -1;
      pfn = this.freeList[--this.freeTop]!;
      this.listed[pfn] = 0;
    } while ((this.flags[pfn]! & Frame.FREE) === 0);
    this.initFrame(pfn, kind);
    return pfn;
  }

  /** Gives the free frame `pfn` state `kind`, refcount 1 and zeroed content. */
  private initFrame(pfn: number, kind: FrameKind): void {
    this.nFree--;
    this.flags[pfn] =
      kind === 'anon'
        ? Frame.ANON
        : kind === 'file'
          ? Frame.FILE
          : kind === 'pagetable'
            ? Frame.PAGETABLE
            : Frame.KERNEL;
    this.refcount[pfn] = 1;
    this.mapcount[pfn] = 0;
    this.pincount[pfn] = 0;
    this.mapping[pfn] = 0;
    this.index[pfn] = 0;
    this.generation[pfn] = (this.generation[pfn]! + 1) >>> 0;
    this.content[pfn] = undefined;
    if (kind === 'pagetable') this.tables[pfn] = new Float64Array(512);
    const bus = this.kernel.bus;
    if (bus.wants('mm.frame.alloc'))
      bus.emit('mm.frame.alloc', { pfn, kind, gen: this.generation[pfn] });
  }

  /**
   * Takes `2^order` naturally aligned free frames as one large folio (`folio_alloc` of a
   * compound page): the head has refcount 1 and {@link Frame.HEAD}, every tail points at it in
   * {@link PhysMem.headOf}; all frames get state `kind` and zeroed content. The search starts
   * at the top of memory (order-0 allocations come from the bottom). Returns the head, or -1
   * when no aligned run is free (the caller falls back to small pages or fails).
   */
  allocLarge(order: number, kind: FrameKind): number {
    const n = 2 ** order;
    const flags = this.flags;
    let head = -1;
    for (let b = Math.floor(this.total / n) - 1; b >= 0 && head < 0; b--) {
      let ok = b > 0;
      for (let i = n - 1; ok && i >= 0; i--) if ((flags[b * n + i]! & Frame.FREE) === 0) ok = false;
      if (ok) head = b * n;
    }
    if (head < 0) return -1;
    for (let pfn = head + n - 1; pfn >= head; pfn--) {
      this.initFrame(pfn, kind); // its free-list entry goes stale
      if (pfn !== head) {
        this.refcount[pfn] = 0;
        this.headOf[pfn] = head;
      }
    }
    this.flags[head]! |= Frame.HEAD;
    this.folioOrder.set(head, order);
    return head;
  }

  /** The head frame of the folio `pfn` belongs to (`page_folio`): `pfn` itself unless a tail. */
  folioOf(pfn: number): number {
    const h = this.headOf[pfn]!;
    return h === 0 ? pfn : h;
  }

  /** Takes a reference (`folio_get`). */
  get(pfn: number): void {
    if (pfn === PhysMem.ZERO_PFN) return;
    if (this.headOf[pfn] !== 0) pfn = this.headOf[pfn]!;
    if (this.refcount[pfn]! <= 0)
      throw new KernelBug(
        `folio_get on frame ${pfn} with refcount ${this.refcount[pfn]} (use after free)`,
      );
    this.refcount[pfn]!++;
  }

  /**
   * Drops a reference (`folio_put`); the last one frees the frame. Returns true if it was freed.
   * A put that makes the refcount negative is a kernel BUG (a double free).
   */
  put(pfn: number): boolean {
    if (pfn === PhysMem.ZERO_PFN) return false;
    if (this.headOf[pfn] !== 0) pfn = this.headOf[pfn]!;
    const r = --this.refcount[pfn]!;
    if (r > 0) return false;
    if (r < 0 || this.isFree(pfn))
      throw new KernelBug(`folio_put on frame ${pfn} that is already free (double free)`);
    if (this.mapcount[pfn]! > 0)
      throw new KernelBug(
        `freeing frame ${pfn} that is still mapped ${this.mapcount[pfn]} time(s)`,
      );
    if ((this.flags[pfn]! & Frame.DEVICE) !== 0 && this.zoneDeviceFree !== null) {
      this.zoneDeviceFree(pfn); // free_zone_device_folio: back to the driver, not the free list
      return true;
    }
    const order = this.folioOrder.get(pfn);
    if (order !== undefined) {
      // A large folio goes back whole (`free_frozen_pages` of the compound page).
      const n = 2 ** order;
      for (let i = 1; i < n; i++) {
        if (this.mapcount[pfn + i]! > 0)
          throw new KernelBug(
            `freeing large folio ${pfn} whose page ${pfn + i} is still mapped ${this.mapcount[pfn + i]} time(s)`,
          );
      }
      this.folioOrder.delete(pfn);
      this.flags[pfn]! &= ~Frame.HEAD;
      for (let i = n - 1; i >= 1; i--) {
        this.headOf[pfn + i] = 0;
        this.flags[pfn + i]! &= ~Frame.LOCKED;
        this.release(pfn + i);
      }
    }
    this.release(pfn);
    return true;
  }

  /**
   * Called instead of freeing when the last reference to a {@link Frame.DEVICE} frame goes
   * (`free_zone_device_folio`); installed by the device-memory registry (`device/memremap.ts`).
   */
  zoneDeviceFree: ((pfn: number) => void) | null = null;

  /**
   * Takes `count` contiguous free frames off the free list, from the top of physical memory
   * down, for a driver's device memory (`memremap_pages` of a range that is not system RAM:
   * the model carves it out of the frame array). Each frame gets `flags`, refcount 0 and an
   * `mm.frame.alloc` event of kind `'device'`. Returns the first frame, or -1 if no run of
   * `count` free frames exists.
   */
  reserveRange(count: number, flags: number): number {
    let start = -1;
    for (let hi = this.total - 1, run = 0; hi >= 1; hi--) {
      run = this.isFree(hi) ? run + 1 : 0;
      if (run === count) {
        start = hi;
        break;
      }
    }
    if (start < 0) return -1;
    let top = 0;
    for (let i = 0; i < this.freeTop; i++) {
      const p = this.freeList[i]!;
      if (p < start || p >= start + count) this.freeList[top++] = p;
    }
    this.freeTop = top;
    const bus = this.kernel.bus;
    for (let pfn = start; pfn < start + count; pfn++) {
      this.flags[pfn] = flags;
      this.refcount[pfn] = 0;
      this.mapcount[pfn] = 0;
      this.pincount[pfn] = 0;
      this.mapping[pfn] = 0;
      this.index[pfn] = 0;
      this.generation[pfn] = (this.generation[pfn]! + 1) >>> 0;
      this.content[pfn] = undefined;
      if (bus.wants('mm.frame.alloc'))
        bus.emit('mm.frame.alloc', { pfn, kind: 'device', gen: this.generation[pfn]! });
    }
    return start;
  }

  /** Gives frames taken by {@link PhysMem.reserveRange} back to the free list (`memunmap_pages`). */
  unreserveRange(start: number, count: number): void {
    for (let pfn = start + count - 1; pfn >= start; pfn--) {
      this.flags[pfn] = 0;
      this.release(pfn);
    }
  }

  private release(pfn: number): void {
    if ((this.flags[pfn]! & Frame.LOCKED) !== 0)
      throw new KernelBug(`freeing frame ${pfn} with its folio lock held`);
    this.flags[pfn] = Frame.FREE;
    this.tables[pfn] = undefined;
    // Content stays: a stale translation still reads (and writes) the old data, and the next
    // owner gets a zeroed frame at alloc time.
    this.nFree++;
    if (this.listed[pfn] === 0) {
      this.listed[pfn] = 1;
      this.freeList[this.freeTop++] = pfn;
    }
    const bus = this.kernel.bus;
    if (bus.wants('mm.frame.free')) bus.emit('mm.frame.free', { pfn });
  }

  // --- content -----------------------------------------------------------------------------

  /** Reads word `word` (0..1023) of frame `pfn`. Never-written words read 0. */
  read(pfn: number, word: number): number {
    const c = this.content[pfn];
    if (c === undefined) return 0;
    if (c instanceof Uint32Array) return c[word]!;
    for (let i = 0; i < c.length; i += 2) if (c[i] === word) return c[i + 1]!;
    return 0;
  }

  /** Writes word `word` of frame `pfn` (a 32-bit value). */
  write(pfn: number, word: number, value: number): void {
    if (pfn === PhysMem.ZERO_PFN || (this.flags[pfn]! & Frame.ZERO) !== 0)
      throw new KernelBug(`write to a zero page (frame ${pfn})`);
    const v = value >>> 0;
    let c = this.content[pfn];
    if (c === undefined) {
      if (v === 0) return;
      this.content[pfn] = [word, v];
    } else if (c instanceof Uint32Array) {
      c[word] = v;
    } else {
      for (let i = 0; i < c.length; i += 2) {
        if (c[i] === word) {
          c[i + 1] = v;
          return this.emitWrite(pfn, word, v);
        }
      }
      if (c.length < 2 * SPARSE_MAX) c.push(word, v);
      else {
        const dense = new Uint32Array(WORDS_PER_PAGE);
        for (let i = 0; i < c.length; i += 2) dense[c[i]!] = c[i + 1]!;
        dense[word] = v;
        c = dense;
        this.content[pfn] = c;
      }
    }
    this.emitWrite(pfn, word, v);
  }

  private emitWrite(pfn: number, word: number, value: number): void {
    if (this.onWrite !== null) this.onWrite(pfn, word, value);
    const bus = this.kernel.bus;
    if (bus.wants('mm.frame.write')) bus.emit('mm.frame.write', { pfn, word, value });
  }

  /** Copies all content of `from` into `to` (`copy_highpage`); `to` is overwritten. */
  copy(from: number, to: number): void {
    const c = this.content[from];
    this.content[to] =
      c === undefined ? undefined : c instanceof Uint32Array ? c.slice() : c.slice();
    const bus = this.kernel.bus;
    if (bus.wants('mm.frame.copy')) bus.emit('mm.frame.copy', { from, to });
  }

  /** Zeroes a frame's content (`clear_highpage`). */
  clear(pfn: number): void {
    this.content[pfn] = undefined;
  }

  /** A snapshot of the non-zero words, as [word, value] pairs (for swap-out and tests). */
  snapshot(pfn: number): number[] {
    const c = this.content[pfn];
    if (c === undefined) return [];
    if (c instanceof Uint32Array) {
      const out: number[] = [];
      for (let i = 0; i < c.length; i++) if (c[i] !== 0) out.push(i, c[i]!);
      return out;
    }
    const out: number[] = [];
    for (let i = 0; i < c.length; i += 2) if (c[i + 1] !== 0) out.push(c[i]!, c[i + 1]!);
    return out;
  }

  /** Restores a snapshot taken with {@link PhysMem.snapshot} into `pfn` (swap-in). */
  restore(pfn: number, words: readonly number[]): void {
    this.content[pfn] = undefined;
    for (let i = 0; i < words.length; i += 2) this.write(pfn, words[i]!, words[i + 1]!);
  }

  // --- folio lock --------------------------------------------------------------------------

  /** True if the folio lock of `pfn` is held. */
  isLocked(pfn: number): boolean {
    return (this.flags[pfn]! & Frame.LOCKED) !== 0;
  }

  /**
   * Takes the folio lock (`folio_lock`), sleeping while another task holds it. Visible to
   * lockdep as class `folio_lock` (use `subclass` 1 for a second folio, as migration does).
   */
  *lockFolio(pfn: number, subclass = 0): TaskGen<void> {
    const k = this.kernel;
    k.mightSleep('folio_lock');
    const cls = subclass === 0 ? this.folioLockClass : k.lockdep.classOf('folio_lock', subclass);
    k.lockdep.acquire(this.lockToken(pfn), cls, 'write');
    const wq = this.lockWait[pfn % 64]!;
    yield* wq.waitEvent(() => (this.flags[pfn]! & Frame.LOCKED) === 0);
    this.flags[pfn]! |= Frame.LOCKED;
  }

  /** Takes the folio lock if it is free (`folio_trylock`). */
  tryLockFolio(pfn: number): boolean {
    if ((this.flags[pfn]! & Frame.LOCKED) !== 0) return false;
    this.flags[pfn]! |= Frame.LOCKED;
    this.kernel.lockdep.acquire(this.lockToken(pfn), this.folioLockClass, 'write', {
      trylock: true,
    });
    return true;
  }

  /** Releases the folio lock and wakes waiters (`folio_unlock`). */
  unlockFolio(pfn: number): void {
    if ((this.flags[pfn]! & Frame.LOCKED) === 0)
      throw new KernelBug(`folio_unlock on frame ${pfn} that is not locked`);
    this.flags[pfn]! &= ~Frame.LOCKED;
    this.kernel.lockdep.release(this.lockToken(pfn));
    this.lockWait[pfn % 64]!.wakeAll();
  }

  /** Sleeps until the folio lock of `pfn` is released, without taking it (`folio_wait_locked`). */
  *waitUnlocked(pfn: number): TaskGen<void> {
    this.kernel.mightSleep('folio_wait_locked');
    yield* this.lockWait[pfn % 64]!.waitEvent(() => (this.flags[pfn]! & Frame.LOCKED) === 0);
  }

  /**
   * Called after every word written through {@link PhysMem.write} (the cache model's snoop when
   * it is attached), or null.
   */
  onWrite: ((pfn: number, word: number, value: number) => void) | null = null;

  private readonly tokens = new Map<number, { name: string }>();
  private lockToken(pfn: number): { name: string } {
    let t = this.tokens.get(pfn);
    if (t === undefined) {
      t = { name: `folio_lock ${pfn}` };
      this.tokens.set(pfn, t);
    }
    return t;
  }
}
