/**
 * The CPU write-back caches and device caches of the cache model: lines tagged by physical
 * address with a dirty bit, fills, write-backs, `wbinvd`, `clflush`, snooped vs non-snooped
 * accesses, and the hardware's speculative fills and evictions as scheduled hardware steps.
 * Its own file: the cache is one concept, opt-in (nothing here runs unless a plugin resolves
 * {@link CacheModel}), and separate from the memory-type table and `set_memory_*`.
 */
import './events.js';
import { ConfigError, serviceId } from '@mmnsim/core';
import type { Kernel, TaskGen } from '@mmnsim/core';
import { WORDS_PER_PAGE } from '../constants.js';
import type { MmCore } from '../core.js';
import { DirectMap } from './memtype.js';

const KERNEL_ALIAS: Record<string, string> = {
  WC: 'kernel direct map (WC)',
  UC: 'kernel direct map (UC)',
  NP: 'kernel direct map (NP)',
};

/** Words per cache line (64 bytes). */
export const LINE_WORDS = 16;
/** Cache lines per 4 KiB frame. */
export const LINES_PER_PAGE = WORDS_PER_PAGE / LINE_WORDS;

interface Line {
  readonly data: Uint32Array;
  dirty: boolean;
}

/**
 * One cache domain: the CPUs' caches (`'cpu'`, kept coherent among CPUs by the protocol, so
 * modelled as one), or a device's own write-back cache (a secondary MMU's hardware that caches
 * what it reads and writes through its translations).
 *
 * Coherence model: memory always holds the coherent value. A snooped write (any CPU, DMA or
 * kernel write that is not an alias access) updates every domain's copy of the line, dirty or
 * not. A non-snooped write (GART graphics traffic, a UC/WC alias) reaches memory only, leaving
 * cached copies stale; a stale dirty line's write-back then overwrites it — the corruption of
 * the `->release` comment in `include/linux/mmu_notifier.h`.
 *
 * Context: plain functions (atomic steps); the hardware's own fills and evictions are tasks on
 * the domain's execution context, spawned when they become possible.
 */
export class CacheDomain {
  private readonly lines = new Map<number, Line>();
  private readonly perPfn = new Map<number, number>();
  private readonly evictors = new Set<number>();
  private readonly prefetches = new Set<number>();
  /** Frames this domain has a live write-back mapping of (a device's translations), with a count. */
  readonly wbMapped = new Map<number, number>();

  /**
   * @param model the cache model.
   * @param name domain name (`'cpu'`, `'gru0'`).
   * @param context execution context its hardware steps run on.
   * @param cpuFlushable true if `wbinvd`/`clflush` reach it (the CPU caches).
   */
  constructor(
    private readonly model: CacheModel,
    readonly name: string,
    readonly context: string,
    readonly cpuFlushable: boolean,
  ) {}

  /** Lines held now. */
  get size(): number {
    return this.lines.size;
  }

  /** True if any line of `pfn` is held. */
  holds(pfn: number): boolean {
    return (this.perPfn.get(pfn) ?? 0) > 0;
  }

  /** True if the line of `word` in `pfn` is held and dirty. */
  isDirty(pfn: number, line: number): boolean {
    return this.lines.get(pfn * LINES_PER_PAGE + line)?.dirty === true;
  }

  /** The cached value of a word, or undefined on a miss. */
  peek(pfn: number, word: number): number | undefined {
    const l = this.lines.get(pfn * LINES_PER_PAGE + ((word / LINE_WORDS) | 0));
    return l === undefined ? undefined : l.data[word % LINE_WORDS];
  }

  /** A load through a write-back mapping: a hit returns the cached word, a miss fills the line. */
  load(pfn: number, word: number): number {
    const key = pfn * LINES_PER_PAGE + ((word / LINE_WORDS) | 0);
    let l = this.lines.get(key);
    if (l === undefined) l = this.fillLine(pfn, (word / LINE_WORDS) | 0, false);
    return l.data[word % LINE_WORDS]!;
  }

