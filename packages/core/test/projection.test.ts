import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { EventBus } from '../src/internal/bus.js';
import type { LoggedEvent } from '../src/internal/events.js';
import type { JsonValue } from '../src/internal/json.js';
import { EventLog, readNdjson } from '../src/internal/log.js';
import { fold, LiveProjection } from '../src/internal/projection.js';
import type { Projection } from '../src/internal/projection.js';
import { RunState } from '../src/internal/run-state.js';

// ---------------------------------------------------------------------------------------------
// A toy model: a table of physical frames with owners and reference counts. The model keeps its
// live state in a plain Map and describes every change with a `toy.frame.*` event. The event
// types are deliberately not merged into SimEventMap: like a viewer without the plugin's code,
// the projection sees them as plain LoggedEvents.
// ---------------------------------------------------------------------------------------------

/** Payloads of the toy model's events. */
type ToyEvents = {
  'toy.frame.alloc': { pfn: number; owner: string };
  'toy.frame.ref': { pfn: number; refs: number };
  'toy.frame.chown': { pfn: number; owner: string };
  'toy.frame.free': { pfn: number };
};
type ToyType = keyof ToyEvents;
const TOY_TYPES: readonly ToyType[] = [
  'toy.frame.alloc',
  'toy.frame.ref',
  'toy.frame.chown',
  'toy.frame.free',
];

/** One allocated frame, as both the model and the projection hold it. */
interface Frame {
  owner: string;
  refs: number;
}

/** The bus as seen by a plugin whose event types are not declared in SimEventMap. */
interface UntypedBus {
  wants(type: string): boolean;
  emit(type: string, data: JsonValue): LoggedEvent | undefined;
}

const OWNERS = ['kvm', 'rdma', 'page-cache', 'anon'] as const;

class FrameTable {
  /** The live state: allocated frames by pfn. */
  readonly frames = new Map<number, Frame>();
  private readonly free: number[] = [];
  private readonly bus: UntypedBus;

  constructor(
    bus: EventBus,
    readonly size: number,
  ) {
    this.bus = bus;
    for (let pfn = size - 1; pfn >= 0; pfn--) this.free.push(pfn);
  }

  private emit<K extends ToyType>(type: K, data: ToyEvents[K]): void {
    if (this.bus.wants(type)) this.bus.emit(type, data);
  }

  allocated(): number[] {
    return [...this.frames.keys()];
  }

  alloc(owner: string): number | undefined {
    const pfn = this.free.pop();
    if (pfn === undefined) return undefined;
    this.frames.set(pfn, { owner, refs: 1 });
    this.emit('toy.frame.alloc', { pfn, owner });
    return pfn;
  }

  get(pfn: number): void {
    const frame = this.frames.get(pfn)!;
    frame.refs++;
    this.emit('toy.frame.ref', { pfn, refs: frame.refs });
  }

  put(pfn: number): void {
    const frame = this.frames.get(pfn)!;
    frame.refs--;
    if (frame.refs === 0) {
      this.frames.delete(pfn);
      this.free.push(pfn);
      this.emit('toy.frame.free', { pfn });
    } else {
      this.emit('toy.frame.ref', { pfn, refs: frame.refs });
    }
  }

  chown(pfn: number, owner: string): void {
    this.frames.get(pfn)!.owner = owner;
    this.emit('toy.frame.chown', { pfn, owner });
  }
}

/** The frame table rebuilt from events; mutates and returns its Map. */
const frameProjection: Projection<Map<number, Frame>> = {
  name: 'toy.frames',
  init: () => new Map(),
  apply(state, event) {
    switch (event.type) {
      case 'toy.frame.alloc': {
        const data = event.data as ToyEvents['toy.frame.alloc'];
        state.set(data.pfn, { owner: data.owner, refs: 1 });
        break;
      }
      case 'toy.frame.ref': {
        const data = event.data as ToyEvents['toy.frame.ref'];
        state.get(data.pfn)!.refs = data.refs;
        break;
      }
      case 'toy.frame.chown': {
        const data = event.data as ToyEvents['toy.frame.chown'];
        state.get(data.pfn)!.owner = data.owner;
        break;
      }
      case 'toy.frame.free': {
        const data = event.data as ToyEvents['toy.frame.free'];
        state.delete(data.pfn);
        break;
      }
      default:
        break;
    }
    return state;
  },
};

