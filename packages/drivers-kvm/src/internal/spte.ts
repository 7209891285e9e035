import { PAGE_SIZE } from '@mmnsim/mm';

/**
 * Bits of a leaf SPTE (secondary PTE) of the TDP MMU. An SPTE is a number `pfn * 4096 + flags`
 * with every flag below bit 12, built and taken apart with arithmetic as mm's PTEs are. The
 * hardware bits have EPT's positions (R/W/X in bits 0–2, accessed bit 8, dirty bit 9); KVM's
 * software bits, which live in high bits on x86, are folded into the free low bits here.
 *
 * @see arch/x86/kvm/mmu/spte.h
 */
export const Spte = {
  /** EPT read permission (`VMX_EPT_READABLE_MASK`). */
  R: 0x001,
  /** EPT write permission (`PT_WRITABLE_MASK`). */
  W: 0x002,
  /** EPT execute permission (`VMX_EPT_EXECUTABLE_MASK`). */
  X: 0x004,
  /** The host mapping was writable when the SPTE was made (`EPT_SPTE_HOST_WRITABLE`). */
  HOST_WRITABLE: 0x008,
  /** KVM allows the guest to write: a write fault may set W locklessly (`EPT_SPTE_MMU_WRITABLE`). */
  MMU_WRITABLE: 0x010,
  /** Access tracking: R saved while the SPTE is access-tracked (`SHADOW_ACC_TRACK_SAVED_BITS`). */
  SAVED_R: 0x020,
  /** Access tracking: W saved. */
  SAVED_W: 0x040,
  /** Access tracking: X saved. */
  SAVED_X: 0x080,
  /** EPT accessed bit (bit 8), set by the hardware walk when A/D bits are enabled. */
  A: 0x100,
  /** EPT dirty bit (bit 9), set by the hardware on a write when A/D bits are enabled. */
  D: 0x200,
  /** The SPTE is present for KVM, even if not for the hardware (`SPTE_MMU_PRESENT_MASK`, bit 11). */
  MMU_PRESENT: 0x800,
} as const;

const RWX = Spte.R | Spte.W | Spte.X;
const SAVED = Spte.SAVED_R | Spte.SAVED_W | Spte.SAVED_X;

/** A zapped (never-present) SPTE (`SHADOW_NONPRESENT_VALUE`). */
export const SPTE_NONPRESENT = 0;

/**
 * The frozen SPTE (`FROZEN_SPTE`, formerly `REMOVED_SPTE`): a non-present value a zap under
 * the read lock writes with cmpxchg, so that no other thread installs a present SPTE before the
 * TLB flush of the zap completed. Threads that find it back off and retry.
 */
export const SPTE_FROZEN = 0x5a0;

/** The frame an SPTE points at. */
export function sptePfn(spte: number): number {
  return Math.floor(spte / PAGE_SIZE);
}

/** The flag bits of an SPTE. */
export function spteFlags(spte: number): number {
  return spte % PAGE_SIZE;
}

/** True if the SPTE is present for KVM (`is_shadow_present_pte`); false for none and frozen. */
export function isShadowPresent(spte: number): boolean {
  return spte !== SPTE_FROZEN && ((spte % PAGE_SIZE) & Spte.MMU_PRESENT) !== 0;
}

/** True for the frozen value (`is_frozen_spte`). */
export function isFrozen(spte: number): boolean {
  return spte === SPTE_FROZEN;
}

/** True if present and access-tracked: RWX stripped and saved (`is_access_track_spte`). */
export function isAccessTracked(spte: number, adBits: boolean): boolean {
  return !adBits && isShadowPresent(spte) && ((spte % PAGE_SIZE) & RWX) === 0;
}

/** True if the SPTE is writable for the hardware (`is_writable_pte`). */
export function isWritable(spte: number): boolean {
  return ((spte % PAGE_SIZE) & Spte.W) !== 0;
}

/**
 * `is_accessed_spte`: with A/D bits the accessed bit; without them, "not access-tracked".
 */
export function isAccessed(spte: number, adBits: boolean): boolean {
  if (!isShadowPresent(spte)) return false;
  const f = spte % PAGE_SIZE;
  return adBits ? (f & Spte.A) !== 0 : (f & RWX) !== 0;
}