  /**
   * A store through a write-back mapping: allocates the line (read for ownership), writes the
   * word into it and marks it dirty. Memory gets the coherent value too (see the class note).
   */
  store(pfn: number, word: number, value: number): void {
    const line = (word / LINE_WORDS) | 0;
    const key = pfn * LINES_PER_PAGE + line;
    let l = this.lines.get(key);
    if (l === undefined) l = this.fillLine(pfn, line, false);
    this.model.coherentWrite(pfn, word, value >>> 0);
    if (!l.dirty) this.markDirty(pfn, line, l);
  }

  /** `clear_page`'s store of a whole zero line (memory is already zero): allocates it dirty. */
  storeZeroLine(pfn: number, line: number): void {
    const key = pfn * LINES_PER_PAGE + line;
    let l = this.lines.get(key);
    if (l === undefined) {
      // A full-line store needs no fill (x86 fast-string stores write whole lines).
      l = { data: new Uint32Array(LINE_WORDS), dirty: false };
      this.lines.set(key, l);
      this.perPfn.set(pfn, (this.perPfn.get(pfn) ?? 0) + 1);
    } else l.data.fill(0);
    if (!l.dirty) this.markDirty(pfn, line, l);
  }

  private markDirty(pfn: number, line: number, l: Line): void {
    l.dirty = true;
    const bus = this.model.kernel.bus;
    if (bus.wants('cache.dirty')) bus.emit('cache.dirty', { domain: this.name, pfn, line });
    if (!this.evictors.has(pfn)) this.spawnEvictor(pfn);
  }

  /** Fills line `line` of `pfn` from memory (a demand or speculative fill); a held line stays as it is. */
  fill(pfn: number, line: number, speculative: boolean): void {
    this.fillLine(pfn, line, speculative);
  }

  private fillLine(pfn: number, line: number, speculative: boolean): Line {
    const key = pfn * LINES_PER_PAGE + line;
    const old = this.lines.get(key);
    if (old !== undefined) return old;
    const data = new Uint32Array(LINE_WORDS);
    const phys = this.model.core.phys;
    const base = line * LINE_WORDS;
    for (let i = 0; i < LINE_WORDS; i++) data[i] = phys.read(pfn, base + i);
    const l: Line = { data, dirty: false };
    this.lines.set(key, l);
    this.perPfn.set(pfn, (this.perPfn.get(pfn) ?? 0) + 1);
    const bus = this.model.kernel.bus;
    if (bus.wants('cache.fill'))
      bus.emit('cache.fill', { domain: this.name, pfn, line, speculative });
    return l;
  }

  /** Snoop: a coherent write updates the cached copy of the word, if any. */
  snoopWrite(pfn: number, word: number, value: number): void {
    const l = this.lines.get(pfn * LINES_PER_PAGE + ((word / LINE_WORDS) | 0));
    if (l !== undefined) l.data[word % LINE_WORDS] = value;
  }

  /** Snoop: a coherent rewrite of the whole frame (clear_page, copy_highpage) updates every cached line. */
  snoopFrame(pfn: number): void {
    if (!this.holds(pfn)) return;
    const phys = this.model.core.phys;
    for (let line = 0; line < LINES_PER_PAGE; line++) {
      const l = this.lines.get(pfn * LINES_PER_PAGE + line);
      if (l === undefined) continue;
      for (let i = 0; i < LINE_WORDS; i++) l.data[i] = phys.read(pfn, line * LINE_WORDS + i);
    }
  }

  /**
   * Writes back (if dirty) and invalidates one line. Returns true if it held the line.
   * @param reason for the `cache.writeback` event.
   */
  evict(pfn: number, line: number, reason: string): boolean {
    const key = pfn * LINES_PER_PAGE + line;
    const l = this.lines.get(key);
    if (l === undefined) return false;
    this.lines.delete(key);
    const n = this.perPfn.get(pfn)! - 1;
    if (n === 0) this.perPfn.delete(pfn);
    else this.perPfn.set(pfn, n);
    if (l.dirty) this.model.writeLineBack(this.name, pfn, line, l.data, reason);
    return true;
  }

