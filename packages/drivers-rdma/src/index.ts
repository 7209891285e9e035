/**
 * RDMA on-demand paging and pinned memory regions for mmnsim: a NIC DMA engine executing RDMA READ/WRITE work requests through each memory region's MTT, on-demand-paging MRs built on interval notifiers (`ib_umem_odp`), and pinned MRs built on `pin_user_pages(FOLL_LONGTERM)`.
 *
 * @packageDocumentation
 */
import './internal/events.js';
import { definePlugin, Kernel, OracleContribution } from '@mmnsim/core';
import type { Plugin } from '@mmnsim/core';
import { DmaAgentContribution, MmService, MmuNotifierSubsystem } from '@mmnsim/mm';
import type { DmaAgent } from '@mmnsim/mm';
import { ContainerModule } from 'inversify';
import type { z } from 'zod';
import { RdmaOptions, RdmaOptionsSchema } from './internal/options.js';
import { RdmaOracle } from './internal/oracle.js';
import { RdmaService } from './internal/service.js';

const rdmaPluginFactory = definePlugin({
  id: 'rdma',
  requires: ['mm'],
  schema: RdmaOptionsSchema,
  token: RdmaOptions,
  module: new ContainerModule(({ bind }) => {
    bind(RdmaService)
      .toResolvedValue(
        (
          k: Kernel,
          mm: MmService,
          mmn: MmuNotifierSubsystem,
          o: RdmaOptions,
          agents: DmaAgent[] | undefined,
        ) => new RdmaService(k, mm, mmn, o, agents ?? []),
        [
          Kernel,
          MmService,
          MmuNotifierSubsystem,
          RdmaOptions,
          { serviceIdentifier: DmaAgentContribution, isMultiple: true, optional: true },
        ],
      )
      .inSingletonScope();
    bind(OracleContribution)
      .toResolvedValue((svc: RdmaService) => new RdmaOracle(svc), [RdmaService])
      .inSingletonScope();
  }),
});

/**
 * The `rdma` plugin: this package's only wiring point (ARCHITECTURE §6). Requires the `mm`
 * plugin. Binds the {@link RdmaService} (create NICs with it) and contributes the
 * {@link RdmaOracle}. NIC engines need device execution contexts (`devices` of
 * `Simulation.create`).
 *
 * ## Example
 * ```ts
 * const sim = Simulation.create({
 *   seed: 1, cpus: 2, devices: ['nic0'],
 *   plugins: [mmPlugin(), rdmaPlugin({ memlockLimitPages: 256 })],
 * });
 * const nic = sim.get(RdmaService).createDevice('mlx5_0', { engine: 'nic0' });
 * ```
 *
 * @param options the plugin's options (see {@link RdmaOptionsSchema}); bad values are reported by
 * `Simulation.create` with the field and what is allowed.
 * @returns the plugin descriptor.
 * @see drivers/infiniband/core/umem_odp.c, drivers/infiniband/hw/mlx5/odp.c,
 * drivers/infiniband/core/umem.c
 */
export function rdmaPlugin(options?: z.input<typeof RdmaOptionsSchema>): Plugin {
  return rdmaPluginFactory(options);
}

export {
  HMM_RANGE_DEFAULT_TIMEOUT_NS,
  IbAccess,
  ibAccessWritable,
  MttAccess,
  RDMA_BUGS,
  UMR_MTT_ALIGNMENT,
} from './internal/constants.js';
export type { RdmaBug, WcStatus } from './internal/constants.js';
export { RdmaDevice } from './internal/device.js';
export { MemoryRegion, Mtt, OdpMr, PinnedMr } from './internal/mr.js';
export type { MrState, OdpStats } from './internal/mr.js';
export { RdmaOptions, RdmaOptionsSchema } from './internal/options.js';
export type { RdmaDeviceOptions } from './internal/options.js';
export { RdmaOracle } from './internal/oracle.js';
export { QueuePair, translate } from './internal/qp.js';
export type {
  PageFaultRecord,
  RdmaOpcode,
  RdmaSge,
  RdmaWorkRequest,
  WorkCompletion,
} from './internal/qp.js';
export { RdmaService } from './internal/service.js';
