/**
 * The bindings of the IOMMU model (the `iommu` plugin's ContainerModule body), in their own
 * file so the package's index stays a thin barrel and other parts of the package (the GART)
 * add their bindings next to these.
 */
import { Kernel, OracleContribution } from '@mmnsim/core';
import type { ServiceId } from '@mmnsim/core';
import {
  DmaAgentContribution,
  MmService,
  MmuNotifierSubsystem,
  SecondaryMmuContribution,
} from '@mmnsim/mm';
import type { ContainerModuleLoadOptions } from 'inversify';
import { IommuOracle } from './oracle.js';
import { IommuService } from './service.js';
import type { IommuServiceOptions } from './service.js';

/**
 * Binds the IOMMU service, its DMA agent (to `DmaAgentContribution`), its IOTLB (to
 * `SecondaryMmuContribution`) and its oracle.
 *
 * @param options the container module's load options.
 * @param token the token of the plugin's validated options.
 */
export function bindIommu(
  options: ContainerModuleLoadOptions,
  token: ServiceId<IommuServiceOptions>,
): void {
  const { bind } = options;
  bind(IommuService)
    .toResolvedValue(
      (k: Kernel, mm: MmService, mmn: MmuNotifierSubsystem, o: IommuServiceOptions) =>
        new IommuService(k, mm, mmn, o),
      [Kernel, MmService, MmuNotifierSubsystem, token],
    )
    .inSingletonScope();
  bind(DmaAgentContribution)
    .toResolvedValue((s: IommuService) => s.agent, [IommuService])
    .inSingletonScope();
  bind(SecondaryMmuContribution)
    .toResolvedValue((s: IommuService) => s.unit.iotlb, [IommuService])
    .inSingletonScope();
  bind(OracleContribution)
    .toResolvedValue((s: IommuService) => new IommuOracle(s), [IommuService])
    .inSingletonScope();
}