  /** Writes back and invalidates every line of `pfn` (clflush of the whole page, or a device flush). Returns lines dropped. */
  flushPfn(pfn: number, reason: string): number {
    if (!this.holds(pfn)) return 0;
    let n = 0;
    for (let line = 0; line < LINES_PER_PAGE; line++) if (this.evict(pfn, line, reason)) n++;
    return n;
  }

  /** Writes back and invalidates everything (`wbinvd` for the CPU domain). Returns dirty lines written. */
  flushAll(reason: string): number {
    let dirty = 0;
    const keys = [...this.lines.keys()];
    for (const key of keys) {
      const pfn = Math.floor(key / LINES_PER_PAGE);
      if (this.lines.get(key)!.dirty) dirty++;
      this.evict(pfn, key % LINES_PER_PAGE, reason);
    }
    return dirty;
  }

  /** Registers (or drops, `delta` -1) a write-back mapping of `pfn` this domain's hardware may speculate through. */
  wbMap(pfn: number, delta: 1 | -1): void {
    const n = (this.wbMapped.get(pfn) ?? 0) + delta;
    if (n <= 0) this.wbMapped.delete(pfn);
    else this.wbMapped.set(pfn, n);
    const bus = this.model.kernel.bus;
    if (bus.wants('cache.wbmap'))
      bus.emit('cache.wbmap', { domain: this.name, pfn, live: delta > 0 });
    if (delta > 0) this.model.onWbMapping(this, pfn);
  }

  /** True if this domain's hardware may fill lines of `pfn` now (a live write-back mapping). */
  maySpeculate(pfn: number): boolean {
    if (this.cpuFlushable) return this.model.cpuHasWbMapping(pfn);
    return this.wbMapped.has(pfn);
  }

  /**
   * Posts a speculative fill opportunity for line `line` of `pfn` (the adjacent-line prefetcher
   * after an access, or a new write-back mapping). The fill is a hardware task the strategy
   * schedules like any other; when it runs it fills the line only if a write-back mapping still
   * allows it. At most one opportunity per line is pending.
   */
  hint(pfn: number, line: number): void {
    const key = pfn * LINES_PER_PAGE + line;
    if (this.prefetches.has(key) || this.lines.has(key)) return;
    this.prefetches.add(key);
    const sched = this.model.kernel.scheduler;
    sched.spawn(`${this.name}:prefetch ${pfn}.${line}`, this.context, () =>
      this.prefetchBody(pfn, line, key),
    );
  }

  private *prefetchBody(pfn: number, line: number, key: number): TaskGen<void> {
    yield* this.model.kernel.scheduler.preempt();
    this.prefetches.delete(key);
    if (!this.lines.has(key) && this.maySpeculate(pfn)) this.fill(pfn, line, true);
  }

  private spawnEvictor(pfn: number): void {
    this.evictors.add(pfn);
    const sched = this.model.kernel.scheduler;
    sched.spawn(`${this.name}:evict ${pfn}`, this.context, () => this.evictBody(pfn));
  }

  /**
   * The cache's replacement for frame `pfn`: one hardware step, at a time the strategy chooses,
   * writes back and invalidates the frame's dirty lines; lines dirtied again later get a new step.
   */
  private *evictBody(pfn: number): TaskGen<void> {
    yield* this.model.kernel.scheduler.preempt();
    this.evictors.delete(pfn);
    for (let i = 0; i < LINES_PER_PAGE; i++)
      if (this.lines.get(pfn * LINES_PER_PAGE + i)?.dirty === true) this.evict(pfn, i, 'evict');
  }
}

/**
 * The cache model: the CPU cache domain, device cache domains, the direct map's memory types,
 * the write-back mappings that allow speculation, and the non-snooped (alias) access path.
 * Opt-in: resolving it (`sim.get(CacheModel)`) attaches it; a simulation that never does pays
 * nothing.
 *
 * ## Example
 * ```ts
 * const caches = sim.get(CacheModel);
 * caches.configure({ context: 'cache' });   // the device context its hardware steps run on
 * caches.kstore(pfn, 0, 42);                // a kernel store through the WB direct map: a dirty line
 * caches.aliasWrite(pfn, 0, 7, 'gfx0');     // non-snooped: memory only, the line is now stale
 * caches.wbinvd();                          // the stale line overwrites 7 (reported)
 * ```
 *
 * @see arch/x86/mm/pat/set_memory.c, arch/x86/include/asm/special_insns.h: wbinvd, clflush
 */
