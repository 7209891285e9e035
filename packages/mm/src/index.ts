/**
 * The memory model of mmnsim — the primary MMU every secondary MMU must follow: physical frames
 * with content, processes and their mm, VMAs, 4-level page tables, the mm operations (mmap,
 * munmap, mprotect, madvise, mremap, brk, fork, exit, page faults, reclaim, migration, the OOM
 * reaper, GUP and `hmm_range_fault`), `mmu_gather`, and the MMU notifier entry points at the
 * places Linux calls them.
 *
 * @packageDocumentation
 */
import './internal/events.js';
import { definePlugin, Kernel, serviceId } from '@mmnsim/core';
import type { Plugin } from '@mmnsim/core';
import { ContainerModule } from 'inversify';
import { z } from 'zod';
import type { MmConfig } from './internal/core.js';
import { CacheModel, CacheModelId } from './internal/cache/cache.js';
import { MmuNotifierSubsystem } from './internal/mmn/subsystem.js';
import type { MmuNotifiers } from './internal/notifier.js';
import { THP_MODES } from './internal/huge/thp.js';
import type { ThpMode } from './internal/huge/thp.js';
import { MmService } from './internal/service.js';
import { IdealTlb, TlbFlushProvider } from './internal/tlb.js';

/** Schema of the `mm` plugin's options; unknown keys are rejected. */
export const MmOptionsSchema = z.strictObject({
  /** Physical memory size in 4 KiB frames (16 .. 16 Mi frames; default 64 Ki frames = 256 MiB). */
  totalFrames: z
    .number()
    .int()
    .min(16)
    .max(1 << 24)
    .default(65536),
  /** Pages one mmu_gather holds before it must flush (default 10,000, as the kernel's batch limit). */
  gatherMaxPages: z.number().int().min(1).max(1_000_000).default(10_000),
  /** Pages direct reclaim tries to free at once (`SWAP_CLUSTER_MAX`, default 32). */
  reclaimBatch: z.number().int().min(1).max(4096).default(32),
  /** `transparent_hugepage/enabled`: `'never'`, `'madvise'` (default) or `'always'`. */
  thp: (z.enum(THP_MODES) as z.ZodType<ThpMode>).default('madvise'),
  /** `transparent_hugepage/use_zero_page`: read faults map the huge zero page (default true). */
  thpZeroPage: z.boolean().default(true),
  /** 2 MiB folios in the hugetlb pool (`nr_hugepages`, 0 .. 8192; default 0: MAP_HUGETLB fails). */
  hugetlbPages: z.number().int().min(0).max(8192).default(0),
});

/** The `mm` plugin's options after validation and defaults. */
export type MmOptions = z.output<typeof MmOptionsSchema>;

/** Token of the `mm` plugin's validated options in the simulation container. */
export const MmOptions = serviceId<MmOptions>('@mmnsim/mm:MmOptions');

/**
 * Token of the MMU notifier entry points; bound to the {@link MmuNotifierSubsystem} (drivers get
 * it with `sim.get(MmuNotifiersId) as MmuNotifierSubsystem`, or simply `sim.get(MmuNotifierSubsystem)`).
 */
export const MmuNotifiersId = serviceId<MmuNotifiers>('@mmnsim/mm:MmuNotifiers');

const mmPluginFactory = definePlugin({
  id: 'mm',
  requires: [],
  schema: MmOptionsSchema,
  token: MmOptions,
  module: new ContainerModule(({ bind }) => {
    bind(TlbFlushProvider)
      .toResolvedValue(() => new IdealTlb())
      .inSingletonScope();
    bind(MmuNotifiersId)
      .toResolvedValue((k: Kernel) => new MmuNotifierSubsystem(k), [Kernel])
      .inSingletonScope();
    bind(MmuNotifierSubsystem).toService(MmuNotifiersId);
    bind(MmService)
      .toResolvedValue(
        (k: Kernel, o: MmConfig, t: TlbFlushProvider, n: MmuNotifiers) => new MmService(k, o, t, n),
        [Kernel, MmOptions, TlbFlushProvider, MmuNotifiersId],
      )
      .inSingletonScope();
    // The cache model is opt-in: built (and attached) only when something resolves it.
    bind(CacheModelId)
      .toResolvedValue((k: Kernel, s: MmService) => new CacheModel(k, s.core), [Kernel, MmService])
      .inSingletonScope();
    bind(CacheModel).toService(CacheModelId);
  }),
});

