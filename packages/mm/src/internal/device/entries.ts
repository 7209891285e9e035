// Device-private and device-exclusive page-table entries: how they are built and recognised.
// Their own file because zap, fork, the fault path, hmm_range_fault, pagemap and the device
// migration code all need these few predicates and nothing else of the device code.
import { PAGE_SIZE } from '../constants.js';
import { Pte } from '../pte.js';

const TAGS = Pte.PRESENT | Pte.DEVICE_PRIVATE | Pte.DEVICE_EXCLUSIVE;

/**
 * Builds a device-private entry for the ZONE_DEVICE page `pfn` (`make_writable_device_private_entry`
 * or `make_readable_device_private_entry`, include/linux/swapops.h): the CPU cannot address the
 * page, so a CPU access faults and `do_swap_page` calls the pagemap's `migrate_to_ram`.
 *
 * @see make_writable_device_private_entry
 */
export function mkDevicePrivatePte(pfn: number, writable: boolean): number {
  return pfn * PAGE_SIZE + Pte.DEVICE_PRIVATE + (writable ? Pte.WRITE : 0);
}

/**
 * True for a device-private entry.
 *
 * @see is_device_private_entry
 */
export function pteIsDevicePrivate(pte: number): boolean {
  return ((pte % PAGE_SIZE) & TAGS) === Pte.DEVICE_PRIVATE;
}

/**
 * True for a writable device-private entry.
 *
 * @see is_writable_device_private_entry
 */
export function pteIsWritableDevicePrivate(pte: number): boolean {
  return ((pte % PAGE_SIZE) & (TAGS | Pte.WRITE)) === (Pte.DEVICE_PRIVATE | Pte.WRITE);
}

/**
 * Builds a device-exclusive entry for the anonymous page `pfn` (`make_device_exclusive_entry`,
 * 6.15+: no write bit — the entry stands for a writable, exclusive mapping). It keeps the page's
 * mapcount and the mapping's reference; soft-dirty is carried over.
 *
 * @see make_device_exclusive_entry
 */
export function mkDeviceExclusivePte(pfn: number, softDirty: boolean): number {
  return pfn * PAGE_SIZE + Pte.DEVICE_EXCLUSIVE + (softDirty ? Pte.SOFT_DIRTY : 0);
}

/**
 * True for a device-exclusive entry.
 *
 * @see is_device_exclusive_entry
 */
export function pteIsDeviceExclusive(pte: number): boolean {
  return ((pte % PAGE_SIZE) & TAGS) === Pte.DEVICE_EXCLUSIVE;
}

/**
 * True for either kind: a non-present entry that still holds a page reference and a mapcount
 * (the kernel's device-private and device-exclusive `pfn_swap_entry`s).
 *
 * @see is_pfn_swap_entry
 */
export function pteIsDeviceEntry(pte: number): boolean {
  const f = (pte % PAGE_SIZE) & TAGS;
  return f === Pte.DEVICE_PRIVATE || f === Pte.DEVICE_EXCLUSIVE;
}