export class CacheModel {
  /** The direct map's memory types. */
  readonly directMap: DirectMap;
  private cpuDomain: CacheDomain | null = null;
  private readonly domains: CacheDomain[] = [];
  /** Per frame, per word: the last non-snooped write not yet overwritten coherently. */
  private readonly aliasWrites = new Map<number, Map<number, number>>();
  private busy = false;
  /** Frames bound to a non-snooped alias now (GATT entries), with what binds them. */
  readonly aliasBound = new Map<number, string>();
  private context: string | null = null;

  /**
   * Built by the `mm` plugin on first use.
   * @param kernel the kernel services.
   * @param core the memory model.
   */
  constructor(
    readonly kernel: Kernel,
    readonly core: MmCore,
  ) {
    this.directMap = new DirectMap(core.phys.total);
    const bus = kernel.bus;
    core.phys.onWrite = (pfn, word, value) => {
      if (!this.busy) this.snoop(pfn, word, value);
    };
    // clear_page and copy_highpage go through the coherent (write-back) direct map.
    bus.on('mm.frame.alloc').subscribe((e) => this.snoopFrame(e.data.pfn));
    bus.on('mm.frame.copy').subscribe((e) => this.snoopFrame(e.data.to));
  }

  /**
   * Sets the execution context the CPU caches' hardware steps (speculative fills, evictions)
   * run on; it must be one of the simulation's devices. Called once, before the run.
   */
  configure(options: { readonly context: string }): void {
    try {
      this.kernel.scheduler.context(options.context);
    } catch {
      throw new ConfigError(
        `CacheModel.configure: "context" (${options.context}) must name one of the simulation's devices`,
      );
    }
    this.context = options.context;
  }

  /** The CPU caches (coherent among CPUs; reached by `wbinvd` and `clflush`). */
  get cpu(): CacheDomain {
    if (this.cpuDomain === null) {
      if (this.context === null)
        throw new ConfigError(
          'CacheModel: call configure({ context }) before using the CPU caches',
        );
      this.cpuDomain = new CacheDomain(this, 'cpu', this.context, true);
      this.domains.unshift(this.cpuDomain);
    }
    return this.cpuDomain;
  }

  /**
   * Creates a device cache domain (a secondary MMU's own write-back cache: CPU cache
   * maintenance does not reach it; its driver flushes it).
   * @param name domain name (unique).
   * @param context the device's execution context, where its fills and evictions run.
   */
  deviceDomain(name: string, context: string): CacheDomain {
    if (name === 'cpu' || this.domains.some((d) => d.name === name))
      throw new ConfigError(`CacheModel.deviceDomain: "name" (${name}) is already used`);
    this.kernel.scheduler.context(context);
    const d = new CacheDomain(this, name, context, false);
    this.domains.push(d);
    return d;
  }

  /** Every domain, the CPU's first. */
  get allDomains(): readonly CacheDomain[] {
    return this.domains;
  }

  /** True if the CPU may fill lines of `pfn`: the direct map or a user PTE maps it write-back. */
  cpuHasWbMapping(pfn: number): boolean {
    return this.directMap.isWb(pfn) || this.core.phys.mapcount[pfn]! > 0;
  }

  /** True if `pfn` has any write-back mapping or cache line now (see {@link CacheModel.wbUsers}). */
  hasWbUsers(pfn: number): boolean {
    if (this.directMap.isWb(pfn) || this.core.phys.mapcount[pfn]! > 0) return true;
    for (const d of this.domains) if (d.wbMapped.has(pfn) || d.holds(pfn)) return true;
    return false;
  }

