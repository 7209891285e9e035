// Interval-tree query benchmark: our kernel-semantics IntervalTree against
// @flatten-js/interval-tree on one identical, seeded workload. Real time is fine here (bench code
// is not simulation code); the workload itself is deterministic.
import { IntervalTree } from '@mmnsim/core';
import { IntervalTree as FlattenIntervalTreeUntyped } from '@flatten-js/interval-tree';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import type { RandomGenerator } from 'pure-rand/types/RandomGenerator';
import { bestRate } from './metric.js';
import type { Metric } from './metric.js';

/**
 * The part of `@flatten-js/interval-tree`'s API used here. Its bundled declarations use
 * extensionless relative imports, which do not resolve under `moduleResolution: nodenext`, so the
 * class would otherwise be an unresolved type.
 */
interface FlattenIntervalTree {
  insert(key: [number, number], value: number): unknown;
  search(interval: [number, number]): number[];
}
const FlattenIntervalTree = FlattenIntervalTreeUntyped as unknown as new () => FlattenIntervalTree;

/** Workload shape: mirrors a process with many notifier ranges in a 48-bit address space. */
const SEED = 0x6d6d6e;
const INTERVALS = 10_000;
const QUERIES = 100_000;
const ADDRESS_BITS = 48;
const MAX_INTERVAL_LEN = 2 ** 36;
const MAX_QUERY_LEN = 2 ** 24;
const WARMUP_ROUNDS = 3;
const TIMED_ROUNDS = 5;

/** Uniform integer in `[0, 2^bits)` for `bits <= 48`, from two 24-bit draws. */
function uniformBits(rng: RandomGenerator, bits: number): number {
  const lowBits = Math.min(bits, 24);
  const low = uniformInt(rng, 0, 2 ** lowBits - 1);
  if (bits <= 24) return low;
  const high = uniformInt(rng, 0, 2 ** (bits - 24) - 1);
  return high * 2 ** 24 + low;
}

/** Uniform integer in `[1, max]` for a power-of-two `max <= 2^48`. */
function uniformLength(rng: RandomGenerator, max: number): number {
  return uniformBits(rng, Math.log2(max)) + 1;
}

/** The seeded workload: closed intervals `[start, last]` and closed queries `[lo, hi]`. */
interface Workload {
  starts: Float64Array;
  lasts: Float64Array;
  queryLo: Float64Array;
  queryHi: Float64Array;
}

function makeWorkload(): Workload {
  const rng = xoroshiro128plus(SEED);
  const starts = new Float64Array(INTERVALS);
  const lasts = new Float64Array(INTERVALS);
  for (let i = 0; i < INTERVALS; i++) {
    starts[i] = uniformBits(rng, ADDRESS_BITS);
    lasts[i] = starts[i]! + uniformLength(rng, MAX_INTERVAL_LEN) - 1;
  }
  const queryLo = new Float64Array(QUERIES);
  const queryHi = new Float64Array(QUERIES);
  for (let i = 0; i < QUERIES; i++) {
    queryLo[i] = uniformBits(rng, ADDRESS_BITS);
    queryHi[i] = queryLo[i]! + uniformLength(rng, MAX_QUERY_LEN) - 1;
  }
  return { starts, lasts, queryLo, queryHi };
}

const ignore = (): void => {};

/** Runs every query on our tree; returns the total overlap count. */
function queryOurs(tree: IntervalTree<number>, w: Workload): number {
  const lo = w.queryLo;
  const hi = w.queryHi;
  let total = 0;
  for (let i = 0; i < QUERIES; i++) total += tree.forEachOverlap(lo[i]!, hi[i]!, ignore);
  return total;
}

/** Runs every query on the peer tree; returns the total overlap count. */
function queryPeer(tree: FlattenIntervalTree, w: Workload): number {
  const lo = w.queryLo;
  const hi = w.queryHi;
  let total = 0;
  for (let i = 0; i < QUERIES; i++) total += tree.search([lo[i]!, hi[i]!]).length;
  return total;
}

/**
 * Measures overlap-query throughput of `@mmnsim/core`'s IntervalTree and of
 * `@flatten-js/interval-tree` on the same seeded workload: 10,000 intervals in a 48-bit space
 * (lengths 1..2^36), then 100,000 queries (lengths 1..2^24). Each side is warmed up, then the
 * best of 5 rounds is reported. Throws if the two trees disagree on the total overlap count.
 *
 * @returns `core.itree.query_per_s` and `peer.flatten_itree.query_per_s`, in queries/s.
 */
export function benchItree(): Metric[] {
  const w = makeWorkload();

  const ours = new IntervalTree<number>();
  const peer = new FlattenIntervalTree();
  // Build each tree in its own loop so each library's nodes are allocated contiguously, as in
  // normal use (interleaving the two builds scatters both trees' nodes across the heap).
  for (let i = 0; i < INTERVALS; i++) ours.insert(w.starts[i]!, w.lasts[i]!, i);
  for (let i = 0; i < INTERVALS; i++) peer.insert([w.starts[i]!, w.lasts[i]!], i);

  const expected = queryOurs(ours, w);
  const peerTotal = queryPeer(peer, w);
  if (peerTotal !== expected) {
    throw new Error(
      `benchItree: overlap totals differ: core.itree ${expected}, flatten-js ${peerTotal}`,
    );
  }

  // Extra warm-up so both query paths are optimised before bestRate's own warm-up round.
  for (let i = 0; i < WARMUP_ROUNDS; i++) {
    queryOurs(ours, w);
    queryPeer(peer, w);
  }

  const check = (label: string, total: number): void => {
    if (total !== expected) {
      throw new Error(`benchItree: ${label} returned ${total} overlaps, expected ${expected}`);
    }
  };
  const oursRate = bestRate(QUERIES, () => check('core.itree', queryOurs(ours, w)), TIMED_ROUNDS);
  const peerRate = bestRate(QUERIES, () => check('flatten-js', queryPeer(peer, w)), TIMED_ROUNDS);

  return [
    { name: 'core.itree.query_per_s', value: oursRate, unit: 'queries/s' },
    { name: 'peer.flatten_itree.query_per_s', value: peerRate, unit: 'queries/s' },
  ];
}
