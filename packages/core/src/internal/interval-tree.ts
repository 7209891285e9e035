/**
 * An augmented red-black interval tree with the semantics of the Linux kernel's generic interval
 * tree (`include/linux/interval_tree_generic.h`, `lib/interval_tree.c`).
 *
 * The kernel keeps `mmu_interval_notifier`s in such a tree keyed by closed address ranges, and
 * the notifier code depends on its exact behaviour: closed intervals, equal starts kept in
 * insertion order, and the `iter_first`/`iter_next` walk in ascending start order. This module
 * reproduces that behaviour so the simulated subsystem visits notifiers in the kernel's order.
 *
 * Design notes (why the code looks the way it does):
 * - No sentinel: absent links are `null`, so nodes of different trees never share a NIL node.
 * - Every node field is initialised in the constructor, so all nodes share one hidden class and
 *   the query loops stay monomorphic.
 * - Queries are iterative and allocation-free; only the generator conveniences allocate.
 *
 * @packageDocumentation
 */

/**
 * Largest value allowed for `start` and `last`; addresses up to 2^53 fit a JS number exactly.
 */
const MAX_BOUND = Number.MAX_SAFE_INTEGER;

/**
 * One interval stored in an {@link IntervalTree}: the closed range `[start, last]` and a value.
 *
 * A node is created by {@link IntervalTree.insert}, or by `new IntervalNode(value)` and then
 * {@link IntervalTree.insertNode}. It belongs to at most one tree at a time and knows whether it
 * is linked ({@link IntervalNode.inTree}), like a kernel `rb_node` cleared with `RB_CLEAR_NODE`
 * and tested with `RB_EMPTY_NODE`. After removal it keeps its last bounds and may be inserted
 * again, in the same or another tree.
 *
 * The fields prefixed with `_` are the tree's bookkeeping (`@internal`, left out of the docs).
 * They are public only because TypeScript has no module-private members and the tree, a separate
 * class, reads them on every step of a query. Do not read or write them outside this module and
 * its tests.
 *
 * @typeParam T - the payload type.
 * @see struct interval_tree_node
 */
export class IntervalNode<T> {
  /** The payload this interval carries; fixed for the node's lifetime. */
  readonly value: T;

  /** @internal First address of the closed interval. */
  _start: number;
  /** @internal Last address of the closed interval (inclusive). */
  _last: number;
  /** @internal Max `_last` over this node's subtree (the kernel's `__subtree_last`). */
  _subtreeLast: number;
  /** @internal Left child, or `null`. */
  _left: IntervalNode<T> | null;
  /** @internal Right child, or `null`. */
  _right: IntervalNode<T> | null;
  /** @internal Parent, or `null` for the root and for unlinked nodes. */
  _parent: IntervalNode<T> | null;
  /** @internal Colour: `true` for red, `false` for black. */
  _red: boolean;
  /** @internal The tree this node is linked into, or `null` (the `RB_EMPTY_NODE` state). */
  _tree: IntervalTree<T> | null;
  /** @internal Insertion stamp; equal starts must appear in increasing `_seq` order. */
  _seq: number;

  /**
   * Creates an unlinked node. Its bounds read as `[0, 0]` until it is inserted.
   *
   * @param value - the payload the node carries.
   */
  constructor(value: T) {
    this.value = value;
    this._start = 0;
    this._last = 0;
    this._subtreeLast = 0;
    this._left = null;
    this._right = null;
    this._parent = null;
    this._red = false;
    this._tree = null;
    this._seq = 0;
  }

  /** First address of the closed interval `[start, last]`. @see interval_tree_node.start */
  get start(): number {
    return this._start;
  }

  /** Last address of the closed interval, inclusive. @see interval_tree_node.last */
  get last(): number {
    return this._last;
  }

  /**
   * True while the node is linked into a tree; false when new, removed or cleared.
   *
   * @see RB_EMPTY_NODE
   */
  get inTree(): boolean {
    return this._tree !== null;
  }
}

