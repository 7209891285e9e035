/**
 * The state the report's step scrubber shows: a projection folded from the log's events (the
 * mm's VMAs and page table, each secondary MMU's mappings, the notifier subscriptions with their
 * seq, the open invalidation windows). Its own file, free of runtime imports, because the
 * report's browser script bundles it and folds the embedded events itself.
 */
import type { LoggedEvent, Projection } from '@mmnsim/core';
import { counterUpdates, newCounterState } from './counters.js';
import type { CounterState } from './counters.js';

/** A VMA as the `mm.vma.add` event gave it. */
export interface StateVma {
  /** First address. */
  readonly start: number;
  /** Exclusive end. */
  readonly end: number;
  /** `vm_flags`. */
  readonly flags: number;
}

/** One address space. */
export interface StateMm {
  /** The process name. */
  name: string;
  /** VMAs by start address. */
  readonly vmas: Map<number, StateVma>;
  /** Leaf page-table entries by address (present, swap or migration entries). */
  readonly ptes: Map<number, number>;
}

/** One translation a secondary MMU holds (`smmu.map`, not yet `smmu.unmap`ped). */
export interface StateMapping {
  /** The mm id. */
  readonly mm: number;
  /** Virtual address. */
  readonly va: number;
  /** The frame reached. */
  readonly pfn: number;
  /** The frame's generation when mapped. */
  readonly gen: number;
  /** Writable. */
  readonly writable: boolean;
  /** `seq` of the `smmu.map` event. */
  readonly since: number;
}

/** An MMU notifier subscription (classic list or interval). */
export interface StateSubscription {
  /** The mm id. */
  readonly mm: number;
  /** Subscription id. */
  readonly sub: number;
  /** The ops' name. */
  readonly name: string;
  /** `'list'` or `'interval'`. */
  readonly kind: string;
  /** The interval's first address (interval subscriptions). */
  readonly start?: number;
  /** The interval's last address, inclusive. */
  readonly last?: number;
  /** The subscription's `invalidate_seq` as last set (`mmu_interval_set_seq`), or -1. */
  seq: number;
  /** `'active'`, `'removal deferred'`, `'insert deferred'`. */
  status: string;
}

/** An invalidation window between `invalidate_range_start` and `_end`. */
export interface StateWindow {
  /** The range's identity. */
  readonly range: number;
  /** The mm id. */
  readonly mm: number;
  /** Range start. */
  readonly start: number;
  /** Exclusive end. */
  readonly end: number;
  /** The `mmu_notifier_event` name. */
  readonly event: string;
  /** The task that opened it. */
  readonly task: number;
  /** `seq` of the `mmn.invalidate_start` event. */
  readonly since: number;
}

/** The interval-tree counters of an mm (`mmn.itree.state`). */
export interface StateItree {
  /** `invalidate_seq` (odd while a Full period is in progress). */
  readonly seq: number;
  /** `active_invalidate_ranges`. */
  readonly active: number;
  /** `'idle'`, `'partial'` or `'full'`. */
  readonly state: string;
}

/** What the scrubber shows at one point of the run. */
export interface ReportState {
  /** Address spaces by mm id. */
  readonly mms: Map<number, StateMm>;
  /** Secondary MMUs by name: their mappings by `mm:va`. */
  readonly smmu: Map<string, Map<string, StateMapping>>;
  /** Subscriptions by id. */
  readonly subs: Map<number, StateSubscription>;
  /** Interval-tree counters by mm id. */
  readonly itree: Map<number, StateItree>;
  /** Open invalidation windows by range id. */
  readonly windows: Map<number, StateWindow>;
  /** The counters (`invalidate_seq`, `mmu_invalidate_in_progress`, ODP `npages`, TLB entries …). */
  readonly counters: CounterState;
}

type D = Record<string, number | string | boolean>;

function mmOf(state: ReportState, mm: number): StateMm {
  let s = state.mms.get(mm);
  if (s === undefined) state.mms.set(mm, (s = { name: '', vmas: new Map(), ptes: new Map() }));
  return s;
}

/**
 * The projection behind the report's scrubber. It folds `mm.create`, `mm.vma.add`/`remove`,
 * `mm.pte.set` (as mm's own `mmProjection` does for these), `smmu.map`/`unmap` (any secondary
 * MMU, by name: KVM, RDMA, an IOMMU, a zoo driver), `mmn.register`/`unregister`/`free`,
 * `mmn.interval.insert`/`remove`, `mmn.deferred.apply`, `mmn.set_seq`, `mmn.itree.state` and
 * `mmn.invalidate_start`/`end`, and the counters of {@link counterUpdates} (KVM's
 * `mmu_invalidate_in_progress`, ODP `npages`, TLB entries …). Other event types are ignored.
 *
 * An mm leaves the view at `mm.exit` only for its page table and VMAs (they were torn down);
 * the subscriptions stay until they are unregistered or freed, as in the kernel.
 *
 * @returns a projection; `fold(reportStateProjection(), events)` is the state after `events`.
 * @see struct mmu_notifier_subscriptions
 */
