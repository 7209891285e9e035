/**
 * The swap device: slots holding the content of swapped-out anonymous pages. A slot's use count
 * is the number of swap PTEs that refer to it (fork shares them); the slot is freed when the last
 * one is swapped in or zapped.
 *
 * @see swp_entry_t
 */
export class SwapDevice {
  private readonly slots = new Map<number, { words: number[]; users: number }>();
  private readonly freeSlots: number[] = [];
  private next = 1;

  /** Slots in use. */
  get used(): number {
    return this.slots.size;
  }

  /** Stores `words` in a new slot with one user; returns the slot number. */
  store(words: number[]): number {
    const slot = this.freeSlots.pop() ?? this.next++;
    this.slots.set(slot, { words, users: 1 });
    return slot;
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
    if (s === undefined) throw new Error(`swap_free of free slot ${slot}`);
    if (--s.users === 0) {
      this.slots.delete(slot);
      this.freeSlots.push(slot);
    }
  }

  /** Users of `slot` (0 if free). */
  users(slot: number): number {
    return this.slots.get(slot)?.users ?? 0;
  }
}