/** Max of a node's own `last` and its children's `subtreeLast` (`compute_subtree_last`). */
function computeSubtreeLast<T>(node: IntervalNode<T>): number {
  let max = node._last;
  const left = node._left;
  const right = node._right;
  if (left !== null && left._subtreeLast > max) max = left._subtreeLast;
  if (right !== null && right._subtreeLast > max) max = right._subtreeLast;
  return max;
}

/** In-order successor of a linked node, or `null` for the last node (`rb_next`). */
function successor<T>(node: IntervalNode<T>): IntervalNode<T> | null {
  let right = node._right;
  if (right !== null) {
    while (right._left !== null) right = right._left;
    return right;
  }
  let child = node;
  let parent = node._parent;
  while (parent !== null && child === parent._right) {
    child = parent;
    parent = parent._parent;
  }
  return parent;
}

/**
 * First node in `node`'s subtree overlapping `[start, last]`, in in-order position, or `null`.
 *
 * Precondition: `start <= node._subtreeLast`, i.e. some node below has `last >= start`. The
 * walk keeps that invariant: it goes left whenever the left subtree can still reach `start`
 * (anything there comes first in order), else tests the node itself, else goes right. When the
 * node's own start is past `last`, every later node's is too, so nothing overlaps.
 *
 * @see interval_tree_subtree_search
 */
function subtreeSearch<T>(
  node: IntervalNode<T>,
  start: number,
  last: number,
): IntervalNode<T> | null {
  for (;;) {
    const left = node._left;
    if (left !== null && start <= left._subtreeLast) {
      node = left;
      continue;
    }
    if (node._start > last) return null; // !Cond1: this and all later starts are past `last`.
    if (start <= node._last) return node; // Cond2: overlaps.
    const right = node._right;
    if (right === null || start > right._subtreeLast) return null;
    node = right;
  }
}

/**
 * Next node after `node` (in order) overlapping `[start, last]`, or `null`.
 *
 * Precondition: `node._start <= last`. First tries the right subtree, then climbs to the
 * first ancestor reached from a left child (the next node in order) and tests it; a start past
 * `last` ends the walk since all later starts are larger.
 *
 * @see interval_tree_iter_next
 */
function nextOverlap<T>(
  node: IntervalNode<T>,
  start: number,
  last: number,
): IntervalNode<T> | null {
  let right = node._right;
  for (;;) {
    if (right !== null && start <= right._subtreeLast) return subtreeSearch(right, start, last);
    // Climb until we arrive from a left child: that parent is the next node in order.
    let prev: IntervalNode<T>;
    do {
      const parent = node._parent;
      if (parent === null) return null;
      prev = node;
      node = parent;
      right = node._right;
    } while (prev === right);
    if (node._start > last) return null; // !Cond1
    if (start <= node._last) return node; // Cond2
  }
}

/** Throws unless `value` is a valid bound: a non-negative safe integer. */
function checkBound(op: string, field: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Error(
      `IntervalTree.${op}: ${field} (${String(value)}) must be an integer from 0 to ${MAX_BOUND} (Number.MAX_SAFE_INTEGER)`,
    );
  }
}

/** Throws unless `[start, last]` is a valid closed interval. */
function checkBounds(op: string, start: number, last: number): void {
  checkBound(op, 'start', start);
  checkBound(op, 'last', last);
  if (start > last) {
    throw new Error(`IntervalTree.${op}: start (${start}) must be <= last (${last})`);
  }
}