export function reportStateProjection(): Projection<ReportState> {
  return {
    name: 'report-state',
    init: () => ({
      mms: new Map(),
      smmu: new Map(),
      subs: new Map(),
      itree: new Map(),
      windows: new Map(),
      counters: newCounterState(),
    }),
    apply(state: ReportState, e: LoggedEvent): ReportState {
      const d = e.data as D;
      counterUpdates(state.counters, e);
      switch (e.type) {
        case 'mm.create':
          mmOf(state, d.mm as number).name = d.name as string;
          break;
        case 'mm.vma.add':
          mmOf(state, d.mm as number).vmas.set(d.start as number, {
            start: d.start as number,
            end: d.end as number,
            flags: d.flags as number,
          });
          break;
        case 'mm.vma.remove':
          mmOf(state, d.mm as number).vmas.delete(d.start as number);
          break;
        case 'mm.pte.set': {
          const m = mmOf(state, d.mm as number);
          if (d.pte === 0) m.ptes.delete(d.va as number);
          else m.ptes.set(d.va as number, d.pte as number);
          break;
        }
        case 'smmu.map':
        case 'smmu.unmap': {
          const mmu = d.mmu as string;
          let maps = state.smmu.get(mmu);
          if (maps === undefined) state.smmu.set(mmu, (maps = new Map<string, StateMapping>()));
          const key = `${String(d.mm)}:${String(d.va)}`;
          if (e.type === 'smmu.unmap') maps.delete(key);
          else {
            maps.set(key, {
              mm: d.mm as number,
              va: d.va as number,
              pfn: d.pfn as number,
              gen: d.gen as number,
              writable: d.writable as boolean,
              since: e.seq,
            });
          }
          break;
        }
        case 'mmn.register':
          if (d.sub !== 0) {
            state.subs.set(d.sub as number, {
              mm: d.mm as number,
              sub: d.sub as number,
              name: d.name as string,
              kind: 'list',
              seq: -1,
              status: 'active',
            });
          }
          break;
        case 'mmn.unregister':
        case 'mmn.free':
          state.subs.delete(d.sub as number);
          break;
        case 'mmn.interval.insert':
          state.subs.set(d.sub as number, {
            mm: d.mm as number,
            sub: d.sub as number,
            name: d.name as string,
            kind: 'interval',
            start: d.start as number,
            last: d.last as number,
            seq: d.seq as number,
            status: d.deferred === true ? 'insert deferred' : 'active',
          });
          break;
        case 'mmn.interval.remove': {
          if (d.deferred === true) {
            const s = state.subs.get(d.sub as number);
            if (s !== undefined) s.status = 'removal deferred';
          } else state.subs.delete(d.sub as number);
          break;
        }
        case 'mmn.deferred.apply': {
          if (d.op === 'remove') state.subs.delete(d.sub as number);
          else {
            const s = state.subs.get(d.sub as number);
            if (s !== undefined) s.status = 'active';
          }
          break;
        }
        case 'mmn.set_seq': {
          const s = state.subs.get(d.sub as number);
          if (s !== undefined) s.seq = d.seq as number;
          break;
        }
        case 'mmn.itree.state':
          state.itree.set(d.mm as number, {
            seq: d.seq as number,
            active: d.active as number,
            state: d.state as string,
          });
          break;
        case 'mmn.invalidate_start':
          state.windows.set(d.range as number, {
            range: d.range as number,
            mm: d.mm as number,
            start: d.start as number,
            end: d.end as number,
            event: d.event as string,
            task: e.task,
            since: e.seq,
          });
          break;
        case 'mmn.invalidate_end':
          state.windows.delete(d.range as number);
          break;
        default:
          break;
      }
      return state;
    },
  };
}

/** A deep copy of a state (for the scrubber's checkpoints). */
export function cloneState(s: ReportState): ReportState {
  const mms = new Map<number, StateMm>();
  for (const [id, m] of s.mms)
    mms.set(id, { name: m.name, vmas: new Map(m.vmas), ptes: new Map(m.ptes) });
  const smmu = new Map<string, Map<string, StateMapping>>();
  for (const [k, v] of s.smmu) smmu.set(k, new Map(v));
  const subs = new Map<number, StateSubscription>();
  for (const [k, v] of s.subs) subs.set(k, { ...v });
  const counters: CounterState = { values: new Map(s.counters.values), smmu: new Map() };
  for (const [k, v] of s.counters.smmu) counters.smmu.set(k, new Set(v));
  return { mms, smmu, subs, itree: new Map(s.itree), windows: new Map(s.windows), counters };
}
