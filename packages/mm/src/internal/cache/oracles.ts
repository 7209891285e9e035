/**
 * The cache model's oracles: mixed memory types for one frame, and data an alias wrote that a
 * cache write-back overwrote. Their own file so that simulations without the cache model do not
 * load them, and because they are checks, not hardware.
 */
import type { Oracle, OracleContext } from '@mmnsim/core';
import { ptePfn, ptePresent } from '../pte.js';
import type { CacheModel } from './cache.js';

function hex(v: number): string {
  return '0x' + (v >>> 0).toString(16);
}

/**
 * Reports `mixed-memory-type` when a frame is used uncached, write-combining or non-snooped
 * through an alias while it has a live write-back mapping or a cache line, at the moment the
 * two meet: a non-snooped access or an alias binding (GATT entry) of a frame with WB users, or a
 * new WB mapping (user PTE, device translation) of a frame whose direct map is UC/WC or that is
 * bound to an alias. x86 leaves the outcome undefined (Intel SDM vol. 3A §11.12.4, "Programming
 * the PAT"); the `agp.h` comment and the `->release` comment of `include/linux/mmu_notifier.h`
 * forbid it. One report per frame per run.
 *
 * @see arch/x86/include/asm/agp.h, include/linux/mmu_notifier.h (struct mmu_notifier_ops, release)
 */
export class MixedMemoryTypeOracle implements Oracle {
  /** Oracle id. */
  readonly id = 'mixed-memory-type';
  private readonly reported = new Set<number>();

  /** @param model the cache model whose state it checks. */
  constructor(private readonly model: CacheModel) {}

  /** Subscribes to alias accesses and bindings, PTE sets and device WB mappings. */
  attach(ctx: OracleContext): void {
    const m = this.model;
    const report = (pfn: number, alias: string, wb: string[], seq: number): void => {
      if (this.reported.has(pfn)) return;
      this.reported.add(pfn);
      ctx.report({
        kind: 'mixed-memory-type',
        message: `frame ${pfn} is used through ${alias} while it has ${wb.join(', ')}: mixed memory types for one physical page (undefined on x86; a dirty or speculatively filled line can overwrite what the alias writes)`,
        evidence: seq >= 0 ? [seq] : [],
        details: { pfn, alias, writeBack: wb },
      });
    };
    ctx.bus.on('cache.alias.access').subscribe((e) => {
      if (!m.hasWbUsers(e.data.pfn) || this.reported.has(e.data.pfn)) return;
      report(e.data.pfn, e.data.by, m.wbUsers(e.data.pfn), e.seq);
    });
    ctx.bus.on('cache.alias.bind').subscribe((e) => {
      if (!e.data.live) return;
      const wb = m.wbUsers(e.data.pfn);
      if (wb.length > 0) report(e.data.pfn, e.data.by, wb, e.seq);
    });
    const nonWb = (pfn: number): string | null => {
      const alias = m.aliasBound.get(pfn);
      if (alias !== undefined) return alias;
      const t = m.directMap.type(pfn);
      return t === 'UC' || t === 'WC' ? `the kernel direct map (${t})` : null;
    };
    ctx.bus.on('mm.pte.set').subscribe((e) => {
      const pte = e.data.pte;
      if (!ptePresent(pte)) return;
      const pfn = ptePfn(pte);
      const alias = nonWb(pfn);
      if (alias !== null)
        report(pfn, alias, [`a user PTE (WB) of mm ${e.data.mm} at ${hex(e.data.va)}`], e.seq);
    });
    ctx.bus.on('cache.wbmap').subscribe((e) => {
      if (!e.data.live) return;
      const alias = nonWb(e.data.pfn);
      if (alias !== null) report(e.data.pfn, alias, [`${e.data.domain} translation (WB)`], e.seq);
    });
  }
}

/**
 * Reports `cache-writeback-corruption` (on `cache.lost`) when a dirty line's write-back overwrote words that a
 * non-snooped alias (the GPU through the GART aperture, a UC/WC mapping) wrote after the line
 * was filled: the bytes are lost. The message names the line, the write-back and each word
 * (the value the alias wrote and the stale value that replaced it).
 *
 * @see include/linux/mmu_notifier.h (struct mmu_notifier_ops, release)
 */
export class CacheCorruptionOracle implements Oracle {
  /** Oracle id. */
  readonly id = 'cache-writeback-corruption';

  /** Subscribes to `cache.lost` (and numbers alias writes). */
  attach(ctx: OracleContext): void {
    // Keeps alias writes numbered, so a report can cite the write it lost.
    ctx.bus.on('cache.alias.access').subscribe(() => undefined);
    ctx.bus.on('cache.lost').subscribe((e) => {
      const c = e.data.clobbered;
      if (c.length === 0) return;
      const words = c
        .slice(0, 4)
        .map(
          ([w, stale, lost, seq]) =>
            `word ${w}: ${hex(lost!)} (event #${seq}) -> stale ${hex(stale!)}`,
        )
        .join('; ');
      ctx.report({
        kind: 'cache-writeback-corruption',
        message: `${e.data.domain} cache wrote back dirty line ${e.data.line} of frame ${e.data.pfn} (${e.data.reason}) over ${c.length} word(s) written through a non-snooped alias: ${words}`,
        evidence: [...c.map((x) => x[3]!), e.data.writeback, e.seq].filter((s) => s >= 0),
        details: { pfn: e.data.pfn, line: e.data.line, domain: e.data.domain, clobbered: c },
      });
    });
  }
}

/**
 * The cache model's oracles for `model`.
 * @param model the attached cache model.
 * @returns the mixed-memory-type and write-back-corruption oracles.
 */
export function cacheOracles(model: CacheModel): Oracle[] {
  return [new MixedMemoryTypeOracle(model), new CacheCorruptionOracle()];
}
