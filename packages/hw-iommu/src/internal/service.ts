/**
 * The `iommu` plugin's service: creates the IOMMU unit and its tasks, attaches devices, and
 * offers the driver-facing API (DMA API through the agent, raw `iommu_map`/`iommu_unmap`, SVA
 * bind/unbind). Its own file: it is what the plugin binds and what users get from the container.
 */
import { ConfigError, Errno } from '@mmnsim/core';
import type { Kernel, TaskGen } from '@mmnsim/core';
import { PAGE_SIZE } from '@mmnsim/mm';
import type { MmService, MmStruct, MmuNotifierSubsystem, SecondaryMmu } from '@mmnsim/mm';
import type { FillClock, TranslationCache } from './cache.js';
import { IOVA_FQ_TIMEOUT_NS } from './constants.js';
import type { IommuBug } from './constants.js';
import { SvaDevice } from './device.js';
import { IommuDmaAgent } from './dma.js';
import { PageRequestQueue } from './prq.js';
import type { QiDesc } from './qi.js';
import { SvaManager } from './sva.js';
import { IommuDeviceState, IommuUnit } from './unit.js';
import type { IommuDomain, IommuDomainType } from './unit.js';

/** The plugin options the service uses (see `IommuOptionsSchema`). */
export interface IommuServiceOptions {
  /** IOTLB entries. */
  readonly iotlbEntries: number;
  /** Strict invalidation (`iommu.strict=1`) or lazy. */
  readonly strict: boolean;
  /** Flush-queue entries per domain (lazy mode). */
  readonly fqSize: number;
  /** `vt-d` or `smmuv3`. */
  readonly flavour: 'vt-d' | 'smmuv3';
  /** SMMUv3 broadcast TLB maintenance. */
  readonly btm: boolean;
  /** Page request queue entries. */
  readonly prqDepth: number;
  /** The IOMMU's name. */
  readonly name: string;
  /** The device execution context its hardware runs on. */
  readonly engine: string;
  /** The CPU of the page-request thread and the I/O page-fault kworker (default: the last). */
  readonly faultCpu?: number | undefined;
  /** Planted bugs. */
  readonly bugs: readonly IommuBug[];
}

/** Options of {@link IommuService.createDevice}. */
export interface IommuDeviceOptions {
  /** The device execution context its DMA and ATS engines run on (default: the device's name). */
  readonly engine?: string;
  /** PASIDs it supports (`max_pasids`; default 2^20; 0: no PASID capability). */
  readonly maxPasids?: number;
  /** ATS enabled (default true). */
  readonly ats?: boolean;
  /** PRI enabled (default true). */
  readonly pri?: boolean;
  /** ATC entries (default 64). */
  readonly atcEntries?: number;
  /** The RID domain its DMA-API traffic uses (default `dma`). */
  readonly domain?: Exclude<IommuDomainType, 'sva'>;
}

/**
 * The IOMMU service: one IOMMU unit (`options.name`, its hardware on the device context
 * `options.engine`), the DMA API on it, SVA, and the devices behind it.
 *
 * ## Example
 * ```ts
 * const sim = Simulation.create({
 *   seed: 1, cpus: 2, devices: ['dmar0', 'accel0'],
 *   plugins: [mmPlugin(), iommuPlugin()],
 * });
 * const iommu = sim.get(IommuService);
 * const accel = iommu.createDevice('accel0');
 * sim.spawn('app', 0, function* () {
 *   const pasid = yield* iommu.bind('accel0', proc.mm);
 * });
 * ```
 *
 * @see iommu_probe_device
 * @see iommu_sva_bind_device
 */
export class IommuService {
  /** The IOMMU. */
  readonly unit: IommuUnit;
  /** Its page-request queue. */
  readonly prq: PageRequestQueue;
  /** The DMA agent (contributed to `DmaAgentContribution`). */
  readonly agent: IommuDmaAgent;
  /** SVA. */
  readonly sva: SvaManager;
  private readonly models = new Map<string, SvaDevice>();
  private readonly fills: FillClock = { n: 0 };
  private started = false;
  private readonly fqArmed = new Set<IommuDomain>();

