/**
 * The swap device: slots holding the content of swapped-out anonymous pages. A slot's use count
 * is the number of swap PTEs that refer to it (fork shares them). While reclaim still holds the
 * folio (between `beginWriteback` and `endWriteback`) the slot also carries a swap-cache
 * reference (`SWAP_HAS_CACHE`), so zapping every swap PTE meanwhile cannot free it under the
 * reclaimer. The slot is freed when neither remains.
 *
 * @see swp_entry_t
 */
export class SwapDevice {
  private readonly slots = new Map<
    number,
    { words: readonly number[]; users: number; cache: boolean; writeback: number }
  >();
  private readonly freeSlots: number[] = [];
  private next = 1;

  /** Slots in use. */
  get used(): number {
    return this.slots.size;
  }

  /** Stores `words` in a new slot with one user; returns the slot number. */
  store(words: number[]): number {
    const slot = this.freeSlots.pop() ?? this.next++;
    this.slots.set(slot, { words, users: 1, cache: false, writeback: -1 });
    return slot;
  }

  /**
   * Allocates a slot for the folio in frame `pfn`, holding only the swap-cache reference (add one
   * user per swap PTE with {@link SwapDevice.dup}); its content is written only
   * later, by {@link SwapDevice.endWriteback} (the reduced swap cache: reclaim publishes swap
   * PTEs while it still holds the folio lock, and writes the content after the TLB flush, as
   * `pageout` runs after `try_to_unmap_flush_dirty`). Until then a swap-in must wait for the
   * folio lock of {@link SwapDevice.writebackPfn} and retry.
   *
   * @see folio_alloc_swap
   */
  beginWriteback(pfn: number): number {
    const slot = this.freeSlots.pop() ?? this.next++;
    this.slots.set(slot, { words: [], users: 0, cache: true, writeback: pfn });
    return slot;
  }

  /**
   * Stores the content of a slot begun with {@link SwapDevice.beginWriteback} for frame `pfn`,
   * ends its writeback and drops the swap-cache reference (the slot is freed if no swap PTE is
   * left). A no-op for a slot that belongs to another folio.
   *
   * @see swap_writepage
   */
  endWriteback(slot: number, pfn: number, words: number[]): void {
    const s = this.slots.get(slot);
    if (s === undefined || s.writeback !== pfn) return;
    s.words = words;
    s.writeback = -1;
    s.cache = false;
    if (s.users === 0) this.release(slot);
  }

  private release(slot: number): void {
    this.slots.delete(slot);
    this.freeSlots.push(slot);
  }

  /** The frame whose content `slot` is still waiting for (under writeback), or -1. */
  writebackPfn(slot: number): number {
    return this.slots.get(slot)?.writeback ?? -1;
  }

  /** The content of `slot`. */
  load(slot: number): readonly number[] {
    const s = this.slots.get(slot);
    if (s === undefined) throw new Error(`swap slot ${slot} is not in use`);
    return s.words;
  }

  /** Adds a user (`swap_duplicate`, at fork). */
  dup(slot: number): void {
    const s = this.slots.get(slot);
    if (s === undefined) throw new Error(`swap_duplicate of free slot ${slot}`);
    s.users++;
  }

  /** Drops a user (`swap_free`); the last one frees the slot. */
  free(slot: number): void {
    const s = this.slots.get(slot);
    if (s === undefined || s.users === 0) throw new Error(`swap_free of free slot ${slot}`);
    if (--s.users === 0 && !s.cache) this.release(slot);
  }

  /** Users of `slot` (0 if free). */
  users(slot: number): number {
    return this.slots.get(slot)?.users ?? 0;
  }
}
