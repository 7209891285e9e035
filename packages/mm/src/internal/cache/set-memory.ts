/**
 * `set_memory_uc/wc/wb/np` and `set_pages_array_uc/wb`: changing the memory type of the kernel
 * direct map, with the TLB and cache flush Linux does after it. Its own file: these are the
 * kernel's interface (with its errnos), separate from the cache hardware they drive.
 */
import { Errno } from '@mmnsim/core';
import { PAGE_SIZE } from '../constants.js';
import type { CacheModel } from './cache.js';
import type { MemType } from './memtype.js';

/**
 * Where the model places the kernel direct map: `__va(pa) = DIRECT_MAP_BASE + pa`. Linux uses
 * `PAGE_OFFSET` (0xffff888000000000 without KASLR), which a JavaScript number cannot hold
 * exactly; any base above the user address space works the same.
 */
export const DIRECT_MAP_BASE = 2 ** 48;

/** The direct-map address of frame `pfn` (`page_address(pfn_to_page(pfn))`). */
export function directMapAddress(pfn: number): number {
  return DIRECT_MAP_BASE + pfn * PAGE_SIZE;
}

/**
 * Resolves a direct-map range to its first frame: -EINVAL for an unaligned address or a bad
 * count, -EFAULT for an address the direct map does not map.
 */
function directRange(c: CacheModel, addr: number, numpages: number): number {
  if (!Number.isSafeInteger(addr) || !Number.isSafeInteger(numpages) || numpages < 0)
    return -Errno.EINVAL;
  if (addr % PAGE_SIZE !== 0) return -Errno.EINVAL;
  const first = (addr - DIRECT_MAP_BASE) / PAGE_SIZE;
  if (first < 0 || first + numpages > c.directMap.frames) return -Errno.EFAULT;
  return first;
}

function emit(c: CacheModel, pfn: number, count: number, type: MemType, by: string): void {
  const bus = c.kernel.bus;
  if (bus.wants('cache.memtype')) bus.emit('cache.memtype', { pfn, count, type, by });
}

/**
 * Changes the type of `count` frames from `first`, then (for a change to a cached/uncached
 * type) flushes each page's lines — `cpa_flush()`: TLB flush, then `clflush_cache_range` when
 * the cache attribute changed. `set_memory_wb` and `set_memory_np` do not flush caches.
 */
function change(c: CacheModel, pfns: readonly number[], type: MemType, by: string): void {
  for (const p of pfns) c.directMap.set(p, type);
  if (type === 'UC' || type === 'WC') for (const p of pfns) c.clflushPage(p);
  if (pfns.length > 0) emit(c, pfns[0]!, pfns.length, type, by);
}

/**
 * Reserves the new non-WB type for RAM frames (`memtype_reserve` → `reserve_ram_pages_type`):
 * -EBUSY if a frame already has a non-WB type.
 */
function reserve(c: CacheModel, pfns: readonly number[]): number {
  for (const p of pfns) {
    const t = c.directMap.type(p);
    if (t === 'UC' || t === 'WC') return -Errno.EBUSY;
  }
  return 0;
}

function range(first: number, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(first + i);
  return out;
}

function setMemory(
  c: CacheModel,
  addr: number,
  numpages: number,
  type: MemType,
  by: string,
): number {
  const first = directRange(c, addr, numpages);
  if (first < 0) return first;
  const pfns = range(first, numpages);
  if (type === 'UC' || type === 'WC') {
    const r = reserve(c, pfns);
    if (r < 0) return r;
  }
  change(c, pfns, type, by);
  return 0;
}

/**
 * `set_memory_uc(addr, numpages)`: makes a direct-map range uncached (UC-).
 * Returns 0, -EINVAL (unaligned address, negative or non-integer count), -EFAULT (not in the
 * direct map) or -EBUSY (a frame already has a non-WB type).
 * Context: atomic (the model does not interleave inside `cpa_lock`).
 * @see arch/x86/mm/pat/set_memory.c: set_memory_uc (6.17)
 */
export function setMemoryUc(c: CacheModel, addr: number, numpages: number): number {
  return setMemory(c, addr, numpages, 'UC', 'set_memory_uc');
}

/**
 * `set_memory_wc(addr, numpages)`: makes a direct-map range write-combining. Errnos as
 * {@link setMemoryUc}.
 * @see arch/x86/mm/pat/set_memory.c: set_memory_wc (6.17)
 */
export function setMemoryWc(c: CacheModel, addr: number, numpages: number): number {
  return setMemory(c, addr, numpages, 'WC', 'set_memory_wc');
}

/**
 * `set_memory_wb(addr, numpages)`: restores write-back (and frees the memtype reservation).
 * No cache flush. Errnos: -EINVAL, -EFAULT as {@link setMemoryUc}.
 * @see arch/x86/mm/pat/set_memory.c: set_memory_wb (6.17)
 */
export function setMemoryWb(c: CacheModel, addr: number, numpages: number): number {
  return setMemory(c, addr, numpages, 'WB', 'set_memory_wb');
}

/**
 * `set_memory_np(addr, numpages)`: clears the present bit of a direct-map range, so the CPU can
 * neither access nor prefetch it. No cache flush (callers `wbinvd` themselves, as
 * `gart_iommu_init` does). Errnos: -EINVAL, -EFAULT.
 * @see arch/x86/mm/pat/set_memory.c: set_memory_np (6.17)
 */
export function setMemoryNp(c: CacheModel, addr: number, numpages: number): number {
  return setMemory(c, addr, numpages, 'NP', 'set_memory_np');
}

function checkPages(c: CacheModel, pfns: readonly number[]): number {
  for (const p of pfns)
    if (!Number.isSafeInteger(p) || p < 1 || p >= c.directMap.frames) return -Errno.EINVAL;
  return 0;
}

/**
 * `set_pages_array_uc(pages, numpages)`: makes the direct map of every frame in `pfns`
 * uncached, then flushes their lines. All or nothing: -EINVAL if any frame cannot be reserved
 * (already non-WB) or is not a frame, and nothing changes.
 * @see arch/x86/mm/pat/set_memory.c: set_pages_array_uc, _set_pages_array (6.17)
 */
export function setPagesArrayUc(c: CacheModel, pfns: readonly number[]): number {
  if (checkPages(c, pfns) < 0 || reserve(c, pfns) < 0) return -Errno.EINVAL;
  change(c, pfns, 'UC', 'set_pages_array_uc');
  return 0;
}

/**
 * `set_pages_array_wb(pages, numpages)`: restores write-back for every frame in `pfns` and frees
 * their memtype reservations. -EINVAL for an entry that is not a frame.
 * @see arch/x86/mm/pat/set_memory.c: set_pages_array_wb (6.17)
 */
export function setPagesArrayWb(c: CacheModel, pfns: readonly number[]): number {
  if (checkPages(c, pfns) < 0) return -Errno.EINVAL;
  change(c, pfns, 'WB', 'set_pages_array_wb');
  return 0;
}