  /**
   * Built by the `iommu` plugin.
   * @param kernel the kernel services.
   * @param mm the memory model.
   * @param mmn the notifier subsystem.
   * @param options the validated options.
   */
  constructor(
    private readonly kernel: Kernel,
    mm: MmService,
    mmn: MmuNotifierSubsystem,
    readonly options: IommuServiceOptions,
  ) {
    this.unit = new IommuUnit(
      kernel,
      mm.core,
      options.name,
      options.engine,
      {
        iotlbEntries: options.iotlbEntries,
        fqSize: options.fqSize,
        flavour: options.flavour,
        btm: options.btm,
        bugs: new Set(options.bugs),
      },
      this.fills,
    );
    const cpus = kernel.scheduler.contexts.filter((c) => c.kind === 'cpu').length;
    this.prq = new PageRequestQueue(
      kernel,
      this.unit,
      options.prqDepth,
      options.faultCpu ?? cpus - 1,
    );
    this.agent = new IommuDmaAgent(this.unit, options.strict, (d, dev) => this.armFq(d, dev));
    this.sva = new SvaManager(kernel, mmn, () => this.prq, this.fills);
  }

  /** The memory model's state. */
  get core(): MmService['core'] {
    return this.unit.core;
  }

  /** The device models created so far. */
  get devices(): SvaDevice[] {
    return [...this.models.values()];
  }

  /** The device model named `name`. */
  device(name: string): SvaDevice | undefined {
    return this.models.get(name);
  }

  /** Every ATC (live). */
  *atcs(): IterableIterator<TranslationCache> {
    for (const d of this.models.values()) if (d.atc !== null) yield d.atc;
  }

  /** The IOTLB and every ATC, for `SecondaryMmuOracle` (`mmus`). */
  secondaryMmus(): SecondaryMmu[] {
    return [this.unit.iotlb, ...this.atcs()];
  }

  private start(): void {
    if (this.started) return;
    const sched = this.kernel.scheduler;
    const ctx = sched.context(this.options.engine);
    if (ctx.kind !== 'device')
      throw new ConfigError(
        `iommu: engine "${this.options.engine}" is a ${ctx.kind}, not a device context (add it to Simulation.create({ devices }))`,
      );
    this.started = true;
    sched.spawn(`${this.unit.name}-qi`, this.options.engine, () => this.unit.qi.engine(), {
      daemon: true,
    });
    this.prq.start();
  }

  /**
   * Puts device `name` behind the IOMMU (`iommu_probe_device`) without a device model: its
   * DMA-API traffic (through `dmaAgentFor`) is translated by its RID domain. Returns what the
   * IOMMU knows of it.
   *
   * @throws ConfigError for a duplicate name or bad options.
   */
  attach(name: string, options: IommuDeviceOptions = {}): IommuDeviceState {
    if (this.unit.devices.has(name))
      throw new ConfigError(`iommu.attach: "${name}" is already attached`);
    const maxPasids = options.maxPasids ?? 1 << 20;
    if (!Number.isInteger(maxPasids) || maxPasids < 0 || maxPasids > 1 << 20)
      throw new ConfigError(
        `iommu.attach(${name}): maxPasids must be an integer in [0, 2^20], got ${String(maxPasids)}`,
      );
    const atc = options.atcEntries ?? 64;
    if (!Number.isInteger(atc) || atc < 1 || atc > 65536)
      throw new ConfigError(
        `iommu.attach(${name}): atcEntries must be an integer in [1, 65536], got ${String(atc)}`,
      );
    const type = options.domain ?? 'dma';
    if (type !== 'dma' && type !== 'identity' && type !== 'blocked')
      throw new ConfigError(
        `iommu.attach(${name}): domain must be 'dma', 'identity' or 'blocked', got ${String(type)}`,
      );
    this.start();
    const dom = this.unit.allocDomain(type);
    const st = new IommuDeviceState(
      name,
      this.unit.devices.size + 1,
      maxPasids,
      options.ats ?? true,
      (options.pri ?? true) && maxPasids > 0,
      dom,
    );
    this.unit.devices.set(name, st);
    return st;
  }

  /**
   * Creates an SVA-capable device model `name` behind the IOMMU (see {@link SvaDevice}), its
   * engines on the device context `options.engine` (default: `name`).
   *
   * @throws ConfigError for a duplicate name, bad options, or an engine that is not a device context.
   */
  createDevice(name: string, options: IommuDeviceOptions = {}): SvaDevice {
    const engine = options.engine ?? name;
    const ctx = this.kernel.scheduler.context(engine);
    if (ctx.kind !== 'device')
      throw new ConfigError(
        `iommu.createDevice(${name}): engine "${engine}" is a ${ctx.kind}, not a device context (add it to Simulation.create({ devices }))`,
      );
    const st = this.attach(name, options);
    const dev = new SvaDevice(
      this.kernel,
      this.unit,
      st,
      this.prq,
      engine,
      options.atcEntries ?? 64,
    );
    this.models.set(name, dev);
    return dev;
  }

  private state(name: string): IommuDeviceState | undefined {
    return this.unit.devices.get(name);
  }

