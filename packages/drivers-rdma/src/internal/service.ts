import { ConfigError, describeIssues } from '@mmnsim/core';
import type { Kernel } from '@mmnsim/core';
import { DirectDma, dmaAgentFor } from '@mmnsim/mm';
import type {
  DmaAgent,
  MmService,
  MmStruct,
  MmuNotifierSubsystem,
  SecondaryInterval,
  SecondaryMmu,
  SecondaryMmuOracleOptions,
} from '@mmnsim/mm';
import { RdmaDevice } from './device.js';
import type { RdmaEnv } from './device.js';
import type { MemoryRegion } from './mr.js';
import { OdpMr } from './mr.js';
import { RdmaDeviceOptionsSchema } from './options.js';
import type { RdmaDeviceOptions, RdmaOptions } from './options.js';

/**
 * The `rdma` plugin's service: creates NICs, keeps the per-mm `pinned_vm` accounting of pinned
 * registrations, and lists what the notifier oracles need to check the devices.
 *
 * ## Example
 * ```ts
 * const sim = Simulation.create({
 *   seed: 1, cpus: 2, devices: ['nic0'],
 *   plugins: [mmPlugin(), rdmaPlugin({ memlockLimitPages: 64 })],
 * });
 * const rdma = sim.get(RdmaService);
 * const nic = rdma.createDevice('mlx5_0', { engine: 'nic0' });
 * for (const o of notifierOracles(sim, rdma.oracleOptions())) sim.addOracle(o);
 * ```
 *
 * @see ib_register_device
 */
export class RdmaService {
  /**
   * Every secondary MMU of every device (a device and its `<name>/pinned` MMU), filled as
   * devices are created: give it to `SecondaryMmuOracle` as `mmus`.
   */
  readonly secondaryMmus: SecondaryMmu[] = [];
  /**
   * The interval subscription of every live ODP MR, as `{ mmu: device name, sub }`: give it to
   * `SecondaryMmuOracle` as `intervals` (invariant 48). Kept up to date as MRs come and go.
   */
  readonly intervals: SecondaryInterval[] = [];
  private readonly devs = new Map<string, RdmaDevice>();
  private readonly pinned = new Map<MmStruct, number>();
  private readonly direct: DirectDma;
  private keys = 1;

  /**
   * Built by the `rdma` plugin.
   * @param kernel the kernel services.
   * @param mm the memory model.
   * @param mmn the MMU notifier subsystem.
   * @param options the validated plugin options.
   * @param agents the contributed DMA agents (an IOMMU plugin's).
   */
  constructor(
    private readonly kernel: Kernel,
    private readonly mm: MmService,
    private readonly mmn: MmuNotifierSubsystem,
    readonly options: RdmaOptions,
    private readonly agents: readonly DmaAgent[],
  ) {
    this.direct = new DirectDma(mm.core);
  }

  /** The devices created so far. */
  get devices(): RdmaDevice[] {
    return [...this.devs.values()];
  }

  /** The device named `name`, if created. */
  device(name: string): RdmaDevice | undefined {
    return this.devs.get(name);
  }

  /**
   * Creates a NIC named `name` (`ib_register_device`): its UMR engine on the execution context
   * `options.engine` (default: a device context named like the NIC), its page-fault kworker on
   * CPU `options.faultCpu` (default: the last CPU). Its DMA goes through the first contributed
   * `DmaAgent` that handles it, else directly (no IOMMU).
   *
   * @throws ConfigError for a duplicate name, bad options, or an engine that is not a device
   * context of the simulation.
   */
  createDevice(name: string, options: RdmaDeviceOptions = {}): RdmaDevice {
    if (this.devs.has(name)) throw new ConfigError(`rdma.createDevice: "${name}" already exists`);
    const parsed = RdmaDeviceOptionsSchema.safeParse(options);
    if (!parsed.success)
      throw new ConfigError(`rdma.createDevice(${name}): ${describeIssues(parsed.error)}`);
    const o = parsed.data;
    const sched = this.kernel.scheduler;
    const engine = o.engine ?? name;
    const ctx = sched.context(engine);
    if (ctx.kind !== 'device') {
      throw new ConfigError(
        `rdma.createDevice(${name}): engine "${engine}" is a ${ctx.kind}, not a device context (add it to Simulation.create({ devices }))`,
      );
    }
    const cpus = sched.contexts.filter((c) => c.kind === 'cpu').length;
    const faultCpu = o.faultCpu ?? cpus - 1;
    if (faultCpu >= cpus)
      throw new ConfigError(`rdma.createDevice(${name}): faultCpu ${faultCpu} ≥ ${cpus} CPUs`);
    const env: RdmaEnv = {
      kernel: this.kernel,
      core: this.mm.core,
      mmn: this.mmn,
      options: this.options,
      nextKey: () => this.keys++,
      pinnedVm: (mm) => this.pinnedVm(mm),
      setPinnedVm: (mm, pages) => {
        if (pages === 0) this.pinned.delete(mm);
        else this.pinned.set(mm, pages);
      },
      onMr: (mr, added) => this.onMr(mr, added),
    };
    const agent = dmaAgentFor(this.agents, name, this.direct);
    const dev = new RdmaDevice(name, env, agent, { engine, faultCpu, bugs: o.bugs });
    this.devs.set(name, dev);
    this.secondaryMmus.push(dev, dev.pinnedMmu);
    const bus = this.kernel.bus;
    if (bus.wants('rdma.device.create'))
      bus.emit('rdma.device.create', { dev: name, engine, faultCpu });
    return dev;
  }

  /** `mm->pinned_vm`: pages of `mm` pinned by registrations of this plugin. */
  pinnedVm(mm: MmStruct): number {
    return this.pinned.get(mm) ?? 0;
  }

  /**
   * Options for `SecondaryMmuOracle` / `notifierOracles`: the devices' secondary MMUs and the
   * ODP intervals (live lists), plus the memory model for exact frame state.
   *
   * ## Example
   * ```ts
   * for (const o of notifierOracles(sim, rdma.oracleOptions())) sim.addOracle(o);
   * ```
   */
  oracleOptions(): SecondaryMmuOracleOptions {
    return { mmus: this.secondaryMmus, intervals: this.intervals, core: this.mm.core };
  }

  /** The memory region `key` of device `dev`, if registered. */
  findMr(dev: string, key: number): MemoryRegion | undefined {
    return this.devs.get(dev)?.mr(key);
  }

  private onMr(mr: MemoryRegion, added: boolean): void {
    if (!(mr instanceof OdpMr)) return;
    if (added) this.intervals.push({ mmu: mr.device.name, sub: mr.sub });
    else {
      const i = this.intervals.findIndex((iv) => iv.sub === mr.sub);
      if (i >= 0) this.intervals.splice(i, 1);
    }
  }
}