/**
 * An augmented red-black tree of closed intervals `[start, last]` with the Linux kernel's
 * interval-tree semantics.
 *
 * Intuition: nodes are ordered by `start` like a plain binary search tree, and each node also
 * records the largest `last` in its subtree. A query `[start, last]` skips every subtree whose
 * largest `last` is below `start`, and stops as soon as starts pass `last`, so finding the first
 * overlap costs O(log n) and each further overlap amortised O(log n).
 *
 * What holds:
 * - Intervals are closed: `[a0, a1]` and `[b0, b1]` overlap iff `a0 <= b1 && b0 <= a1`, so
 *   touching intervals such as `[0, 9]` and `[9, 20]` overlap.
 * - Overlaps come in ascending `start`; equal starts come in insertion order (an equal key goes
 *   right on insert, and rotations and removals keep in-order position).
 * - Insert and remove are O(log n) with red-black rebalancing; height stays <= 2·log2(n + 1).
 * - Bounds are non-negative safe integers (addresses up to 2^53).
 * - The tree must not be modified while {@link IntervalTree.overlapping},
 *   {@link IntervalTree.inOrder} or {@link IntervalTree.forEachOverlap} is running; they throw
 *   if it is. The manual {@link IntervalTree.iterFirst}/{@link IntervalTree.iterNext} walk
 *   allows removing a node after its successor has been fetched, as in the kernel.
 *
 * Deterministic: no randomness, no time, no allocation on the query paths.
 *
 * ## Example
 *
 * ```ts
 * const tree = new IntervalTree<string>();
 * tree.insert(0x1000, 0x1fff, 'a');
 * const b = tree.insert(0x1000, 0x2fff, 'b'); // same start: after 'a'
 * tree.insert(0x3000, 0x3fff, 'c');
 *
 * for (const n of tree.overlapping(0x1fff, 0x3000)) console.log(n.value); // a, b, c
 *
 * // Kernel-style walk, as in mmu_notifier's interval_tree_iter_first/next loop:
 * for (let n = tree.iterFirst(0x2000, 0x2000); n; n = tree.iterNext(n, 0x2000, 0x2000)) {
 *   console.log(n.value); // b
 * }
 *
 * tree.remove(b);
 * tree.insertNode(b, 0x5000, 0x5fff); // a removed node can be re-inserted
 * ```
 *
 * @typeParam T - the payload type carried by each node.
 * @see interval_tree_insert
 * @see interval_tree_remove
 * @see interval_tree_iter_first
 * @see interval_tree_iter_next
 */
export class IntervalTree<T> {
  private root: IntervalNode<T> | null = null;
  /** Cached leftmost node, as in the kernel's `rb_root_cached`; `null` when empty. */
  private leftmost: IntervalNode<T> | null = null;
  private count = 0;
  /** Next insertion stamp. */
  private nextSeq = 0;
  /** Bumped on every structural change; the iterating helpers use it to detect modification. */
  private version = 0;

  /** Number of nodes in the tree. O(1). */
  get size(): number {
    return this.count;
  }

  /**
   * Inserts the closed interval `[start, last]` carrying `value`. O(log n).
   *
   * A start equal to existing starts goes after them, so equal starts keep insertion order.
   *
   * @param start - first address, an integer in `[0, Number.MAX_SAFE_INTEGER]`.
   * @param last - last address (inclusive), an integer with `start <= last`.
   * @param value - the payload.
   * @returns the new node; pass it to {@link IntervalTree.remove} to take it out.
   * @throws Error naming the field when a bound is negative, not a safe integer, or `start > last`.
   * @see interval_tree_insert
   */
  insert(start: number, last: number, value: T): IntervalNode<T> {
    checkBounds('insert', start, last);
    const node = new IntervalNode<T>(value);
    this.link(node, start, last);
    return node;
  }

  /**
   * Inserts an unlinked node (new, or removed earlier) with new bounds. O(log n).
   *
   * Like the kernel, where the caller owns the `interval_tree_node` and sets its bounds before
   * `interval_tree_insert`. The node goes after existing nodes with the same start.
   *
   * @param node - a node that is not in any tree.
   * @param start - first address, an integer in `[0, Number.MAX_SAFE_INTEGER]`.
   * @param last - last address (inclusive), an integer with `start <= last`.
   * @throws Error if the node is already in a tree, or naming the field for bad bounds.
   * @see interval_tree_insert
   */
  insertNode(node: IntervalNode<T>, start: number, last: number): void {
    if (node._tree !== null) {
      throw new Error(
        `IntervalTree.insertNode: node is already in ${node._tree === this ? 'this' : 'another'} tree; remove it first`,
      );
    }
    checkBounds('insertNode', start, last);
    this.link(node, start, last);
  }

