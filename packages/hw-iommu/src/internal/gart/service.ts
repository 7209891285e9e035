/**
 * The GART as a service of the `iommu` plugin: the hardware, the GART IOMMU driver, the AGP
 * bridge and their oracles, bound by one call from the plugin module. Its own file so the
 * package's plugin module gains one line.
 */
import { ConfigError, Kernel, serviceId } from '@mmnsim/core';
import type { Oracle, ServiceId } from '@mmnsim/core';
import { CacheModelId, cacheOracles, MmService } from '@mmnsim/mm';
import type { CacheModel } from '@mmnsim/mm';
import type { ContainerModuleLoadOptions } from 'inversify';
import { AgpBridge, AgpGraphicsDevice } from './agp.js';
import { GartHw } from './gart.js';
import { GartIommu } from './iommu.js';
import { GartInitOrderOracle, GartStaleTlbOracle } from './oracles.js';
import type { GartOptions } from './options.js';

/**
 * The GART of a simulation: {@link GartHw} (aperture, GATT, GART TLB), the {@link GartIommu}
 * driver, the {@link AgpBridge}, and the cache model it needs (attached on first use).
 *
 * ## Example
 * ```ts
 * const sim = Simulation.create({ seed: 1, cpus: 2, devices: ['cache', 'gfx0'],
 *   plugins: [mmPlugin({ totalFrames: 512 }), iommuPlugin({ gart: {} })] });
 * const gart = sim.get(GartId);
 * for (const o of gart.oracles()) sim.addOracle(o);
 * sim.spawn('boot', 0, function* () { yield* gart.iommu.init(); });
 * ```
 */
export class Gart {
  /** The hardware. */
  readonly hw: GartHw;
  /** The GART IOMMU driver. */
  readonly iommu: GartIommu;
  /** The AGP bridge. */
  readonly agp: AgpBridge;
  /** The cache model. */
  readonly caches: CacheModel;

  /**
   * @param kernel the kernel services.
   * @param mm the memory model.
   * @param caches the cache model.
   * @param options the validated GART options.
   */
  constructor(kernel: Kernel, mm: MmService, caches: CacheModel, options: GartOptions) {
    this.caches = caches;
    caches.configure({ context: options.cacheContext });
    this.hw = new GartHw(kernel, mm.core, caches, options.aperturePages);
    this.iommu = new GartIommu(this.hw, options);
    this.agp = new AgpBridge(this.hw, this.iommu, this.iommu.iommuStart);
  }

  /** An AGP graphics device on execution context `name` (a simulation device). */
  graphicsDevice(name: string): AgpGraphicsDevice {
    return new AgpGraphicsDevice(this.hw, name);
  }

  /** The GART's oracles and the cache model's (mixed memory types, write-back corruption). */
  oracles(): Oracle[] {
    return [
      new GartInitOrderOracle(this.hw, this.iommu.iommuStart),
      new GartStaleTlbOracle(),
      ...cacheOracles(this.caches),
    ];
  }
}

/** Token of the {@link Gart} service (resolvable when the `iommu` plugin has a `gart` option). */
export const GartId = serviceId<Gart>('@mmnsim/hw-iommu:Gart');

/**
 * Binds the GART service; called once from the `iommu` plugin module.
 * @param bind the module's bind function.
 * @param optionsToken the token of the plugin's validated options (with the `gart` field).
 */
export function bindGart(
  bind: ContainerModuleLoadOptions['bind'],
  optionsToken: ServiceId<{ readonly gart?: GartOptions | undefined }>,
): void {
  bind(GartId)
    .toResolvedValue(
      (o: { readonly gart?: GartOptions | undefined }, k: Kernel, mm: MmService, c: CacheModel) => {
        if (o.gart === undefined)
          throw new ConfigError(
            'iommu plugin: the GART is not configured (set the "gart" option, e.g. gart: {})',
          );
        return new Gart(k, mm, c, o.gart);
      },
      [optionsToken, Kernel, MmService, CacheModelId],
    )
    .inSingletonScope();
}