  /**
   * The write-back mappings and cache lines `pfn` has now, for reports: `'direct map (WB)'`,
   * `'1 user PTE (WB)'`, `'gru0 translation (WB)'`, `'cpu: 2 lines (1 dirty)'`.
   */
  wbUsers(pfn: number): string[] {
    const out: string[] = [];
    if (this.directMap.isWb(pfn)) out.push('kernel direct map (WB)');
    const mc = this.core.phys.mapcount[pfn]!;
    if (mc > 0) out.push(`${mc} user PTE(s) (WB)`);
    for (const d of this.domains) {
      if (d.wbMapped.has(pfn)) out.push(`${d.name} translation (WB)`);
      if (d.holds(pfn)) {
        let n = 0;
        let dirty = 0;
        for (let i = 0; i < LINES_PER_PAGE; i++) {
          if (d.peek(pfn, i * LINE_WORDS) !== undefined) n++;
          if (d.isDirty(pfn, i)) dirty++;
        }
        out.push(`${d.name} cache: ${n} line(s), ${dirty} dirty`);
      }
    }
    return out;
  }

  /** Called when a device domain gains a write-back mapping: its prefetcher may now touch line 0. */
  onWbMapping(d: CacheDomain, pfn: number): void {
    d.hint(pfn, 0);
  }

  // --- CPU accesses through the kernel direct map ------------------------------------------

  /**
   * A kernel load through the direct map: cached if the frame's direct map is WB, uncached
   * otherwise. Returns the value, or -1 if the direct map entry is not present (the kernel
   * would oops; the model refuses the access).
   */
  kload(pfn: number, word: number): number {
    const t = this.directMap.type(pfn);
    if (t === 'NP') return -1;
    if (t !== 'WB') return this.aliasRead(pfn, word, KERNEL_ALIAS[t]!);
    const v = this.cpu.load(pfn, word);
    if (word % LINE_WORDS === 0 && word + LINE_WORDS < WORDS_PER_PAGE)
      this.cpu.hint(pfn, ((word / LINE_WORDS) | 0) + 1);
    return v;
  }

  /** A kernel store through the direct map (cached if WB). Returns 0, or -1 if not present. */
  kstore(pfn: number, word: number, value: number): number {
    const t = this.directMap.type(pfn);
    if (t === 'NP') return -1;
    if (t !== 'WB') {
      this.aliasWrite(pfn, word, value, KERNEL_ALIAS[t]!);
      return 0;
    }
    this.cpu.store(pfn, word, value);
    return 0;
  }

  /**
   * `clear_page` through the direct map: the zeroes land in the CPU cache as dirty lines when
   * the direct map is WB (what `alloc_page(__GFP_ZERO)` leaves behind), in memory otherwise.
   */
  clearPage(pfn: number): void {
    const t = this.directMap.type(pfn);
    if (t !== 'WB') {
      for (let w = 0; w < WORDS_PER_PAGE; w++)
        this.aliasWrite(pfn, w, 0, `clear_page (direct map ${t})`);
      return;
    }
    // Memory gets the zeroes (with their events, so the log describes the content exactly).
    const phys = this.core.phys;
    const words = phys.snapshot(pfn);
    this.busy = true;
    try {
      for (let i = 0; i < words.length; i += 2) phys.write(pfn, words[i]!, 0);
    } finally {
      this.busy = false;
    }
    this.snoopFrame(pfn);
    const d = this.cpu;
    for (let line = 0; line < LINES_PER_PAGE; line++) d.storeZeroLine(pfn, line);
  }

  // --- cache maintenance -------------------------------------------------------------------

  /** `wbinvd`: writes back and invalidates every CPU cache line. Returns dirty lines written. */
  wbinvd(): number {
    const written = this.cpuDomain === null ? 0 : this.cpuDomain.flushAll('wbinvd');
    const bus = this.kernel.bus;
    if (bus.wants('cache.wbinvd')) bus.emit('cache.wbinvd', { written });
    return written;
  }

  /** `clflush` of every line of frame `pfn` (`clflush_cache_range` over the page). Returns lines dropped. */
  clflushPage(pfn: number): number {
    return this.cpuDomain === null ? 0 : this.cpuDomain.flushPfn(pfn, 'clflush');
  }

  // --- non-snooped (alias) accesses --------------------------------------------------------

