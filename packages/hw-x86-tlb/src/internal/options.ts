import { serviceId } from '@mmnsim/core';
import { z } from 'zod';

/**
 * Deliberately broken variants of the flush code, each one a bug the kernel's comments or the
 * spec's scenarios describe. They exist to show (and to test) that the stale-TLB oracle finds
 * what a missing or late flush does; `'none'` is the kernel's behaviour.
 */
export const X86_TLB_BUGS = [
  'none',
  'skip-lazy-when-tables-freed',
  'no-lazy-generation-check',
  'no-ipi-wait',
  'partial-flush-ignores-generation',
] as const;

/**
 * One of {@link X86_TLB_BUGS}:
 * - `'skip-lazy-when-tables-freed'`: `native_flush_tlb_multi` skips lazy CPUs even when page
 *   tables are freed (scenario 33's bug: a lazy CPU keeps the freed table in its
 *   paging-structure cache and walks it speculatively);
 * - `'no-lazy-generation-check'`: `switch_mm_irqs_off` back to the lazily loaded mm does not
 *   compare `tlb_gen` (scenario 32's bug: entries a skipped flush should have removed are used);
 * - `'no-ipi-wait'`: the initiator does not wait for the shootdown acknowledgements, so pages are
 *   freed while another CPU still translates to them;
 * - `'partial-flush-ignores-generation'`: `flush_tlb_func` does a partial flush even when the CPU
 *   is more than one generation behind (the full/partial reordering the kernel's comment
 *   describes).
 */
export type X86TlbBug = (typeof X86_TLB_BUGS)[number];

/** How a full TLB set chooses the entry a fill evicts. */
export const TLB_REPLACEMENTS = ['lru', 'fifo', 'random'] as const;

/**
 * Replacement policy of a TLB set: `'lru'` (least recently used; real cores use a tree
 * pseudo-LRU, which LRU approximates), `'fifo'` (oldest fill) or `'random'` (seeded, from the
 * `x86-tlb` random stream).
 */
export type TlbReplacement = (typeof TLB_REPLACEMENTS)[number];

/** The `x86-tlb` plugin's options after validation and defaults. */
export interface X86TlbOptions {
  /** Pages above which a range flush becomes a full flush (`tlb_single_page_flush_ceiling`). */
  readonly flushCeiling: number;
  /** TLB entries per CPU. */
  readonly entries: number;
  /** Entries per set (associativity), capped at `entries`. */
  readonly ways: number;
  /** Replacement policy within a set. */
  readonly replacement: TlbReplacement;
  /** PCIDs on (`X86_FEATURE_PCID`). */
  readonly pcid: boolean;
  /** Paging-structure-cache entries per CPU, all levels together. */
  readonly pscEntries: number;
  /** A deliberately broken variant of the flush code, or `'none'`. */
  readonly bug: X86TlbBug;
}

/** The `x86-tlb` plugin's options as given to {@link X86TlbOptionsSchema}: every field optional. */
export type X86TlbOptionsInput = { readonly [K in keyof X86TlbOptions]?: X86TlbOptions[K] };

/**
 * Schema of the `x86-tlb` plugin's options; unknown keys are rejected:
 * - `flushCeiling`: pages above which a range flush becomes a full flush (the kernel's
 *   `tlb_single_page_flush_ceiling`, a debugfs tunable; default 33);
 * - `entries`: TLB entries per CPU (default 1536, the second-level TLB of a recent core);
 * - `ways`: associativity, entries per set (default 12, as that TLB; capped at `entries`, which
 *   must be a multiple of it);
 * - `replacement`: `'lru'` (default), `'fifo'` or `'random'` (see {@link TlbReplacement});
 * - `pcid`: PCIDs on (default true): each CPU keeps up to 6 mms' entries tagged by ASID; without
 *   them every switch to another mm flushes the TLB;
 * - `pscEntries`: paging-structure-cache entries per CPU, all levels together (default 32);
 * - `bug`: a deliberately broken variant of the flush code (default `'none'`; see
 *   {@link X86TlbBug}).
 */
export const X86TlbOptionsSchema: z.ZodType<X86TlbOptions, X86TlbOptionsInput> = z
  .strictObject({
    flushCeiling: z.number().int().min(1).max(4096).default(33),
    entries: z.number().int().min(1).max(65536).default(1536),
    ways: z.number().int().min(1).max(64).default(12),
    replacement: z.enum(TLB_REPLACEMENTS).default('lru'),
    pcid: z.boolean().default(true),
    pscEntries: z.number().int().min(0).max(4096).default(32),
    bug: z.enum(X86_TLB_BUGS).default('none'),
  })
  .refine((o) => o.entries % Math.min(o.ways, o.entries) === 0, {
    message: '"entries" must be a multiple of "ways" (or smaller than it: fully associative)',
    path: ['entries'],
  });

/** Token of the `x86-tlb` plugin's validated options in the simulation container. */
export const X86TlbOptions = serviceId<X86TlbOptions>('@mmnsim/hw-x86-tlb:X86TlbOptions');
