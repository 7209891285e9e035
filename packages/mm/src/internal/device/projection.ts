// The projection of device memory: which pagemaps exist and which of their pages are in use,
// folded from the mm.devmap.* and mm.device.* events, with the live counterpart read from the
// model. Its own file: the mm projection (projection.ts) covers frames, PTEs and VMAs; this
// covers the device pages' lifecycle, which those events do not show.
import type { LoggedEvent, Projection, SimEventMap } from '@mmnsim/core';
import type { MmCore } from '../core.js';
import { deviceMemory } from './memremap.js';

/** A pagemap as `mm.devmap.add` describes it. */
export interface DevPagemapView {
  /** `'device-private'` or `'device-coherent'`. */
  readonly type: string;
  /** Its name. */
  readonly name: string;
  /** First frame. */
  readonly start: number;
  /** Pages. */
  readonly npages: number;
}

/** Device memory as the events describe it. */
export interface DevmapView {
  /** Registered (not yet removed) pagemaps by id. */
  readonly pgmaps: Map<number, DevPagemapView>;
  /** Device pages in use (initialised by the driver and not yet freed). */
  readonly inUse: Set<number>;
}

/**
 * Folds `mm.devmap.add`/`remove` and `mm.device.init`/`free` into a {@link DevmapView}; equal to
 * {@link liveDevmapView} at the end of every run.
 *
 * @see struct dev_pagemap
 */
export function devmapProjection(): Projection<DevmapView> {
  return {
    name: 'mm-devmap',
    init: () => ({ pgmaps: new Map(), inUse: new Set() }),
    apply(view: DevmapView, event: LoggedEvent): DevmapView {
      switch (event.type) {
        case 'mm.devmap.add': {
          const d = event.data as SimEventMap['mm.devmap.add'];
          view.pgmaps.set(d.pgmap, {
            type: d.type,
            name: d.name,
            start: d.start,
            npages: d.npages,
          });
          break;
        }
        case 'mm.devmap.remove': {
          const d = event.data as SimEventMap['mm.devmap.remove'];
          view.pgmaps.delete(d.pgmap);
          break;
        }
        case 'mm.device.init':
          view.inUse.add((event.data as SimEventMap['mm.device.init']).pfn);
          break;
        case 'mm.device.free':
          view.inUse.delete((event.data as SimEventMap['mm.device.free']).pfn);
          break;
        default:
          break;
      }
      return view;
    },
  };
}

/**
 * The live device memory in the shape of {@link DevmapView}: every live pagemap, and its pages
 * with a non-zero refcount.
 *
 * Context: any; reads only.
 */
export function liveDevmapView(core: MmCore): DevmapView {
  const view: DevmapView = { pgmaps: new Map(), inUse: new Set() };
  for (const p of deviceMemory(core).pgmaps.values()) {
    if (!p.live) continue;
    view.pgmaps.set(p.id, { type: p.type, name: p.name, start: p.start, npages: p.npages });
    for (let pfn = p.start; pfn < p.start + p.npages; pfn++)
      if (core.phys.refcount[pfn]! > 0) view.inUse.add(pfn);
  }
  return view;
}
