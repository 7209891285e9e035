/**
 * The GART hardware (the AMD northbridge's Graphics Address Remapping Table): the aperture, the
 * GATT in memory, the GART TLB, translation enable, and device accesses through the aperture.
 * Its own file: this is the hardware; the kernel's drivers (the GART IOMMU and AGP) are beside it.
 */
import './events.js';
import { Errno, KernelBug } from '@mmnsim/core';
import type { Kernel } from '@mmnsim/core';
import { PAGE_SIZE } from '@mmnsim/mm';
import type { CacheModel, MmCore } from '@mmnsim/mm';

/** GATT entry bit: the entry is valid (`GPTE_VALID`). */
export const GPTE_VALID = 1;
/** GATT entry bit: accesses through it are snooped (`GPTE_COHERENT`). */
export const GPTE_COHERENT = 2;

/**
 * Encodes a GATT entry for frame `pfn` (`GPTE_ENCODE`: address bits 12–31 in place, bits 32–39
 * in entry bits 4–11, then the flag bits).
 * @see arch/x86/include/asm/gart.h: GPTE_ENCODE (6.17)
 */
export function gptEncode(pfn: number, flags: number): number {
  const pa = pfn * PAGE_SIZE;
  const low = pa % 2 ** 32;
  const high = Math.floor(pa / 2 ** 32) & 0xff;
  return ((low & 0xfffff000) | (high << 4) | flags) >>> 0;
}

/** The frame a GATT entry points at (`GPTE_DECODE`). */
export function gptDecode(entry: number): number {
  const low = (entry & 0xfffff000) >>> 0;
  const high = (entry >>> 4) & 0xff;
  return (high * 2 ** 32 + low) / PAGE_SIZE;
}

/** Bus address of the aperture's first page. */
export const APERTURE_BASE = 0xe0000000;

/**
 * The GART: `pages` aperture pages starting at bus address {@link APERTURE_BASE}, each
 * translated by a 32-bit GATT entry stored in RAM (`gattPfns`, 1024 entries per frame, written
 * by the CPU through the direct map, read by the GART's table walker without snooping), a GART
 * TLB caching walked entries until a flush, and the physical frames the aperture's addresses
 * occupy in RAM (`apertureFrames`, whose direct map the kernel must make not-present).
 *
 * Device accesses are non-snooped for AGP graphics traffic, and snooped for PCI DMA through an
 * entry with `GPTE_COHERENT`.
 *
 * Context: plain functions (one hardware step each).
 *
 * @see arch/x86/kernel/amd_gart_64.c, drivers/char/agp/amd64-agp.c
 */
export class GartHw {
  /** Frames holding the GATT (set by the driver before it enables translation). */
  gattPfns: number[] = [];
  /** Frames behind the aperture's physical addresses (the RAM the aperture shadows). */
  apertureFrames: number[] = [];
  /** GARTEN: translation enabled. */
  enabled = false;
  private readonly tlb = new Map<number, number>();

  /**
   * @param kernel the kernel services.
   * @param core the memory model.
   * @param caches the cache model (for non-snooped accesses and the GATT in memory).
   * @param pages aperture pages.
   */
  constructor(
    readonly kernel: Kernel,
    readonly core: MmCore,
    readonly caches: CacheModel,
    readonly pages: number,
  ) {}

  /** Aperture page of bus address `bus`, or -1 outside the aperture. */
  indexOf(bus: number): number {
    if (!Number.isSafeInteger(bus)) return -1;
    const i = Math.floor((bus - APERTURE_BASE) / PAGE_SIZE);
    return i >= 0 && i < this.pages ? i : -1;
  }

  /** GATT entry `index` as it is in memory now (what a walk after a flush would load). */
  gattEntry(index: number): number {
    return this.core.phys.read(this.gattPfns[index >> 10]!, index & 1023);
  }

  /**
   * The CPU writes GATT entry `index` through the direct map (cached if the GATT is still
   * write-back — then the walker does not see it until the line is written back). Returns 0, or
   * -EINVAL for an index outside the aperture.
   */
  setEntry(index: number, entry: number, pfn: number): number {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.pages) return -Errno.EINVAL;
    if (this.gattPfns.length === 0)
      throw new KernelBug('GATT entry written before the GATT exists');
    this.caches.kstore(this.gattPfns[index >> 10]!, index & 1023, entry);
    const bus = this.kernel.bus;
    if (bus.wants('gart.gatt.set')) bus.emit('gart.gatt.set', { index, pfn, entry });
    return 0;
  }

  /** Sets GARTEN (`enable_gart_translation`: GATT base register, then the enable bit). */
  enable(): void {
    this.enabled = true;
    const bus = this.kernel.bus;
    if (bus.wants('gart.enable'))
      bus.emit('gart.enable', { base: APERTURE_BASE, pages: this.pages });
  }

  /** Flushes the GART TLB (`amd_flush_garts`: the cache-flush bit of the misc control register). */
  flush(): void {
    const dropped = this.tlb.size;
    this.tlb.clear();
    const bus = this.kernel.bus;
    if (bus.wants('gart.flush')) bus.emit('gart.flush', { dropped });
  }

  private error(dev: string, bus: number, reason: string): number {
    const b = this.kernel.bus;
    if (b.wants('gart.error')) b.emit('gart.error', { dev, bus, reason });
    return -Errno.EIO;
  }

  /** Translates (TLB, else a non-snooped walk of the GATT); returns the entry used or a negated errno. */
  private translate(dev: string, bus: number): { index: number; entry: number } | number {
    if (!this.enabled) return this.error(dev, bus, 'GART translation disabled (master abort)');
    const index = this.indexOf(bus);
    if (index < 0) return this.error(dev, bus, 'bus address outside the aperture (master abort)');
    let entry = this.tlb.get(index);
    if (entry === undefined) {
      entry = this.caches.aliasRead(this.gattPfns[index >> 10]!, index & 1023, 'GART table walk');
      this.tlb.set(index, entry);
    }
    if ((entry & GPTE_VALID) === 0)
      return this.error(dev, bus, `GART PTE error: entry ${index} not valid`);
    return { index, entry };
  }

  /**
   * A device access through the aperture: word `word` of the page at bus address `bus`
   * (page-aligned part), a write if `value` is given. `pci` marks PCI DMA (snooped when the
   * entry has GPTE_COHERENT); AGP graphics traffic is never snooped. Returns the value read (or
   * 0 for a write), or a negated errno (-EIO for a GART error).
   */
  access(dev: string, bus: number, word: number, value: number | undefined, pci: boolean): number {
    if (!Number.isInteger(word) || word < 0 || word >= 1024) return -Errno.EINVAL;
    const t = this.translate(dev, bus);
    if (typeof t === 'number') return t;
    const pfn = gptDecode(t.entry);
    const snooped = pci && (t.entry & GPTE_COHERENT) !== 0;
    const b = this.kernel.bus;
    if (b.wants('gart.access')) {
      b.emit('gart.access', {
        dev,
        index: t.index,
        pfn,
        write: value !== undefined,
        snooped,
        used: t.entry,
        gatt: this.gattEntry(t.index),
      });
    }
    const by = `${dev} via aperture page ${t.index}`;
    if (value === undefined)
      return snooped ? this.core.phys.read(pfn, word) : this.caches.aliasRead(pfn, word, by);
    if (snooped) this.caches.coherentWrite(pfn, word, value >>> 0);
    else this.caches.aliasWrite(pfn, word, value, by);
    return 0;
  }
}