/**
 * The `mm` plugin: this package's only wiring point (ARCHITECTURE §6). Binds the
 * {@link MmService}, the default ideal {@link TlbFlushProvider} (hardware plugins rebind it) and
 * the MMU notifier entry points.
 *
 * ## Example
 * ```ts
 * const sim = Simulation.create({ seed: 1, cpus: 2, plugins: [mmPlugin({ totalFrames: 4096 })] });
 * const proc = sim.get(MmService).createProcess('app');
 * ```
 *
 * @param options the plugin's options (see {@link MmOptionsSchema}); bad values are reported by
 * `Simulation.create` with the field and what is allowed.
 * @returns the plugin descriptor.
 */
export function mmPlugin(options?: z.input<typeof MmOptionsSchema>): Plugin {
  return mmPluginFactory(options);
}

export { BRK_BASE, Map_, MMAP_MIN_ADDR, Prot, PROT_VALID, vmFlagsFor } from './internal/mmap.js';
export {
  MMAP_BASE,
  PAGE_SHIFT,
  PAGE_SIZE,
  PMD_SIZE,
  PTRS_PER_TABLE,
  TASK_SIZE,
  WORDS_PER_PAGE,
} from './internal/constants.js';
export { MAX_RECLAIM_RETRIES, MmCore } from './internal/core.js';
export type { MmConfig, Reclaimer } from './internal/core.js';
export {
  DirectDma,
  DMA_FAULT,
  DMA_MAPPING_ERROR,
  DmaAgentContribution,
  dmaAgentFor,
  dmaMapPage,
  dmaUnmapPage,
} from './internal/dma.js';
export type { DirectDmaOptions, DmaAgent, DmaDirection } from './internal/dma.js';
export { cpuAccess, doUserAddrFault, handleMmFault } from './internal/fault.js';
export type { FaultFlags, FaultResult, SigInfo } from './internal/fault.js';
export { SimFile } from './internal/file.js';
export { dupMmap } from './internal/fork.js';
export {
  Foll,
  getUserPages,
  mmapAssertLocked,
  pinUserPages,
  pinUserPagesFast,
  pinUserPagesRemoteUnlocked,
  putPage,
  unpinUserPage,
  unpinUserPages,
  unpinUserPagesDirtyLock,
} from './internal/gup.js';
export {
  HMM_PFN_ORDER_SHIFT,
  HmmPfn,
  hmmPfnHas,
  hmmPfnToMapOrder,
  hmmPfnToPfn,
  hmmRangeFault,
  isZeroPfn,
} from './internal/hmm.js';
export type { HmmRange } from './internal/hmm.js';
export { migrateFolio } from './internal/migrate.js';
export { Mremap } from './internal/mremap.js';
export { liveView, mmProjection } from './internal/projection.js';
export type { MmSpaceView, MmView, TableView, VmaView } from './internal/projection.js';
export {
  folioReferenced,
  reclaimFolio,
  setUnmapFlushMode,
  shrinkLru,
  SWAP_CLUSTER_MAX,
  unmapFlushMode,
} from './internal/reclaim.js';
export type { UnmapFlushMode } from './internal/reclaim.js';
export {
  exitMmap,
  Madv,
  MAX_OOM_REAP_RETRIES,
  mmdrop,
  mmget,
  mmgetNotZero,
  mmgrab,
  mmput,
  OOM_REAP_RETRY_NS,
  oomReap,
  zapPageRangeSingle,
} from './internal/unmap.js';
export { MmuGather, GATHER_BATCH } from './internal/gather.js';
export { MmStruct } from './internal/mm.js';
export {
  NotifierLifetimeOracle,
  NotifierPairingOracle,
  notifierOracles,
  SecondaryMmuOracle,
} from './internal/mmn/oracles.js';
export type {
  NotifierPairingOptions,
  SecondaryInterval,
  SecondaryMmuOracleOptions,
} from './internal/mmn/oracles.js';
export { MmuNotifierSubscriptions } from './internal/mmn/subscriptions.js';
export type { ItreeState } from './internal/mmn/subscriptions.js';
export { MmuNotifierSubsystem } from './internal/mmn/subsystem.js';
export { MmuIntervalNotifier, MmuNotifier } from './internal/mmn/types.js';
export { isTaskGen } from './internal/mmn/types.js';
export type { MaySleep, MmuIntervalNotifierOps, MmuNotifierOps } from './internal/mmn/types.js';
export {
  MMU_NOTIFIER_RANGE_BLOCKABLE,
  MMU_NOTIFY_EVENTS,
  MmuNotifiers,
  NotifierRange,
} from './internal/notifier.js';
export type { MmuNotifierEvent } from './internal/notifier.js';
export { PageTables } from './internal/pagetable.js';
export { SecondaryMmuContribution, SecondaryMmuEvents } from './internal/secondary.js';
export type { SecondaryMapping, SecondaryMmu, SecondaryMmuKind } from './internal/secondary.js';
export type { PteSlot } from './internal/pagetable.js';
export { Frame, PhysMem } from './internal/physmem.js';
export type { FrameKind } from './internal/physmem.js';
export { Process } from './internal/process.js';
export {
  describePte,
  mkPte,
  Pte,
  PTE_NONE,
  pteFlags,
  pteIsMigration,
  pteIsProtNone,
  pteIsSwap,
  pteMapsPage,
  ptePfn,
  ptePresent,
} from './internal/pte.js';
export { MmService } from './internal/service.js';
export { SwapDevice } from './internal/swap.js';
export { IdealTlb, TlbFlushProvider } from './internal/tlb.js';
export { AnonVma, Vm, Vma, VmaList } from './internal/vma.js';

