import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { IntervalNode, IntervalTree } from '../src/internal/interval-tree.js';

/** Values of the nodes overlapping `[start, last]`, via the generator. */
function overlapValues<T>(tree: IntervalTree<T>, start: number, last: number): T[] {
  return [...tree.overlapping(start, last)].map((n) => n.value);
}

/** Values of the nodes overlapping `[start, last]`, via the kernel-style manual walk. */
function walkValues<T>(tree: IntervalTree<T>, start: number, last: number): T[] {
  const out: T[] = [];
  for (let n = tree.iterFirst(start, last); n !== undefined; n = tree.iterNext(n, start, last)) {
    out.push(n.value);
  }
  return out;
}

/** Height of the tree in nodes (empty tree: 0), from the internal links. */
function height<T>(tree: IntervalTree<T>): number {
  let root = tree.first();
  while (root?._parent) root = root._parent;
  if (root === undefined) return 0;
  let max = 0;
  const stack: [IntervalNode<T>, number][] = [[root, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (depth > max) max = depth;
    if (node._left) stack.push([node._left, depth + 1]);
    if (node._right) stack.push([node._right, depth + 1]);
  }
  return max;
}

/** The closed-interval overlap rule, stated independently of the implementation. */
const overlaps = (a0: number, a1: number, b0: number, b1: number): boolean => a0 <= b1 && b0 <= a1;

describe('IntervalTree (model-based)', () => {
  type Op =
    | { kind: 'insert'; start: number; len: number }
    | { kind: 'remove'; pick: number }
    | { kind: 'reinsert'; pick: number; start: number; len: number }
    | { kind: 'removeAgain'; pick: number }
    | { kind: 'query'; start: number; len: number }
    | { kind: 'clear' };

  // Small coordinates so that overlaps, touching ends and equal starts are frequent.
  const coord = fc.integer({ min: 0, max: 24 });
  const len = fc.integer({ min: 0, max: 8 });
  const pick = fc.nat({ max: 1000 });
  const op: fc.Arbitrary<Op> = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({ kind: fc.constant('insert' as const), start: coord, len }),
    },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('remove' as const), pick }) },
    {
      weight: 2,
      arbitrary: fc.record({ kind: fc.constant('reinsert' as const), pick, start: coord, len }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('removeAgain' as const), pick }) },
    {
      weight: 4,
      arbitrary: fc.record({ kind: fc.constant('query' as const), start: coord, len: fc.nat(12) }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('clear' as const) }) },
  );

  it('matches a brute-force list under random inserts, removes, re-inserts and queries', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 100, size: 'max' }), (ops) => {
        const tree = new IntervalTree<number>();
        // The model: live entries in insertion order (a re-insert appends), and removed nodes.
        let live: { node: IntervalNode<number>; start: number; last: number }[] = [];
        let removed: IntervalNode<number>[] = [];
        let nextValue = 0;

        const expectedOverlap = (s: number, l: number): number[] =>
          live
            .filter((e) => overlaps(e.start, e.last, s, l))
            .sort((a, b) => a.start - b.start) // stable: equal starts keep insertion order
            .map((e) => e.node.value);

        for (const o of ops) {
          switch (o.kind) {
            case 'insert': {
              const node = tree.insert(o.start, o.start + o.len, nextValue++);
              live.push({ node, start: o.start, last: o.start + o.len });
              break;
            }
            case 'remove': {
              if (live.length === 0) break;
              const [entry] = live.splice(o.pick % live.length, 1);
              tree.remove(entry!.node);
              expect(entry!.node.inTree).toBe(false);
              removed.push(entry!.node);
              break;
            }
            case 'reinsert': {
              if (removed.length === 0) break;
              const [node] = removed.splice(o.pick % removed.length, 1);
              tree.insertNode(node!, o.start, o.start + o.len);
              expect(node!.inTree).toBe(true);
              live.push({ node: node!, start: o.start, last: o.start + o.len });
              break;
            }
            case 'removeAgain': {
              if (removed.length === 0) break;
              const node = removed[o.pick % removed.length];
              expect(() => tree.remove(node!)).toThrow(/not in this tree/);
              break;
            }
            case 'query': {
              const s = o.start;
              const l = o.start + o.len;
              const want = expectedOverlap(s, l);
              expect(overlapValues(tree, s, l)).toEqual(want);
              expect(walkValues(tree, s, l)).toEqual(want);
              const seen: number[] = [];
              expect(tree.forEachOverlap(s, l, (n) => seen.push(n.value))).toBe(want.length);
              expect(seen).toEqual(want);
              expect(tree.iterFirst(s, l)?.value).toBe(want[0]);
              break;
            }
            case 'clear': {
              tree.clear();
              for (const e of live) expect(e.node.inTree).toBe(false);
              removed = removed.concat(live.map((e) => e.node));
              live = [];
              break;
            }
          }

          tree.checkInvariants();
          expect(tree.size).toBe(live.length);
          const sorted = [...live].sort((a, b) => a.start - b.start);
          expect([...tree.inOrder()].map((n) => n.value)).toEqual(sorted.map((e) => e.node.value));
          expect([...tree.inOrder()].map((n) => [n.start, n.last])).toEqual(
            sorted.map((e) => [e.start, e.last]),
          );
          expect(tree.first()?.value).toBe(sorted[0]?.node.value);
        }

        // A final sweep of every query window in the coordinate range.
        for (let s = 0; s <= 34; s++) {
          for (let l = s; l <= 34; l++)
            expect(overlapValues(tree, s, l)).toEqual(expectedOverlap(s, l));
        }
      }),
      { seed: 42, numRuns: 200 },
    );
  });
});