  /**
   * A non-snooped write to `pfn` (graphics traffic through the GART aperture, a UC/WC alias):
   * it reaches memory and no cache; cached copies become stale. `by` names the writer.
   */
  aliasWrite(pfn: number, word: number, value: number, by: string): void {
    const v = value >>> 0;
    const bus = this.kernel.bus;
    this.busy = true;
    try {
      this.core.phys.write(pfn, word, v);
    } finally {
      this.busy = false;
    }
    const e = bus.wants('cache.alias.access')
      ? bus.emit('cache.alias.access', { pfn, word, value: v, write: true, by })
      : undefined;
    let m = this.aliasWrites.get(pfn);
    if (m === undefined) {
      m = new Map();
      this.aliasWrites.set(pfn, m);
    }
    m.set(word, e?.seq ?? -1);
  }

  /**
   * Records that `pfn` is now reachable through a non-snooped alias `by` (a GATT entry), or no
   * longer (`live` false).
   */
  aliasBind(pfn: number, by: string, live: boolean): void {
    if (live) this.aliasBound.set(pfn, by);
    else this.aliasBound.delete(pfn);
    const bus = this.kernel.bus;
    if (bus.wants('cache.alias.bind')) bus.emit('cache.alias.bind', { pfn, by, live });
  }

  /** A non-snooped read of `pfn`: memory, whatever the caches hold. */
  aliasRead(pfn: number, word: number, by: string): number {
    const v = this.core.phys.read(pfn, word);
    const bus = this.kernel.bus;
    if (bus.wants('cache.alias.access'))
      bus.emit('cache.alias.access', { pfn, word, value: v, write: false, by });
    return v;
  }

  // --- internals used by the domains -------------------------------------------------------

  /** A coherent write: memory and every cached copy get the value. */
  coherentWrite(pfn: number, word: number, value: number): void {
    this.busy = true;
    try {
      this.core.phys.write(pfn, word, value);
    } finally {
      this.busy = false;
    }
    this.snoop(pfn, word, value);
  }

  private snoop(pfn: number, word: number, value: number): void {
    if (this.aliasWrites.size > 0) this.aliasWrites.get(pfn)?.delete(word);
    const ds = this.domains;
    for (let i = 0; i < ds.length; i++) ds[i]!.snoopWrite(pfn, word, value);
  }

  private snoopFrame(pfn: number): void {
    this.aliasWrites.delete(pfn);
    for (const d of this.domains) d.snoopFrame(pfn);
  }

  /** Writes a dirty line's data to memory, recording which alias-written words it overwrote. */
  writeLineBack(
    domain: string,
    pfn: number,
    line: number,
    data: Uint32Array,
    reason: string,
  ): void {
    const phys = this.core.phys;
    const clobbered: number[][] = [];
    const base = line * LINE_WORDS;
    const m = this.aliasWrites.get(pfn);
    this.busy = true;
    try {
      for (let i = 0; i < LINE_WORDS; i++) {
        const w = base + i;
        const mine = data[i]!;
        const cur = phys.read(pfn, w);
        if (cur === mine) continue;
        const aw = m?.get(w);
        if (aw !== undefined) {
          clobbered.push([w, mine, cur, aw]);
          m!.delete(w);
        }
        phys.write(pfn, w, mine);
      }
    } finally {
      this.busy = false;
    }
    // Other domains snoop the write-back like any coherent write.
    for (const d of this.domains) {
      if (d.name === domain || !d.holds(pfn)) continue;
      for (let i = 0; i < LINE_WORDS; i++) d.snoopWrite(pfn, base + i, data[i]!);
    }
    const bus = this.kernel.bus;
    let seq = -1;
    if (bus.wants('cache.writeback'))
      seq = bus.emit('cache.writeback', { domain, pfn, line, reason, clobbered })?.seq ?? -1;
    if (clobbered.length > 0)
      bus.emit('cache.lost', { domain, pfn, line, reason, writeback: seq, clobbered });
  }
}

/** Token of the cache model (resolving it attaches it). */
export const CacheModelId = serviceId<CacheModel>('@mmnsim/mm:CacheModel');