  /** `iommu_sva_bind_device`: the PASID, or a negated errno (see `SvaManager.bind`); -ENODEV for a device not behind the IOMMU. */
  *bind(device: string, mm: MmStruct): TaskGen<number> {
    const st = this.state(device);
    if (st === undefined) return -Errno.ENODEV;
    const r = yield* this.sva.bind(this.unit, st, mm);
    if (r >= 0) this.models.get(device)?.resume(r);
    return r;
  }

  /** `iommu_sva_unbind_device`: 0, or -EINVAL when there is no bond (unbinding twice), -ENODEV for an unknown device. */
  *unbind(device: string, mm: MmStruct): TaskGen<number> {
    const st = this.state(device);
    if (st === undefined) return -Errno.ENODEV;
    return yield* this.sva.unbind(this.unit, st, mm);
  }

  /**
   * `iommu_map(domain, iova, paddr, size, prot)` on the RID domain of `device`: 0, or -EINVAL
   * when `iova`, `paddr` or `size` is not a multiple of 4 KiB (or not a non-negative integer), the
   * domain is not a paging domain, or a frame is outside memory; -EEXIST if a page is already
   * mapped. A zero `size` maps nothing and returns 0, as in Linux.
   *
   * @see iommu_map
   */
  iommuMap(device: string, iova: number, paddr: number, size: number, write = true): number {
    const st = this.state(device);
    if (st === undefined) return -Errno.ENODEV;
    const d = st.domain;
    if (d.type !== 'dma') return -Errno.EINVAL;
    for (const v of [iova, paddr, size])
      if (!Number.isInteger(v) || v < 0 || v % PAGE_SIZE !== 0) return -Errno.EINVAL;
    const pages = size / PAGE_SIZE;
    const base = iova / PAGE_SIZE;
    const pfn = paddr / PAGE_SIZE;
    if (pfn + pages > this.unit.core.phys.total) return -Errno.EINVAL;
    for (let i = 0; i < pages; i++) if (d.pt.has(base + i)) return -Errno.EEXIST;
    for (let i = 0; i < pages; i++) d.pt.set(base + i, { pfn: pfn + i, write });
    const bus = this.kernel.bus;
    if (pages > 0 && bus.wants('iommu.map'))
      bus.emit('iommu.map', { unit: this.unit.name, did: d.did, iova, pfn, pages });
    return 0;
  }

  /**
   * `iommu_unmap(domain, iova, size)` on the RID domain of `device`, with the IOTLB sync of strict
   * mode: returns the bytes unmapped — 0 for an unaligned or zero `size` / `iova` (Linux returns
   * 0 there too).
   *
   * @see iommu_unmap
   */
  *iommuUnmap(device: string, iova: number, size: number): TaskGen<number> {
    const st = this.state(device);
    if (st === undefined || st.domain.type !== 'dma') return 0;
    for (const v of [iova, size])
      if (!Number.isInteger(v) || v <= 0 || v % PAGE_SIZE !== 0) return 0;
    const d = st.domain;
    const base = iova / PAGE_SIZE;
    let n = 0;
    while (n < size / PAGE_SIZE && d.pt.delete(base + n)) n++;
    if (n === 0) return 0;
    const bus = this.kernel.bus;
    if (bus.wants('iommu.unmap'))
      bus.emit('iommu.unmap', { unit: this.unit.name, did: d.did, iova, pages: n });
    const descs: Omit<QiDesc, 'id' | 'done'>[] = [
      { kind: 'iotlb', did: d.did, pasid: -1, addr: iova, pages: n, device: '' },
    ];
    if (st.ats)
      descs.push({ kind: 'devtlb', did: d.did, pasid: -1, addr: iova, pages: n, device: st.name });
    yield* this.unit.qi.submitSync(descs);
    return n * PAGE_SIZE;
  }

  /** Flushes the lazy-mode flush queue of `device`'s domain now (`iommu_dma_flush_iotlb_all`). */
  *flushQueue(device: string): TaskGen<void> {
    const st = this.state(device);
    if (st !== undefined) yield* this.agent.flushQueue(st.domain, st);
  }

  private armFq(d: IommuDomain, dev: IommuDeviceState): void {
    if (this.fqArmed.has(d)) return;
    this.fqArmed.add(d);
    const sched = this.kernel.scheduler;
    const agent = this.agent;
    const armed = this.fqArmed;
    // fq_flush_timeout: a timer IOVA_FQ_TIMEOUT after the first queued entry.
    sched.spawn(
      `${this.unit.name}-fq-timer`,
      this.prq.cpu,
      function* () {
        yield* sched.sleepFor(IOVA_FQ_TIMEOUT_NS);
        armed.delete(d);
        yield* agent.flushQueue(d, dev);
      },
      { daemon: true },
    );
  }
}
