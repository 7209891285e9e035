/**
 * IOMMU model for mmnsim: DMA remapping with an IOTLB, shared virtual addressing (SVA/PASID) with an ATS device TLB and page requests (PRI), and the AMD GART aperture with its cache-attribute aliasing rules.
 *
 * @packageDocumentation
 */
import { definePlugin, serviceId } from '@mmnsim/core';
import type { Plugin } from '@mmnsim/core';
import { ContainerModule } from 'inversify';
import { z } from 'zod';
import { IOMMU_BUGS } from './internal/constants.js';
import { bindIommu } from './internal/module.js';
import './internal/events.js';
import { GartOptionsSchema } from './internal/gart/options.js';
import { bindGart } from './internal/gart/service.js';

/** Schema of the `iommu` plugin's options; unknown keys are rejected. */
export const IommuOptionsSchema = z.strictObject({
  /** IOTLB entries (default 512). */
  iotlbEntries: z.number().int().min(1).max(65536).default(512),
  /** Strict invalidation (`iommu.strict=1`, default true): unmap flushes before returning; false: lazy, through a flush queue. */
  strict: z.boolean().default(true),
  /** Flush-queue entries per DMA domain in lazy mode (`IOVA_DEFAULT_FQ_SIZE`, default 256). */
  fqSize: z.number().int().min(1).max(65536).default(256),
  /** Which driver's rules to follow where VT-d and SMMUv3 differ (release, BTM): `vt-d` (default) or `smmuv3`. */
  flavour: z.literal(['vt-d', 'smmuv3']).default('vt-d'),
  /** SMMUv3 only: the SMMU snoops the CPU's broadcast TLB maintenance (BTM), so only ATCs get invalidation commands (default false). */
  btm: z.boolean().default(false),
  /** Page request queue entries (default 32). */
  prqDepth: z.number().int().min(1).max(4096).default(32),
  /** The IOMMU's name in events (default `dmar0`). */
  name: z.string().min(1).default('dmar0'),
  /** The device execution context the IOMMU's hardware (its invalidation queue) runs on (default `dmar0`; add it to `devices`). */
  engine: z.string().min(1).default('dmar0'),
  /** The CPU of the page-request thread, the I/O page-fault kworker and the flush-queue timer (default: the last CPU). */
  faultCpu: z.number().int().min(0).optional(),
  /** Deliberate bugs ({@link IOMMU_BUGS}), for teaching and for checking that exploration finds them (default none). */
  bugs: z.array(z.literal(IOMMU_BUGS)).default([]),
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
  module: new ContainerModule((options) => {
    bindIommu(options, IommuOptions);
    bindGart(options.bind, IommuOptions);
  }),
});

/**
 * The `iommu` plugin: this package's only wiring point (ARCHITECTURE §6). Requires the `mm`
 * plugin. Binds the {@link IommuService} (attach devices, SVA bind/unbind), contributes its DMA
 * agent to `DmaAgentContribution` (drivers using `dma_map_page` get IOVA translation for the
 * devices attached to it), its IOTLB to `SecondaryMmuContribution`, and the {@link IommuOracle}.
 * The IOMMU's hardware runs on the device context named by `engine` (default `dmar0`).
 *
 * ## Example
 * ```ts
 * const sim = Simulation.create({
 *   seed: 1, cpus: 2, devices: ['dmar0', 'accel0'],
 *   plugins: [mmPlugin(), iommuPlugin({ strict: false })],
 * });
 * const accel = sim.get(IommuService).createDevice('accel0');
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

// --- DMA remapping, SVA, ATS and PRI (issue 13) --------------------------------------------
export { IOMMU_BUGS } from './internal/constants.js';
export type { IommuBug, PageResponseCode } from './internal/constants.js';
export { cacheTag, TranslationCache } from './internal/cache.js';
export type { CacheEntry, FillClock } from './internal/cache.js';
export { InvalidationQueue } from './internal/qi.js';
export type { QiBackend, QiDesc, QiKind } from './internal/qi.js';
export { FlushQueue, IovaAllocator } from './internal/iova.js';
export type { IovaRange } from './internal/iova.js';
export { IommuDeviceState, IommuDomain, IommuUnit } from './internal/unit.js';
export type {
  DeviceEndpoint,
  DevPasid,
  IommuDomainType,
  IoPte,
  PasidEntry,
  Translation,
  TranslationFault,
  UnitConfig,
} from './internal/unit.js';
export { IommuDmaAgent } from './internal/dma.js';
export type { SgMapping } from './internal/dma.js';
export { SvaDevice } from './internal/device.js';
export type { PagePerm, RawPageRequest, SvaDeviceStats } from './internal/device.js';
export { PageRequestQueue } from './internal/prq.js';
export type { IopfGroup, PageRequest } from './internal/prq.js';
export { psiChunks, SvaManager } from './internal/sva.js';
export type { PsiChunk, SvaBond } from './internal/sva.js';
export { IommuOracle } from './internal/oracle.js';
export type { IommuOracleTarget } from './internal/oracle.js';
export { IommuService } from './internal/service.js';
export type { IommuDeviceOptions, IommuServiceOptions } from './internal/service.js';
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