/** An immutable projection: counts events by type, returning a new object each time. */
const countProjection: Projection<Readonly<Record<string, number>>> = {
  name: 'counts',
  init: () => ({}),
  apply: (state, event) => ({ ...state, [event.type]: (state[event.type] ?? 0) + 1 }),
};

/** One operation of a random workload, chosen by index so any generator can drive it. */
type Op =
  | { kind: 'alloc'; owner: number }
  | { kind: 'get'; pick: number }
  | { kind: 'put'; pick: number }
  | { kind: 'chown'; pick: number; owner: number }
  | { kind: 'switch'; cpu: number };

/** Applies one operation to the model, also moving the "scheduler" so events carry stamps. */
function perform(model: FrameTable, state: RunState, bus: EventBus, op: Op): void {
  state.step++;
  state.time += 10;
  const live = model.allocated();
  const pick = (index: number): number | undefined =>
    live.length === 0 ? undefined : live[index % live.length];
  switch (op.kind) {
    case 'alloc':
      model.alloc(OWNERS[op.owner % OWNERS.length]!);
      break;
    case 'get': {
      const pfn = pick(op.pick);
      if (pfn !== undefined) model.get(pfn);
      break;
    }
    case 'put': {
      const pfn = pick(op.pick);
      if (pfn !== undefined) model.put(pfn);
      break;
    }
    case 'chown': {
      const pfn = pick(op.pick);
      if (pfn !== undefined) model.chown(pfn, OWNERS[op.owner % OWNERS.length]!);
      break;
    }
    case 'switch': {
      const from = state.task;
      state.ctx = `cpu${op.cpu}`;
      state.task = op.cpu + 1;
      if (bus.wants('sched.switch')) bus.emit('sched.switch', { from, to: state.task });
      break;
    }
  }
}

/** A fresh run: bus, log, model and live projections all attached before any event. */
function setUp(size = 16) {
  const state = new RunState();
  const bus = new EventBus(state);
  const log = new EventLog();
  bus.addSink(log);
  const model = new FrameTable(bus, size);
  const liveAll = new LiveProjection(frameProjection, bus);
  const liveTyped = new LiveProjection(frameProjection, bus, { types: TOY_TYPES });
  return { state, bus, log, model, liveAll, liveTyped };
}

/** Checks every way of rebuilding the frame table against the model's live Map. */
function expectProjectionsMatch(run: ReturnType<typeof setUp>): void {
  const live = run.model.frames;
  expect(fold(frameProjection, run.log.events)).toEqual(live);
  expect(run.liveAll.state).toEqual(live);
  expect(run.liveTyped.state).toEqual(live);
  const read = readNdjson(run.log.toNdjson({ seed: 1, model: 'toy' }));
  expect(fold(frameProjection, read.events)).toEqual(live);
}

describe('projections of a toy frame-table model', () => {
  it('fold of the log, live projections and fold of the NDJSON read back all equal the live state after a seeded random workload', () => {
    const run = setUp();
    const rng = xoroshiro128plus(20240601);
    const snapshots: { events: number; frames: Map<number, Frame> }[] = [];
    for (let i = 0; i < 3000; i++) {
      const roll = uniformInt(rng, 0, 99);
      const op: Op =
        roll < 30
          ? { kind: 'alloc', owner: uniformInt(rng, 0, 3) }
          : roll < 50
            ? { kind: 'get', pick: uniformInt(rng, 0, 1000) }
            : roll < 80
              ? { kind: 'put', pick: uniformInt(rng, 0, 1000) }
              : roll < 90
                ? { kind: 'chown', pick: uniformInt(rng, 0, 1000), owner: uniformInt(rng, 0, 3) }
                : { kind: 'switch', cpu: uniformInt(rng, 0, 3) };
      perform(run.model, run.state, run.bus, op);
      if (i % 250 === 0) {
        const frames = new Map([...run.model.frames].map(([pfn, f]) => [pfn, { ...f }]));
        snapshots.push({ events: run.log.length, frames });
      }
    }

    // The workload exercised every kind of change, and the table is neither empty nor full.
    const counts = fold(countProjection, run.log.events);
    for (const type of [...TOY_TYPES, 'sched.switch']) expect(counts[type]).toBeGreaterThan(10);
    expect(run.model.frames.size).toBeGreaterThan(0);

    expectProjectionsMatch(run);

    // Folding a prefix of the log travels back in time to the state at that point.
    for (const snapshot of snapshots) {
      expect(fold(frameProjection, run.log.events.slice(0, snapshot.events))).toEqual(
        snapshot.frames,
      );
    }
  });

  it('matches the live state for every workload fast-check generates (fixed seed)', () => {
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ kind: fc.constant('alloc' as const), owner: fc.nat(3) }),
      fc.record({ kind: fc.constant('get' as const), pick: fc.nat(100) }),
      fc.record({ kind: fc.constant('put' as const), pick: fc.nat(100) }),
      fc.record({ kind: fc.constant('chown' as const), pick: fc.nat(100), owner: fc.nat(3) }),
      fc.record({ kind: fc.constant('switch' as const), cpu: fc.nat(3) }),
    );
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 200 }), (ops) => {
        const run = setUp(8);
        for (const op of ops) perform(run.model, run.state, run.bus, op);
        expectProjectionsMatch(run);
      }),
      { seed: 4242, numRuns: 150 },
    );
  });
});

