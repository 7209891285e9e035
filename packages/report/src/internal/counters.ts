/**
 * The counters a log implies: `invalidate_seq` and `active_invalidate_ranges` per mm, KVM's
 * `mmu_invalidate_in_progress` and `mmu_invalidate_seq`, ODP `npages` per MR, each CPU's TLB
 * entries and each secondary MMU's mappings. Its own file, free of Node APIs, because the trace
 * export draws them as counter tracks and the report's scrubber (in the browser) shows them.
 */
import type { LoggedEvent } from '@mmnsim/core';

/** One counter's new value: `group` is the process it belongs to in a trace (`'mm#1'`, `'cpu0'`). */
export interface CounterUpdate {
  /** The owner: an mm (`'mm#1'`), a CPU (`'cpu0'`), a KVM VM, an RDMA device, `'secondary MMUs'`. */
  readonly group: string;
  /** The counter's name. */
  readonly name: string;
  /** Its value after the event. */
  readonly value: number;
}

/** What the counters remember between events (a TLB's entries, an MR's mapped pages …). */
export interface CounterState {
  /** Current values by `group|name`. */
  readonly values: Map<string, number>;
  /** Secondary MMU mappings by MMU name (keys `mm:va`), to count each translation once. */
  readonly smmu: Map<string, Set<string>>;
}

/** A fresh counter state. */
export function newCounterState(): CounterState {
  return { values: new Map(), smmu: new Map() };
}

type D = Record<string, unknown>;

/**
 * The counter updates of one event, applied to `state`.
 *
 * @param state the counters so far (updated in place).
 * @param e the event.
 * @returns the counters it changed (empty for most events).
 */
export function counterUpdates(state: CounterState, e: LoggedEvent): CounterUpdate[] {
  const d = (e.data ?? {}) as D;
  const out: CounterUpdate[] = [];
  const set = (group: string, name: string, value: number): void => {
    state.values.set(`${group}|${name}`, value);
    out.push({ group, name, value });
  };
  const get = (group: string, name: string): number => state.values.get(`${group}|${name}`) ?? 0;
  switch (e.type) {
    case 'mmn.itree.state': {
      const g = `mm#${String(d.mm)}`;
      set(g, 'invalidate_seq', Number(d.seq));
      set(g, 'active_invalidate_ranges', Number(d.active));
      break;
    }
    case 'kvm.invalidate.start':
    case 'kvm.invalidate.end':
    case 'kvm.precheck': {
      const g = `kvm vm#${String(d.vm)}`;
      set(g, 'mmu_invalidate_in_progress', Number(d.inProgress));
      set(g, 'mmu_invalidate_seq', Number(d.seq));
      break;
    }
    case 'rdma.odp.dma_map':
    case 'rdma.odp.dma_unmap': {
      const g = `rdma ${String(d.dev)}`;
      const name = `mr#${String(d.mr)} npages`;
      set(g, name, get(g, name) + (e.type === 'rdma.odp.dma_map' ? 1 : -1));
      break;
    }
    case 'rdma.mr.dereg':
      // The MR is gone: its npages counter leaves the state (its trace track ends at its last value).
      state.values.delete(`rdma ${String(d.dev)}|mr#${String(d.mr)} npages`);
      break;
    case 'tlb.fill':
    case 'tlb.flush': {
      const g = `cpu${String(d.cpu)}`;
      const v = get(g, 'TLB entries');
      if (e.type === 'tlb.fill') set(g, 'TLB entries', v + (Number(d.evicted) >= 0 ? 0 : 1));
      else set(g, 'TLB entries', Math.max(0, v - Number(d.removed)));
      break;
    }
    case 'smmu.map':
    case 'smmu.unmap': {
      const mmu = String(d.mmu);
      let maps = state.smmu.get(mmu);
      if (maps === undefined) state.smmu.set(mmu, (maps = new Set()));
      const k = `${String(d.mm)}:${String(d.va)}`;
      if (e.type === 'smmu.map') maps.add(k);
      else maps.delete(k);
      set('secondary MMUs', `${mmu} mappings`, maps.size);
      break;
    }
    default:
      break;
  }
  return out;
}