  /**
   * Removes a node from this tree. O(log n). Afterwards `node.inTree` is false and the node may
   * be inserted again.
   *
   * @param node - a node currently in this tree.
   * @throws Error if the node is not in this tree (never inserted, already removed, or in
   *   another tree).
   * @see interval_tree_remove
   */
  remove(node: IntervalNode<T>): void {
    if (node._tree !== this) {
      throw new Error(
        `IntervalTree.remove: node is not in this tree (${node._tree === null ? 'it was never inserted or was already removed' : 'it belongs to another tree'})`,
      );
    }
    this.unlink(node);
  }

  /**
   * The overlapping node with the smallest start (ties: earliest inserted), or `undefined`.
   *
   * Exits in O(1) when the root's `subtreeLast < start` (everything ends before the query) or
   * when the leftmost node's `start > last` (everything begins after it); else O(log n).
   *
   * @param start - first address of the query (inclusive).
   * @param last - last address of the query (inclusive). Bounds are not validated, for speed;
   *   the result is whatever satisfies `node.start <= last && start <= node.last`.
   * @returns the first overlapping node, or `undefined` if none overlaps.
   * @see interval_tree_iter_first
   */
  iterFirst(start: number, last: number): IntervalNode<T> | undefined {
    const root = this.root;
    if (root === null || root._subtreeLast < start) return undefined;
    if (this.leftmost!._start > last) return undefined;
    return subtreeSearch(root, start, last) ?? undefined;
  }

  /**
   * The next node after `node` overlapping `[start, last]`, in ascending start then insertion
   * order, or `undefined`. Amortised O(log n).
   *
   * `node` must come from {@link IntervalTree.iterFirst} or `iterNext` with the same query and
   * still be in the tree. As in the kernel, it is safe to fetch the successor first and then
   * remove `node`.
   *
   * @param node - the current node of the walk; must be in this tree.
   * @param start - first address of the query (inclusive), as given to `iterFirst`.
   * @param last - last address of the query (inclusive), as given to `iterFirst`.
   * @returns the next overlapping node, or `undefined` when the walk is done.
   * @throws Error if `node` is not in this tree.
   * @see interval_tree_iter_next
   */
  iterNext(node: IntervalNode<T>, start: number, last: number): IntervalNode<T> | undefined {
    if (node._tree !== this) {
      throw new Error('IntervalTree.iterNext: node is not in this tree');
    }
    return nextOverlap(node, start, last) ?? undefined;
  }

  /**
   * Iterates the nodes overlapping `[start, last]` in ascending start, then insertion, order.
   * A convenience over {@link IntervalTree.iterFirst}/{@link IntervalTree.iterNext}; prefer
   * {@link IntervalTree.forEachOverlap} on hot paths (no iterator objects).
   *
   * @param start - first address of the query (inclusive).
   * @param last - last address of the query (inclusive).
   * @returns an iterator over the overlapping nodes.
   * @throws Error from `next()` if the tree was modified during the iteration.
   */
  *overlapping(start: number, last: number): IterableIterator<IntervalNode<T>> {
    const version = this.version;
    let node = this.iterFirst(start, last) ?? null;
    while (node !== null) {
      yield node;
      if (this.version !== version) {
        throw new Error('IntervalTree.overlapping: tree modified during iteration');
      }
      node = nextOverlap(node, start, last);
    }
  }

  /**
   * Calls `fn` on every node overlapping `[start, last]`, in ascending start, then insertion,
   * order, and returns how many there were. The allocation-free hot path.
   *
   * @param start - first address of the query (inclusive).
   * @param last - last address of the query (inclusive).
   * @param fn - called once per overlapping node; must not insert or remove.
   * @returns the number of overlapping nodes.
   * @throws Error if `fn` modified the tree.
   */
  forEachOverlap(start: number, last: number, fn: (node: IntervalNode<T>) => void): number {
    const root = this.root;
    if (root === null || root._subtreeLast < start || this.leftmost!._start > last) return 0;
    const version = this.version;
    let n = 0;
    let node = subtreeSearch(root, start, last);
    while (node !== null) {
      fn(node);
      n++;
      if (this.version !== version) {
        throw new Error('IntervalTree.forEachOverlap: tree modified by the callback');
      }
      node = nextOverlap(node, start, last);
    }
    return n;
  }

