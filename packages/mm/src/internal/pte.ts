import { PAGE_SIZE } from './constants.js';

/**
 * Page-table entries are plain numbers: `pfn * 4096 + flags`, with the x86-64 bit positions for
 * the flags (all below bit 12), so a PTE value reads like the kernel's. Non-present entries use
 * the low bits as a tag: a swap entry stores its swap offset where the pfn would be, a migration
 * entry stores the pfn of the folio under migration.
 *
 * JS bitwise operators are 32-bit, and pfns can exceed 2^20, so entries are built and taken apart
 * with arithmetic (`* 4096`, `% 4096`), never with `|` or `>>` on the whole value.
 */
export const Pte = {
  /** `_PAGE_PRESENT`. */
  PRESENT: 0x001,
  /** `_PAGE_RW`: writable. */
  WRITE: 0x002,
  /** `_PAGE_USER`. */
  USER: 0x004,
  /** `_PAGE_ACCESSED`: set by the CPU's page walk on any access. */
  ACCESSED: 0x020,
  /** `_PAGE_DIRTY`: set by the CPU on a write. */
  DIRTY: 0x040,
  /** `_PAGE_SPECIAL`: no struct page refcounting (the shared zero page). */
  SPECIAL: 0x200,
  /** `_PAGE_SOFT_DIRTY`: set on write, cleared by clear_refs. */
  SOFT_DIRTY: 0x800,
  /** Non-present tag: a swap entry. */
  SWAP: 0x100,
  /** Non-present tag: a migration entry (with WRITE kept from the old PTE). */
  MIGRATION: 0x400,
  /**
   * Non-present tag: `_PAGE_PROTNONE` — a PROT_NONE mapping (mprotect). The entry keeps its pfn
   * and its page keeps the mapcount and reference of a present PTE; only the CPU cannot use it
   * (PRESENT is clear). The kernel's `pte_present()` is true for it: see {@link pteMapsPage}.
   */
  PROTNONE: 0x080,
  /**
   * Non-present tag: a device-private entry (`SWP_DEVICE_WRITE`/`SWP_DEVICE_READ`): the pfn of a
   * ZONE_DEVICE page the CPU cannot address, with WRITE kept (see `device/entries.ts`).
   */
  DEVICE_PRIVATE: 0x008,
  /** Non-present tag: a device-exclusive entry (`SWP_DEVICE_EXCLUSIVE`) for the pfn of an anonymous page. */
  DEVICE_EXCLUSIVE: 0x010,
} as const;

/** The empty PTE (`pte_none`). */
export const PTE_NONE = 0;

/** Builds a present PTE mapping `pfn` with `flags` (PRESENT is added). */
export function mkPte(pfn: number, flags: number): number {
  return pfn * PAGE_SIZE + (flags | Pte.PRESENT);
}

/** The low 12 flag bits of an entry. */
export function pteFlags(pte: number): number {
  return pte % PAGE_SIZE;
}

/** The pfn (or swap offset) field of an entry. */
export function ptePfn(pte: number): number {
  return Math.floor(pte / PAGE_SIZE);
}

/** Replaces the flag bits of an entry. */
export function pteWithFlags(pte: number, flags: number): number {
  return pte - (pte % PAGE_SIZE) + flags;
}

/** True for a present entry. */
export function ptePresent(pte: number): boolean {
  return ((pte % PAGE_SIZE) & Pte.PRESENT) !== 0;
}

/** True for a PROT_NONE entry ({@link Pte.PROTNONE}). @see pte_protnone */
export function pteIsProtNone(pte: number): boolean {
  const f = pte % PAGE_SIZE;
  return (f & Pte.PRESENT) === 0 && (f & Pte.PROTNONE) !== 0;
}

/**
 * True if the entry maps a page: present, or PROT_NONE (the kernel's `pte_present()`, which is
 * true for `_PAGE_PROTNONE` entries). Such an entry holds a mapcount and a reference; code that
 * walks page tables for the kernel (zap, fork, rmap) must treat both alike, while the CPU
 * ({@link ptePresent}) can use only the present ones.
 *
 * @see pte_present
 */
export function pteMapsPage(pte: number): boolean {
  return ((pte % PAGE_SIZE) & (Pte.PRESENT | Pte.PROTNONE)) !== 0;
}

/** True if the entry has all bits of `flag`. */
export function pteHas(pte: number, flag: number): boolean {
  return ((pte % PAGE_SIZE) & flag) === flag;
}

/** Builds a swap entry for swap slot `offset`. */
export function mkSwapPte(offset: number): number {
  return offset * PAGE_SIZE + Pte.SWAP;
}

/** True for a swap entry. */
export function pteIsSwap(pte: number): boolean {
  const f = pte % PAGE_SIZE;
  return (f & Pte.PRESENT) === 0 && (f & Pte.SWAP) !== 0;
}

/** Builds a migration entry for `pfn`, remembering whether the old PTE was writable. */
export function mkMigrationPte(pfn: number, writable: boolean): number {
  return pfn * PAGE_SIZE + Pte.MIGRATION + (writable ? Pte.WRITE : 0);
}

/** True for a migration entry. */
export function pteIsMigration(pte: number): boolean {
  const f = pte % PAGE_SIZE;
  return (f & Pte.PRESENT) === 0 && (f & Pte.MIGRATION) !== 0;
}

/** A readable form of an entry for reports: `pfn 0x12 rw-ad`, `swap 7`, `migration pfn 0x12`, `none`. */
export function describePte(pte: number): string {
  if (pte === PTE_NONE) return 'none';
  const f = pteFlags(pte);
  const n = ptePfn(pte);
  if ((f & Pte.PRESENT) !== 0) {
    const bits =
      ((f & Pte.WRITE) !== 0 ? 'w' : '-') +
      ((f & Pte.ACCESSED) !== 0 ? 'a' : '-') +
      ((f & Pte.DIRTY) !== 0 ? 'd' : '-') +
      ((f & Pte.SPECIAL) !== 0 ? 's' : '');
    return `pfn 0x${n.toString(16)} ${bits}`;
  }
  if ((f & Pte.PROTNONE) !== 0) return `protnone pfn 0x${n.toString(16)}`;
  if ((f & Pte.SWAP) !== 0) return `swap ${n}`;
  if ((f & Pte.MIGRATION) !== 0)
    return `migration pfn 0x${n.toString(16)}${(f & Pte.WRITE) !== 0 ? ' w' : ''}`;
  if ((f & Pte.DEVICE_PRIVATE) !== 0)
    return `device-private pfn 0x${n.toString(16)}${(f & Pte.WRITE) !== 0 ? ' w' : ''}`;
  if ((f & Pte.DEVICE_EXCLUSIVE) !== 0) return `device-exclusive pfn 0x${n.toString(16)}`;
  return `0x${pte.toString(16)}`;
}
