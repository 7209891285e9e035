import type { RwSemaphore } from '@mmnsim/core';
import type { SimFile } from './file.js';
import type { MmStruct } from './mm.js';

/** VMA flag bits (`vm_flags`), with the kernel's values. */
export const Vm = {
  /** `VM_READ`. */
  READ: 0x1,
  /** `VM_WRITE`. */
  WRITE: 0x2,
  /** `VM_EXEC`. */
  EXEC: 0x4,
  /** `VM_SHARED`: writes go to the shared object (MAP_SHARED). */
  SHARED: 0x8,
  /** `VM_MAYREAD`. */
  MAYREAD: 0x10,
  /** `VM_MAYWRITE`: mprotect may add write. */
  MAYWRITE: 0x20,
  /** `VM_MAYEXEC`. */
  MAYEXEC: 0x40,
  /** `VM_GROWSDOWN` (stacks). */
  GROWSDOWN: 0x100,
  /** `VM_PFNMAP`: raw pfns, no struct page (GUP and HMM refuse it). */
  PFNMAP: 0x400,
  /** `VM_IO`: memory-mapped I/O (GUP and HMM refuse it). */
  IO: 0x4000,
  /** `VM_DONTCOPY`: not inherited by fork. */
  DONTCOPY: 0x20000,
} as const;

/** The three access bits of a VMA. */
export const VM_ACCESS_FLAGS = Vm.READ | Vm.WRITE | Vm.EXEC;

/**
 * An anon_vma: the reverse-map root shared by a private mapping and the mappings forked from
 * it, so reclaim and migration can find every PTE of an anonymous page. Its rwsem is the
 * "anon_vma lock" rmap walks hold.
 *
 * @see struct anon_vma
 */
export class AnonVma {
  /** The VMAs that may map pages of this anon_vma (the anon_vma_chain, flattened). */
  readonly vmas = new Set<Vma>();

  /**
   * @param id unique id (stored in `PhysMem.mapping` of its pages).
   * @param lock the anon_vma rwsem.
   */
  constructor(
    readonly id: number,
    readonly lock: RwSemaphore,
  ) {}
}

/**
 * A virtual memory area (`struct vm_area_struct`): `[start, end)` of one mm with uniform flags,
 * backed by anonymous memory (`file === null`) or by a file's page cache at page offset `pgoff`.
 *
 * @see struct vm_area_struct
 */
export class Vma {
  /** The reverse-map root of anonymous pages in this VMA, created on the first anonymous fault. */
  anonVma: AnonVma | null = null;

  /**
   * @param mm the owning mm.
   * @param start first address (page aligned).
   * @param end exclusive end (page aligned).
   * @param flags {@link Vm} bits.
   * @param file the backing file, or null for anonymous memory.
   * @param pgoff page offset of `start` in the file (or in the anon_vma's index space).
   */
  constructor(
    readonly mm: MmStruct,
    public start: number,
    public end: number,
    public flags: number,
    readonly file: SimFile | null,
    public pgoff: number,
  ) {}

  /** True for anonymous memory. */
  get anonymous(): boolean {
    return this.file === null;
  }

  /** True for a private writable-on-fork mapping whose writes copy (`is_cow_mapping`). */
  get cow(): boolean {
    return (this.flags & (Vm.SHARED | Vm.MAYWRITE)) === Vm.MAYWRITE;
  }

  /** Page offset of `addr` inside the backing object (`linear_page_index`). */
  pageIndex(addr: number): number {
    return this.pgoff + (addr - this.start) / 4096;
  }

  /** The address of page offset `index` in this VMA, or -1 if it falls outside. */
  addressOf(index: number): number {
    const addr = this.start + (index - this.pgoff) * 4096;
    return addr >= this.start && addr < this.end ? addr : -1;
  }

  /** `[start, end) flags` for reports. */
  toString(): string {
    const f = this.flags;
    const prot =
      ((f & Vm.READ) !== 0 ? 'r' : '-') +
      ((f & Vm.WRITE) !== 0 ? 'w' : '-') +
      ((f & Vm.EXEC) !== 0 ? 'x' : '-');
    return `[0x${this.start.toString(16)}, 0x${this.end.toString(16)}) ${prot}${(f & Vm.SHARED) !== 0 ? 's' : 'p'} ${
      this.file === null ? 'anon' : `file ${this.file.name}@${this.pgoff}`
    }`;
  }
}

/**
 * The VMAs of one mm, sorted by address (the kernel's maple tree). Lookups are binary searches.
 */
export class VmaList {
  private readonly list: Vma[] = [];

  /** All VMAs in address order. */
  get all(): readonly Vma[] {
    return this.list;
  }

  /** Number of VMAs. */
  get length(): number {
    return this.list.length;
  }

  /** The VMA containing `addr`, or undefined (`vma_lookup`). */
  find(addr: number): Vma | undefined {
    const l = this.list;
    let lo = 0;
    let hi = l.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = l[mid]!;
      if (addr < v.start) hi = mid - 1;
      else if (addr >= v.end) lo = mid + 1;
      else return v;
    }
    return undefined;
  }

  /** VMAs intersecting `[start, end)`, in order. */
  intersecting(start: number, end: number): Vma[] {
    const out: Vma[] = [];
    for (const v of this.list) {
      if (v.end <= start) continue;
      if (v.start >= end) break;
      out.push(v);
    }
    return out;
  }

  /** Inserts a VMA; it must not overlap another. */
  insert(v: Vma): void {
    const l = this.list;
    let i = 0;
    while (i < l.length && l[i]!.start < v.start) i++;
    l.splice(i, 0, v);
  }

  /** Removes a VMA. */
  remove(v: Vma): void {
    const i = this.list.indexOf(v);
    if (i >= 0) this.list.splice(i, 1);
  }

  /** True if no VMA intersects `[start, end)`. */
  isFree(start: number, end: number): boolean {
    return this.intersecting(start, end).length === 0;
  }

  /** The lowest free range of `len` bytes at or above `from` and below `limit`, or -1 (`get_unmapped_area`). */
  findFree(len: number, from: number, limit: number): number {
    let addr = from;
    for (const v of this.list) {
      if (v.end <= addr) continue;
      if (v.start >= addr + len) break;
      addr = v.end;
    }
    return addr + len <= limit ? addr : -1;
  }
}