// --- cache model: memory types, CPU caches, set_memory_* (issue 14) ---
export {
  CacheDomain,
  CacheModel,
  CacheModelId,
  LINE_WORDS,
  LINES_PER_PAGE,
} from './internal/cache/cache.js';
export {
  DirectMap,
  MEMTYPES,
  memTypePteBits,
  PAGE_PAT,
  PAGE_PCD,
  PAGE_PWT,
} from './internal/cache/memtype.js';
export type { MemType } from './internal/cache/memtype.js';
export {
  CacheCorruptionOracle,
  cacheOracles,
  MixedMemoryTypeOracle,
} from './internal/cache/oracles.js';
export { lastWriterProjection } from './internal/cache/projection.js';
export type { LastWrite, LastWriters } from './internal/cache/projection.js';
export {
  DIRECT_MAP_BASE,
  directMapAddress,
  setMemoryNp,
  setMemoryUc,
  setMemoryWb,
  setMemoryWc,
  setPagesArrayUc,
  setPagesArrayWb,
} from './internal/cache/set-memory.js';
// Device memory (ZONE_DEVICE), device migration, device-exclusive entries, pagemap, file I/O.
export {
  mkDeviceExclusivePte,
  mkDevicePrivatePte,
  pteIsDeviceEntry,
  pteIsDeviceExclusive,
  pteIsDevicePrivate,
  pteIsWritableDevicePrivate,
} from './internal/device/entries.js';
export { makeDeviceExclusive } from './internal/device/exclusive.js';
export { checkAndMigrateMovablePages } from './internal/device/gup-longterm.js';
export {
  deviceMemory,
  DeviceMemory,
  DevPagemap,
  isDeviceCoherentPage,
  isDevicePrivatePage,
  isZoneDevicePage,
  MEMORY_TYPES,
  memremapPages,
  memunmapPages,
  pagePgmap,
  zoneDevicePageInit,
} from './internal/device/memremap.js';
export type {
  DeviceFault,
  DevPagemapInit,
  DevPagemapOps,
  MemoryType,
} from './internal/device/memremap.js';
export {
  migrateDeviceCoherentFolio,
  migrateDeviceFinalize,
  migrateDevicePages,
  migrateDeviceRange,
} from './internal/device/migrate-range.js';
export { migrateVmaFinalize } from './internal/device/migrate-finalize.js';
export {
  MigratePfn,
  migratePfn,
  migratePfnHas,
  migratePfnToPfn,
  migrateVmaPages,
  MigrateVmaSelect,
  migrateVmaSetup,
  removeMigrationEntries,
} from './internal/device/migrate-device.js';
export type { MigrateVma } from './internal/device/migrate-device.js';
export { devmapProjection, liveDevmapView } from './internal/device/projection.js';
export type { DevmapView, DevPagemapView } from './internal/device/projection.js';
export { filePread, filePwrite } from './internal/file-io.js';
export {
  decodePagemap,
  MAX_SWAPFILES_SHIFT,
  PagemapBits,
  pagemapRead,
  SwpType,
} from './internal/pagemap.js';
export type { PagemapEntry, PagemapOptions } from './internal/pagemap.js';
export { GupFastOracle, gupFast, TableRcu } from './internal/gup-fast.js';
export {
  HPAGE_PMD_NR,
  HPAGE_PMD_ORDER,
  Pmd,
  pmdIsLeaf,
  pmdIsPresentLeaf,
  pmdLookup,
  pmdValue,
} from './internal/huge/pmd.js';
export type { PmdSlot } from './internal/huge/pmd.js';
export {
  HugeState,
  hugeLeafAt,
  hugeLeafTranslate,
  isHugeZero,
  splitHugePmd,
  THP_MODES,
  thpSuitable,
  VmHuge,
} from './internal/huge/thp.js';
export type { ThpMode } from './internal/huge/thp.js';
export { canSplitFolio, splitFolio } from './internal/huge/split-folio.js';
export { HugetlbPool, MAP_HUGETLB } from './internal/huge/hugetlb.js';
export { MADV_COLLAPSE, MADV_HUGEPAGE, MADV_NOHUGEPAGE } from './internal/huge/madvise.js';