describe('IntervalTree (kernel behaviour)', () => {
  it('behaves as the class documentation example says', () => {
    const tree = new IntervalTree<string>();
    tree.insert(0x1000, 0x1fff, 'a');
    const b = tree.insert(0x1000, 0x2fff, 'b');
    tree.insert(0x3000, 0x3fff, 'c');
    expect(overlapValues(tree, 0x1fff, 0x3000)).toEqual(['a', 'b', 'c']);
    expect(walkValues(tree, 0x2000, 0x2000)).toEqual(['b']);
    tree.remove(b);
    tree.insertNode(b, 0x5000, 0x5fff);
    expect([...tree.inOrder()].map((n) => n.value)).toEqual(['a', 'c', 'b']);
  });

  it('returns equal starts in insertion order (an equal key goes right on insert)', () => {
    const tree = new IntervalTree<string>();
    // Interleave other keys so that rotations move the equal-start nodes around.
    const names: string[] = [];
    for (let i = 0; i < 50; i++) {
      tree.insert(10, 10 + (i % 7), `eq${i}`);
      names.push(`eq${i}`);
      tree.insert(i % 2 === 0 ? 5 : 15, 30, `other${i}`);
    }
    tree.checkInvariants();
    expect(overlapValues(tree, 10, 10).filter((v) => v.startsWith('eq'))).toEqual(names);
    expect([...tree.inOrder()].filter((n) => n.start === 10).map((n) => n.value)).toEqual(names);

    // Removing some keeps the relative order of the rest.
    const nodes = [...tree.inOrder()].filter((n) => n.start === 10);
    for (let i = 0; i < nodes.length; i += 3) tree.remove(nodes[i]!);
    tree.checkInvariants();
    expect([...tree.inOrder()].filter((n) => n.start === 10).map((n) => n.value)).toEqual(
      names.filter((_, i) => i % 3 !== 0),
    );
  });

  it('treats intervals as closed: touching intervals [0,9] and [9,20] overlap', () => {
    const tree = new IntervalTree<string>();
    tree.insert(0, 9, 'a');
    expect(overlapValues(tree, 9, 20)).toEqual(['a']);
    expect(overlapValues(tree, 10, 20)).toEqual([]);
    tree.insert(9, 20, 'b');
    expect(overlapValues(tree, 9, 9)).toEqual(['a', 'b']);
    expect(overlapValues(tree, 0, 0)).toEqual(['a']);
    expect(overlapValues(tree, 20, 20)).toEqual(['b']);
    expect(overlapValues(tree, 21, 30)).toEqual([]);
    // A single-address interval.
    tree.insert(30, 30, 'c');
    expect(overlapValues(tree, 30, 30)).toEqual(['c']);
  });

  it('iterFirst returns the overlapping node with the smallest start', () => {
    const tree = new IntervalTree<string>();
    tree.insert(50, 60, 'late');
    tree.insert(0, 100, 'wide');
    tree.insert(20, 25, 'mid');
    tree.insert(0, 5, 'early-short');
    expect(tree.iterFirst(22, 55)?.value).toBe('wide');
    expect(tree.iterFirst(6, 200)?.value).toBe('wide');
    expect(tree.iterFirst(101, 200)).toBeUndefined(); // every interval ends before the query
    tree.remove(tree.iterFirst(0, 0)!); // 'wide'
    expect(tree.iterFirst(6, 200)?.value).toBe('mid');
    expect(tree.iterFirst(0, 0)?.value).toBe('early-short');
    expect(new IntervalTree<string>().iterFirst(0, 10)).toBeUndefined();
  });

  it('iterFirst exits early when the query lies past every end or before every start', () => {
    const tree = new IntervalTree<number>();
    for (let i = 0; i < 100; i++) tree.insert(1000 + i * 10, 1000 + i * 10 + 5, i);
    expect(tree.iterFirst(2000, 5000)).toBeUndefined(); // root subtreeLast < start
    expect(tree.iterFirst(0, 999)).toBeUndefined(); // leftmost start > last
    expect(tree.iterFirst(0, 1000)?.value).toBe(0);
    expect(tree.iterFirst(1995, 5000)?.value).toBe(99);
  });

  it('iterNext walks the overlaps in ascending start order and can remove as it goes', () => {
    const tree = new IntervalTree<number>();
    const starts = [40, 10, 30, 20, 0, 50, 25, 35];
    for (const s of starts) tree.insert(s, s + 7, s);
    expect(walkValues(tree, 12, 33)).toEqual([10, 20, 25, 30]);

    // The kernel pattern: fetch the successor, then remove the current node.
    let n = tree.iterFirst(12, 33);
    const visited: number[] = [];
    while (n !== undefined) {
      const next = tree.iterNext(n, 12, 33);
      visited.push(n.value);
      tree.remove(n);
      n = next;
    }
    expect(visited).toEqual([10, 20, 25, 30]);
    tree.checkInvariants();
    expect([...tree.inOrder()].map((x) => x.value)).toEqual([0, 35, 40, 50]);
  });

  it('a removed node can be re-inserted, in the same or another tree', () => {
    const tree = new IntervalTree<string>();
    const a = tree.insert(0, 10, 'a');
    tree.insert(5, 15, 'b');
    expect(a.inTree).toBe(true);
    tree.remove(a);
    expect(a.inTree).toBe(false);
    expect(tree.size).toBe(1);
    expect(overlapValues(tree, 0, 4)).toEqual([]);
    tree.insertNode(a, 5, 8); // same start as 'b': goes after it
    expect(a.inTree).toBe(true);
    expect([a.start, a.last]).toEqual([5, 8]);
    expect(overlapValues(tree, 0, 100)).toEqual(['b', 'a']);
    tree.checkInvariants();

    const other = new IntervalTree<string>();
    expect(() => other.insertNode(a, 0, 1)).toThrow(/already in another tree/);
    expect(() => tree.insertNode(a, 0, 1)).toThrow(/already in this tree/);
    tree.remove(a);
    other.insertNode(a, 0, 1);
    expect(overlapValues(other, 1, 1)).toEqual(['a']);

    const fresh = new IntervalNode('fresh');
    expect(fresh.inTree).toBe(false);
    other.insertNode(fresh, 3, 4);
    expect(overlapValues(other, 0, 10)).toEqual(['a', 'fresh']);
  });

  it('removing a node that is not in the tree throws', () => {
    const tree = new IntervalTree<string>();
    const other = new IntervalTree<string>();
    const a = tree.insert(0, 1, 'a');
    expect(() => other.remove(a)).toThrow(/not in this tree.*another tree/);
    expect(() => tree.remove(new IntervalNode('never'))).toThrow(
      /not in this tree.*never inserted/,
    );
    tree.remove(a);
    expect(() => tree.remove(a)).toThrow(/already removed/);
    expect(() => tree.iterNext(a, 0, 1)).toThrow(/not in this tree/);
    expect(tree.size).toBe(0);
  });

  it('bad bounds throw an Error naming the field and the allowed values', () => {
    const tree = new IntervalTree<string>();
    expect(() => tree.insert(5, 3, 'x')).toThrow(
      'IntervalTree.insert: start (5) must be <= last (3)',
    );
    expect(() => tree.insert(-1, 3, 'x')).toThrow(
      /IntervalTree\.insert: start \(-1\) must be an integer from 0 to 9007199254740991/,
    );
    expect(() => tree.insert(0, 1.5, 'x')).toThrow(/IntervalTree\.insert: last \(1\.5\)/);
    expect(() => tree.insert(Number.NaN, 1, 'x')).toThrow(/start \(NaN\)/);
    expect(() => tree.insert(0, 2 ** 53, 'x')).toThrow(/last \(9007199254740992\)/);
    expect(() => tree.insertNode(new IntervalNode('y'), 2, 1)).toThrow(
      'IntervalTree.insertNode: start (2) must be <= last (1)',
    );
    expect(tree.size).toBe(0);
    // The largest allowed addresses work.
    const max = Number.MAX_SAFE_INTEGER;
    tree.insert(max - 1, max, 'top');
    expect(overlapValues(tree, max, max)).toEqual(['top']);
  });

  it('keeps height <= 2*log2(n+1) over 100,000 sequential inserts and removals', () => {
    const tree = new IntervalTree<number>();
    const n = 100_000;
    const nodes: IntervalNode<number>[] = [];
    for (let i = 0; i < n; i++) nodes.push(tree.insert(i * 4096, i * 4096 + 4095, i));
    tree.checkInvariants();
    expect(height(tree)).toBeLessThanOrEqual(2 * Math.log2(n + 1));
    expect(tree.forEachOverlap(4096 * 500 + 4095, 4096 * 500 + 4096, () => {})).toBe(2);

    // Remove every other node, in order, then check again.
    for (let i = 0; i < n; i += 2) tree.remove(nodes[i]!);
    tree.checkInvariants();
    expect(tree.size).toBe(n / 2);
    expect(height(tree)).toBeLessThanOrEqual(2 * Math.log2(n / 2 + 1));
    expect(tree.first()?.value).toBe(1);
  });

  it('the iterating helpers throw if the tree is modified during iteration', () => {
    const tree = new IntervalTree<number>();
    for (let i = 0; i < 10; i++) tree.insert(i, i + 1, i);
    expect(() => tree.forEachOverlap(0, 20, (n) => tree.remove(n))).toThrow(/modified/);
    expect(() => {
      for (const n of tree.overlapping(0, 20)) tree.remove(n);
    }).toThrow(/modified/);
    expect(() => {
      for (const n of tree.inOrder()) tree.insert(n.start, n.last, 99);
    }).toThrow(/modified/);
    tree.checkInvariants();
  });

  it('clear() unlinks every node so it can be inserted again', () => {
    const tree = new IntervalTree<number>();
    const nodes = [3, 1, 4, 1, 5, 9, 2, 6].map((s, i) => tree.insert(s, s + 2, i));
    tree.clear();
    expect(tree.size).toBe(0);
    expect(tree.first()).toBeUndefined();
    expect(nodes.every((n) => !n.inTree)).toBe(true);
    tree.checkInvariants();
    tree.insertNode(nodes[0]!, 7, 7);
    expect(overlapValues(tree, 0, 100)).toEqual([0]);
    tree.checkInvariants();
  });

  it('checkInvariants reports a broken augmentation', () => {
    const tree = new IntervalTree<number>();
    for (let i = 0; i < 8; i++) tree.insert(i, i, i);
    const node = tree.first()!;
    node._subtreeLast = 1000;
    expect(() => tree.checkInvariants()).toThrow(/has subtreeLast .*, expected/);
  });

  it('checkInvariants reports a red-red violation and a broken order', () => {
    const tree = new IntervalTree<number>();
    for (let i = 0; i < 8; i++) tree.insert(i, i, i);
    let red = tree.first()!;
    while (!red._red) red = red._parent!;
    const parent = red._parent!;
    parent._red = true;
    expect(() => tree.checkInvariants()).toThrow(/red|black/);
    parent._red = false;
    tree.checkInvariants();
    const first = tree.first()!;
    first._start = 5;
    first._last = 5;
    expect(() => tree.checkInvariants()).toThrow(/in-order starts decrease|subtreeLast/);
  });
});
