/**
 * IOMMU model for mmnsim: DMA remapping with an IOTLB, shared virtual addressing (SVA/PASID) with an ATS device TLB and page requests (PRI), and the AMD GART aperture with its cache-attribute aliasing rules.
 *
 * @packageDocumentation
 */
import { definePlugin, serviceId } from '@mmnsim/core';
import type { Plugin } from '@mmnsim/core';
import { ContainerModule } from 'inversify';
import { z } from 'zod';
import { GartOptionsSchema } from './internal/gart/options.js';
import { bindGart } from './internal/gart/service.js';

/** Schema of the `iommu` plugin's options; unknown keys are rejected. */
export const IommuOptionsSchema = z.strictObject({
  /** IOTLB entries (default 512). */
  iotlbEntries: z.number().int().min(1).max(65536).default(512),
  /** The AMD GART aperture and AGP (see {@link GartOptionsSchema}); absent: no GART. */
  gart: GartOptionsSchema.optional(),
});

/** The `iommu` plugin's options after validation and defaults. */
export type IommuOptions = z.output<typeof IommuOptionsSchema>;

/** Token of the `iommu` plugin's validated options in the simulation container. */
export const IommuOptions = serviceId<IommuOptions>('@mmnsim/hw-iommu:IommuOptions');

const iommuPluginFactory = definePlugin({
  id: 'iommu',
  requires: ['mm'],
  schema: IommuOptionsSchema,
  token: IommuOptions,
  module: new ContainerModule(({ bind }) => {
    // The package's services are bound here as the model is built out (see the README).
    bindGart(bind, IommuOptions);
  }),
});

/**
 * The `iommu` plugin: this package's only wiring point (ARCHITECTURE §6). Requires the `mm` plugin.
 *
 * ## Example
 * ```ts
 * const sim = Simulation.create({ seed: 1, cpus: 2, plugins: [mmPlugin(), iommuPlugin()] });
 * ```
 *
 * @param options the plugin's options (see {@link IommuOptionsSchema}); bad values are reported by
 * `Simulation.create` with the field and what is allowed.
 * @returns the plugin descriptor.
 * @see drivers/iommu/iommu-sva.c, drivers/iommu/intel/svm.c
 */
export function iommuPlugin(options?: z.input<typeof IommuOptionsSchema>): Plugin {
  return iommuPluginFactory(options);
}

// --- GART: aperture, GATT, GART TLB, GART IOMMU, AGP (issue 14) ---
export { AgpBridge, AgpGraphicsDevice } from './internal/gart/agp.js';
export type { AgpMemory } from './internal/gart/agp.js';
export {
  APERTURE_BASE,
  GartHw,
  gptDecode,
  gptEncode,
  GPTE_COHERENT,
  GPTE_VALID,
} from './internal/gart/gart.js';
export { GartIommu } from './internal/gart/iommu.js';
export { GartInitOrderOracle, GartStaleTlbOracle } from './internal/gart/oracles.js';
export { GartOptionsSchema } from './internal/gart/options.js';
export type { GartOptions } from './internal/gart/options.js';
export { bindGart, Gart, GartId } from './internal/gart/service.js';
