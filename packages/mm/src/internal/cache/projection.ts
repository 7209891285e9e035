/**
 * The last-writer projection: who wrote each word of each frame last, folded from a log — the
 * CPU or device (by execution context), an alias (the GART aperture, a UC/WC mapping), or a cache
 * write-back, and for a write-back that overwrote an alias write, which write it destroyed. Its
 * own file: a view for viewers and tests, independent of the live cache model.
 */
import type { LoggedEvent, Projection, SimEventMap } from '@mmnsim/core';

/** The last write of one word. */
export interface LastWrite {
  /** `seq` of the event that wrote it. */
  readonly seq: number;
  /** Who wrote it: an execution context (`'cpu0'`, `'nic0'`), an alias, or `'<domain> cache write-back (<reason>)'`. */
  by: string;
  /** The value written. */
  readonly value: number;
  /** The write before this one (one level kept). */
  readonly prev?: LastWrite | undefined;
  /** For a write-back: the alias write it replaced (the lost bytes). */
  overwrote?: LastWrite;
}

/** Frame → word → its last write. */
export type LastWriters = Map<number, Map<number, LastWrite>>;

/**
 * Folds `mm.frame.*`, `cache.alias.access` and `cache.writeback` events into the last writer of
 * every word (4-byte range) of every frame. An allocation zeroes the frame (its writers are
 * forgotten); a copy copies them.
 *
 * ## Example
 * ```ts
 * const writers = fold(lastWriterProjection(), sim.log!.events);
 * writers.get(pfn)?.get(1)?.overwrote; // the GPU write a stale write-back destroyed, if any
 * ```
 */
export function lastWriterProjection(): Projection<LastWriters> {
  return {
    name: 'last-writer',
    init: () => new Map(),
    apply(state: LastWriters, event: LoggedEvent): LastWriters {
      switch (event.type) {
        case 'mm.frame.alloc': {
          state.delete((event.data as SimEventMap['mm.frame.alloc']).pfn);
          break;
        }
        case 'mm.frame.copy': {
          const d = event.data as SimEventMap['mm.frame.copy'];
          const from = state.get(d.from);
          if (from === undefined) state.delete(d.to);
          else state.set(d.to, new Map(from));
          break;
        }
        case 'mm.frame.write': {
          const d = event.data as SimEventMap['mm.frame.write'];
          let m = state.get(d.pfn);
          if (m === undefined) {
            m = new Map();
            state.set(d.pfn, m);
          }
          const prev = m.get(d.word);
          m.set(d.word, {
            seq: event.seq,
            by: event.ctx,
            value: d.value,
            prev: prev && { ...prev, prev: undefined },
          });
          break;
        }
        case 'cache.alias.access': {
          const d = event.data as SimEventMap['cache.alias.access'];
          const m = d.write ? state.get(d.pfn) : undefined;
          const w = m?.get(d.word);
          // The frame write just before is this alias write: name the alias, cite this event.
          if (w !== undefined) m!.set(d.word, { ...w, seq: event.seq, by: d.by });
          break;
        }
        case 'cache.writeback': {
          const d = event.data as SimEventMap['cache.writeback'];
          const m = state.get(d.pfn);
          if (m === undefined) break;
          const base = d.line * 16;
          for (let i = 0; i < 16; i++) {
            const w = m.get(base + i);
            if (w === undefined || w.seq > event.seq) continue;
            if (w.prev !== undefined && d.clobbered.some((c) => c[0] === base + i))
              w.overwrote = w.prev;
            if (d.clobbered.some((c) => c[0] === base + i) || w.by === event.ctx)
              w.by = `${d.domain} cache write-back (${d.reason})`;
          }
          break;
        }
      }
      return state;
    },
  };
}