  /**
   * Iterates all nodes in ascending start, then insertion, order.
   *
   * @returns an iterator over every node.
   * @throws Error from `next()` if the tree was modified during the iteration.
   * @see rb_first
   * @see rb_next
   */
  *inOrder(): IterableIterator<IntervalNode<T>> {
    const version = this.version;
    let node = this.leftmost;
    while (node !== null) {
      yield node;
      if (this.version !== version) {
        throw new Error('IntervalTree.inOrder: tree modified during iteration');
      }
      node = successor(node);
    }
  }

  /**
   * The node with the smallest start (ties: earliest inserted), or `undefined` when empty. O(1).
   *
   * @returns the leftmost node.
   * @see rb_first_cached
   */
  first(): IntervalNode<T> | undefined {
    return this.leftmost ?? undefined;
  }

  /**
   * Removes every node. O(n): each node is unlinked so that its `inTree` reads false and it can
   * be inserted again.
   */
  clear(): void {
    const stack: IntervalNode<T>[] = [];
    if (this.root !== null) stack.push(this.root);
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (node._left !== null) stack.push(node._left);
      if (node._right !== null) stack.push(node._right);
      node._left = null;
      node._right = null;
      node._parent = null;
      node._tree = null;
    }
    this.root = null;
    this.leftmost = null;
    this.count = 0;
    this.version++;
  }

  /**
   * Verifies every structural rule and throws an Error naming the first one broken. O(n).
   * For tests and debugging.
   *
   * Checked: parent/child links agree; every node belongs to this tree and has valid bounds;
   * the root is black; no red node has a red child; every root-to-leaf path has the same number
   * of black nodes; in-order starts are non-decreasing and equal starts are in insertion order;
   * every `subtreeLast` is the max `last` of its subtree; the cached leftmost node and the size
   * are right; the height is at most 2·log2(n + 1).
   */
  checkInvariants(): void {
    const fail = (rule: string): never => {
      throw new Error(`IntervalTree invariant broken: ${rule}`);
    };
    const root = this.root;
    if (root === null) {
      if (this.count !== 0) fail(`empty tree has size ${this.count}`);
      if (this.leftmost !== null) fail('empty tree has a cached leftmost node');
      return;
    }
    if (root._parent !== null) fail('root has a parent');
    if (root._red) fail('root is red');

    // Depth-first walk carrying depth and black count from the root.
    const nodes: IntervalNode<T>[] = [root];
    const depths: number[] = [1];
    const blacks: number[] = [1];
    let leafBlacks = -1;
    let height = 0;
    let seen = 0;
    while (nodes.length > 0) {
      const node = nodes.pop()!;
      const depth = depths.pop()!;
      const black = blacks.pop()!;
      seen++;
      if (seen > this.count) fail(`more nodes reachable than size ${this.count} (cycle?)`);
      const at = `node [${node._start}, ${node._last}]`;
      if (node._tree !== this) fail(`${at} does not belong to this tree`);
      if (!Number.isSafeInteger(node._start) || node._start < 0 || node._start > node._last) {
        fail(`${at} has invalid bounds`);
      }
      if (!Number.isSafeInteger(node._last)) fail(`${at} has an invalid last`);
      if (node._subtreeLast !== computeSubtreeLast(node)) {
        fail(`${at} has subtreeLast ${node._subtreeLast}, expected ${computeSubtreeLast(node)}`);
      }
      if (depth > height) height = depth;
      for (const child of [node._left, node._right]) {
        if (child === null) {
          // A null link is a black leaf: every path must end with the same black count.
          if (leafBlacks === -1) leafBlacks = black;
          else if (leafBlacks !== black) {
            fail(`black heights differ (${leafBlacks} vs ${black}) below ${at}`);
          }
          continue;
        }
        if (child._parent !== node) fail(`child of ${at} does not point back to it`);
        if (node._red && child._red) fail(`red ${at} has a red child`);
        nodes.push(child);
        depths.push(depth + 1);
        blacks.push(black + (child._red ? 0 : 1));
      }
    }
    if (seen !== this.count) fail(`size is ${this.count} but ${seen} nodes are reachable`);

    let first: IntervalNode<T> = root;
    while (first._left !== null) first = first._left;
    if (this.leftmost !== first) fail('cached leftmost node is not the leftmost');

    for (
      let prev = first, node = successor(first);
      node !== null;
      prev = node, node = successor(node)
    ) {
      if (prev._start > node._start) {
        fail(`in-order starts decrease (${prev._start} before ${node._start})`);
      }
      if (prev._start === node._start && prev._seq > node._seq) {
        fail(`equal starts (${node._start}) are not in insertion order`);
      }
    }

    if (height > 2 * Math.log2(this.count + 1)) {
      fail(`height ${height} exceeds 2*log2(n+1) for n = ${this.count}`);
    }
  }

  /** Links `node` as `[start, last]` (bounds already validated) and rebalances. */
  private link(node: IntervalNode<T>, start: number, last: number): void {
    node._start = start;
    node._last = last;
    node._subtreeLast = last;
    node._left = null;
    node._right = null;
    node._red = true;
    node._tree = this;
    node._seq = this.nextSeq++;

    // Descend to the upper bound of `start`, raising subtreeLast along the path as the kernel's
    // insert does (so the augmentation is right before any rotation).
    let parent: IntervalNode<T> | null = null;
    let cur = this.root;
    let isLeftmost = true;
    let goLeft = false;
    while (cur !== null) {
      if (cur._subtreeLast < last) cur._subtreeLast = last;
      parent = cur;
      goLeft = start < cur._start;
      if (goLeft) {
        cur = cur._left;
      } else {
        cur = cur._right;
        isLeftmost = false;
      }
    }
    node._parent = parent;
    if (parent === null) this.root = node;
    else if (goLeft) parent._left = node;
    else parent._right = node;
    if (isLeftmost) this.leftmost = node;
    this.count++;
    this.version++;
    this.insertFixup(node);
  }

  /** Restores the red-black rules after linking the red `node` (`__rb_insert`). */
  private insertFixup(node: IntervalNode<T>): void {
    let parent = node._parent;
    while (parent !== null && parent._red) {
      // A red parent is never the root, so the grandparent exists.
      const gparent = parent._parent!;
      if (parent === gparent._left) {
        const uncle = gparent._right;
        if (uncle !== null && uncle._red) {
          // Case 1: recolour and continue from the grandparent.
          parent._red = false;
          uncle._red = false;
          gparent._red = true;
          node = gparent;
          parent = node._parent;
          continue;
        }
        if (node === parent._right) {
          // Case 2: turn the inner child into an outer one.
          this.rotateLeft(parent);
          node = parent;
          parent = node._parent!;
        }
        // Case 3: rotate the grandparent.
        parent._red = false;
        gparent._red = true;
        this.rotateRight(gparent);
      } else {
        const uncle = gparent._left;
        if (uncle !== null && uncle._red) {
          parent._red = false;
          uncle._red = false;
          gparent._red = true;
          node = gparent;
          parent = node._parent;
          continue;
        }
        if (node === parent._left) {
          this.rotateRight(parent);
          node = parent;
          parent = node._parent!;
        }
        parent._red = false;
        gparent._red = true;
        this.rotateLeft(gparent);
      }
      break;
    }
    this.root!._red = false;
  }

  /** Unlinks `node` (known to be in this tree), fixes augmentation and rebalances. */
  private unlink(node: IntervalNode<T>): void {
    if (this.leftmost === node) this.leftmost = successor(node);

    const left = node._left;
    const right = node._right;
    // `child` takes the place of the node physically removed; `parent` is its new parent.
    let child: IntervalNode<T> | null;
    let parent: IntervalNode<T> | null;
    let removedBlack: boolean;
    if (left === null || right === null) {
      child = left ?? right;
      parent = node._parent;
      removedBlack = !node._red;
      this.replaceChild(node, child);
      if (child !== null) child._parent = parent;
    } else {
      // Two children: the in-order successor (leftmost of the right subtree) takes node's place,
      // keeping in-order positions, hence the insertion order of equal starts.
      let succ = right;
      while (succ._left !== null) succ = succ._left;
      removedBlack = !succ._red;
      child = succ._right;
      if (succ === right) {
        parent = succ;
      } else {
        parent = succ._parent!;
        parent._left = child;
        if (child !== null) child._parent = parent;
        succ._right = right;
        right._parent = succ;
      }
      succ._left = left;
      left._parent = succ;
      this.replaceChild(node, succ);
      succ._parent = node._parent;
      succ._red = node._red;
    }

    // Recompute subtreeLast from the lowest changed node to the root (`augment_propagate`).
    for (let n = parent; n !== null; n = n._parent) n._subtreeLast = computeSubtreeLast(n);

    if (removedBlack) this.eraseFixup(child, parent);

    node._left = null;
    node._right = null;
    node._parent = null;
    node._tree = null;
    this.count--;
    this.version++;
  }

  /**
   * Restores the red-black rules after a black node was removed: `child` (maybe `null`) under
   * `parent` is one black short (`____rb_erase_color`). Rotations keep the augmentation.
   */
  private eraseFixup(child: IntervalNode<T> | null, parent: IntervalNode<T> | null): void {
    while (child !== this.root && (child === null || !child._red)) {
      // `child` is not the root, so `parent` exists; the sibling exists because the sibling's
      // side has a black height of at least one.
      const p = parent!;
      if (child === p._left) {
        let sibling = p._right!;
        if (sibling._red) {
          sibling._red = false;
          p._red = true;
          this.rotateLeft(p);
          sibling = p._right!;
        }
        const sl = sibling._left;
        let sr = sibling._right;
        if ((sl === null || !sl._red) && (sr === null || !sr._red)) {
          sibling._red = true;
          child = p;
          parent = p._parent;
          continue;
        }
        if (sr === null || !sr._red) {
          sl!._red = false;
          sibling._red = true;
          this.rotateRight(sibling);
          sibling = p._right!;
          sr = sibling._right;
        }
        sibling._red = p._red;
        p._red = false;
        sr!._red = false;
        this.rotateLeft(p);
        child = this.root;
        break;
      } else {
        let sibling = p._left!;
        if (sibling._red) {
          sibling._red = false;
          p._red = true;
          this.rotateRight(p);
          sibling = p._left!;
        }
        let sl = sibling._left;
        const sr = sibling._right;
        if ((sl === null || !sl._red) && (sr === null || !sr._red)) {
          sibling._red = true;
          child = p;
          parent = p._parent;
          continue;
        }
        if (sl === null || !sl._red) {
          sr!._red = false;
          sibling._red = true;
          this.rotateLeft(sibling);
          sibling = p._left!;
          sl = sibling._left;
        }
        sibling._red = p._red;
        p._red = false;
        sl!._red = false;
        this.rotateRight(p);
        child = this.root;
        break;
      }
    }
    if (child !== null) child._red = false;
  }

  /** Points `node`'s parent (or the root) at `replacement` instead of `node`. */
  private replaceChild(node: IntervalNode<T>, replacement: IntervalNode<T> | null): void {
    const parent = node._parent;
    if (parent === null) this.root = replacement;
    else if (parent._left === node) parent._left = replacement;
    else parent._right = replacement;
  }

  /**
   * Left rotation about `x`. The subtree's node set is unchanged, so its new top inherits
   * `x`'s subtreeLast and only `x` is recomputed (`augment_rotate`).
   */
  private rotateLeft(x: IntervalNode<T>): void {
    const y = x._right!;
    const inner = y._left;
    x._right = inner;
    if (inner !== null) inner._parent = x;
    y._parent = x._parent;
    this.replaceChild(x, y);
    y._left = x;
    x._parent = y;
    y._subtreeLast = x._subtreeLast;
    x._subtreeLast = computeSubtreeLast(x);
  }

  /** Right rotation about `x`; the mirror of `rotateLeft`. */
  private rotateRight(x: IntervalNode<T>): void {
    const y = x._left!;
    const inner = y._right;
    x._left = inner;
    if (inner !== null) inner._parent = x;
    y._parent = x._parent;
    this.replaceChild(x, y);
    y._right = x;
    x._parent = y;
    y._subtreeLast = x._subtreeLast;
    x._subtreeLast = computeSubtreeLast(x);
  }
}
