/**
 * The bug zoo: small deliberately broken MMU-notifier drivers, each paired with its correct
 * counterpart, and the campaign that finds them (`pnpm zoo`).
 *
 * @packageDocumentation
 */
export { KVM_BUGS, MiniKvm, miniKvmPlugin, MiniKvmVm } from './mini-kvm.js';
export type { KvmBug, Translation } from './mini-kvm.js';
export { MiniOdp, MiniOdpDevice, miniOdpPlugin, ODP_BUGS } from './mini-odp.js';
export type { MttEntry, OdpBug } from './mini-odp.js';
export {
  MiniSubscriber,
  MiniSubscriberDevice,
  miniSubscriberPlugin,
  SUBSCRIBER_BUGS,
} from './mini-subscriber.js';
export type { SubscriberBug } from './mini-subscriber.js';
export { IOMMU_ZOO } from './iommu-variants.js';
export {
  parseFlags,
  parseZooArgs,
  stringFlag,
  UsageError,
  wholeNumber,
  wholeNumberList,
} from './args.js';
export type { ParsedFlags, ZooArgs } from './args.js';
export { huntVariant } from './hunt.js';
export type { HuntResult } from './hunt.js';
export { runZoo } from './run-zoo.js';
export type { ZooLine, ZooOptions } from './run-zoo.js';
export { ZOO, zooScenario } from './variants.js';
export type { ZooVariant } from './variants.js';
// --- GART variants and the speculating secondary MMU (issue 14) ---
export { GART_DEVICES, GART_ZOO } from './gart-variants.js';
export { SPEC_MMU_BUGS, SpecMmu, SpecMmuDevice, specMmuPlugin } from './mini-spec-mmu.js';
export type { SpecMmuBug } from './mini-spec-mmu.js';