/**
 * `is_dirty_spte`: with A/D bits the dirty bit; without them every writable SPTE counts as
 * dirty (the write permission is the only trace of a write KVM has).
 */
export function isDirty(spte: number, adBits: boolean): boolean {
  if (!isShadowPresent(spte)) return false;
  const f = spte % PAGE_SIZE;
  return (f & (adBits ? Spte.D : Spte.W)) !== 0;
}

/**
 * True if the hardware can use the SPTE for the access without a fault: present for the
 * hardware (readable), and writable for a write (`is_access_allowed` for EPT).
 */
export function isAccessAllowed(spte: number, write: boolean): boolean {
  if (!isShadowPresent(spte)) return false;
  const f = spte % PAGE_SIZE;
  return write ? (f & Spte.W) !== 0 : (f & Spte.R) !== 0;
}

/**
 * `make_spte` for a 4 KiB leaf: present, readable and executable, writable when `writable`
 * (also MMU-writable), host-writable when the host mapping was; with A/D bits the accessed bit
 * is set (a fault is an access) and a writable SPTE starts dirty, as KVM does.
 */
export function makeSpte(pfn: number, writable: boolean, hostWritable: boolean, adBits: boolean) {
  let f = Spte.MMU_PRESENT | Spte.R | Spte.X;
  if (hostWritable) f |= Spte.HOST_WRITABLE;
  if (writable) f |= Spte.W | Spte.MMU_WRITABLE;
  if (adBits) {
    f |= Spte.A;
    if (writable) f |= Spte.D;
  }
  return pfn * PAGE_SIZE + f;
}

/** Replaces the flag bits of an SPTE. */
export function spteWithFlags(spte: number, flags: number): number {
  return spte - (spte % PAGE_SIZE) + flags;
}

/**
 * `mark_spte_for_access_track`: with A/D bits, clear the accessed bit; without them, save RWX
 * in the saved bits and strip them, so the next access faults (and `fast_page_fault` restores).
 */
export function markForAccessTrack(spte: number, adBits: boolean): number {
  const f = spte % PAGE_SIZE;
  if (adBits) return spteWithFlags(spte, f & ~Spte.A);
  if ((f & RWX) === 0) return spte;
  const saved =
    ((f & Spte.R) !== 0 ? Spte.SAVED_R : 0) |
    ((f & Spte.W) !== 0 ? Spte.SAVED_W : 0) |
    ((f & Spte.X) !== 0 ? Spte.SAVED_X : 0);
  return spteWithFlags(spte, (f & ~RWX) | saved);
}

/** `restore_acc_track_spte`: put the saved RWX bits back. */
export function restoreAccessTrack(spte: number): number {
  const f = spte % PAGE_SIZE;
  const rwx =
    ((f & Spte.SAVED_R) !== 0 ? Spte.R : 0) |
    ((f & Spte.SAVED_W) !== 0 ? Spte.W : 0) |
    ((f & Spte.SAVED_X) !== 0 ? Spte.X : 0);
  return spteWithFlags(spte, (f & ~SAVED) | rwx);
}

/** A readable SPTE for reports: `pfn 0x12 rwx-ad`, `frozen`, `none`, `pfn 0x12 tracked`. */
export function describeSpte(spte: number): string {
  if (spte === SPTE_NONPRESENT) return 'none';
  if (spte === SPTE_FROZEN) return 'frozen';
  const f = spte % PAGE_SIZE;
  const pfn = `pfn 0x${sptePfn(spte).toString(16)}`;
  if ((f & Spte.MMU_PRESENT) === 0) return `0x${spte.toString(16)}`;
  if ((f & RWX) === 0) return `${pfn} access-tracked`;
  return (
    `${pfn} ` +
    ((f & Spte.R) !== 0 ? 'r' : '-') +
    ((f & Spte.W) !== 0 ? 'w' : '-') +
    ((f & Spte.X) !== 0 ? 'x' : '-') +
    ((f & Spte.A) !== 0 ? 'a' : '-') +
    ((f & Spte.D) !== 0 ? 'd' : '-')
  );
}