describe('fold', () => {
  it('returns init() for no events and threads the state returned by apply', () => {
    expect(fold(countProjection, [])).toEqual({});
    const events: LoggedEvent[] = [
      { seq: 0, step: 0, time: 0, ctx: '-', task: -1, type: 'a', data: null },
      { seq: 1, step: 0, time: 0, ctx: '-', task: -1, type: 'b', data: null },
      { seq: 2, step: 0, time: 0, ctx: '-', task: -1, type: 'a', data: null },
    ];
    expect(fold(countProjection, events)).toEqual({ a: 2, b: 1 });
    // Any iterable works, for example a generator over a saved log.
    function* replay(): Generator<LoggedEvent> {
      yield* events;
    }
    expect(fold(countProjection, replay())).toEqual({ a: 2, b: 1 });
  });
});

describe('LiveProjection', () => {
  it('with types subscribes only to those types, so the bus still skips building other events', () => {
    const bus = new EventBus(new RunState());
    const live = new LiveProjection(countProjection, bus, {
      types: ['sched.spawn', 'sched.spawn'],
    });
    expect(bus.wants('sched.spawn')).toBe(true);
    expect(bus.wants('sched.exit')).toBe(false);
    bus.emit('sched.spawn', { id: 1, name: 'a', on: 'cpu0' });
    expect(bus.emit('sched.exit', { id: 1, name: 'a' })).toBeUndefined();
    expect(live.state).toEqual({ 'sched.spawn': 1 });
  });

  it('without types follows every event', () => {
    const bus = new EventBus(new RunState());
    const live = new LiveProjection(countProjection, bus);
    expect(bus.wants('anything')).toBe(true);
    bus.emit('sched.spawn', { id: 1, name: 'a', on: 'cpu0' });
    bus.emit('sched.exit', { id: 1, name: 'a' });
    expect(live.state).toEqual({ 'sched.spawn': 1, 'sched.exit': 1 });
  });

  it('stops updating after dispose, keeps its last state, and releases the bus', () => {
    const bus = new EventBus(new RunState());
    const live = new LiveProjection(countProjection, bus, { types: ['sched.spawn'] });
    bus.emit('sched.spawn', { id: 1, name: 'a', on: 'cpu0' });
    live.dispose();
    live.dispose();
    expect(live.disposed).toBe(true);
    expect(bus.wants('sched.spawn')).toBe(false);
    bus.emit('sched.spawn', { id: 2, name: 'b', on: 'cpu0' });
    expect(live.state).toEqual({ 'sched.spawn': 1 });
  });

  it('surfaces an error thrown by apply when state is read, and stops following the bus', () => {
    const bus = new EventBus(new RunState());
    const failing: Projection<number> = {
      name: 'failing',
      init: () => 0,
      apply(state, event) {
        if (event.type === 'sched.exit') throw new Error('cannot apply sched.exit');
        return state + 1;
      },
    };
    const live = new LiveProjection(failing, bus);
    bus.emit('sched.spawn', { id: 1, name: 'a', on: 'cpu0' });
    expect(live.state).toBe(1);
    bus.emit('sched.exit', { id: 1, name: 'a' });
    expect(() => live.state).toThrow('cannot apply sched.exit');
    expect(live.disposed).toBe(true);
    expect(bus.wants('sched.spawn')).toBe(false);
  });
});
