/**
 * RDMA on-demand paging and pinned memory regions for mmnsim: a NIC DMA engine executing RDMA READ/WRITE work requests through each memory region's MTT, on-demand-paging MRs built on interval notifiers (`ib_umem_odp`), and pinned MRs built on `pin_user_pages(FOLL_LONGTERM)`.
 *
 * @packageDocumentation
 */
import { definePlugin, serviceId } from '@mmnsim/core';
import type { Plugin } from '@mmnsim/core';
import { ContainerModule } from 'inversify';
import { z } from 'zod';

/** Schema of the `rdma` plugin's options; unknown keys are rejected. */
export const RdmaOptionsSchema = z.strictObject({
  /** RLIMIT_MEMLOCK for pinned registrations, in pages (default 16384 = 64 MiB). */
  memlockLimitPages: z.number().int().min(0).default(16384),
});

/** The `rdma` plugin's options after validation and defaults. */
export type RdmaOptions = z.output<typeof RdmaOptionsSchema>;

/** Token of the `rdma` plugin's validated options in the simulation container. */
export const RdmaOptions = serviceId<RdmaOptions>('@mmnsim/drivers-rdma:RdmaOptions');

const rdmaPluginFactory = definePlugin({
  id: 'rdma',
  requires: ['mm'],
  schema: RdmaOptionsSchema,
  token: RdmaOptions,
  module: new ContainerModule(() => {
    // The package's services are bound here as the model is built out (see the README).
  }),
});

/**
 * The `rdma` plugin: this package's only wiring point (ARCHITECTURE §6). Requires the `mm` plugin.
 *
 * ## Example
 * ```ts
 * const sim = Simulation.create({ seed: 1, cpus: 2, plugins: [mmPlugin(), rdmaPlugin()] });
 * ```
 *
 * @param options the plugin's options (see {@link RdmaOptionsSchema}); bad values are reported by
 * `Simulation.create` with the field and what is allowed.
 * @returns the plugin descriptor.
 * @see drivers/infiniband/core/umem_odp.c, drivers/infiniband/hw/mlx5/odp.c
 */
export function rdmaPlugin(options?: z.input<typeof RdmaOptionsSchema>): Plugin {
  return rdmaPluginFactory(options);
}
