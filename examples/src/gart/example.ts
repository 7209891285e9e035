/**
 * The GART example as a function (`pnpm gart` prints it; the test checks it): the correct
 * composition explored clean, then the accelerator driver that skips `->release` explored until
 * a write-back overwrites what the GPU wrote, minimised, replayed and printed as an interleaving
 * with the cached line, the write-back and the bytes.
 */
import { explore, formatInterleaving, interleaving, minimise, replay } from '@mmnsim/core';
import type { LoggedEvent } from '@mmnsim/core';
import { gartScenario } from './scenario.js';

/** What {@link runGartExample} found, for its test. */
export interface GartExampleResult {
  /** Schedules of the correct composition explored, and their violations. */
  readonly correct: { readonly schedules: number; readonly violations: number };
  /** The violation kind found with every oracle (the mixed memory types, at the GATT insert). */
  readonly firstWarning: string | null;
  /** The corruption found without the mixed-memory-type oracle, or null. */
  readonly corruption: {
    readonly kind: string;
    readonly schedule: number;
    readonly preemptionsBefore: number;
    readonly preemptionsAfter: number;
    readonly replayedKind: string | null;
    /** The lost words: [word, stale value written back, value lost]. */
    readonly words: readonly (readonly number[])[];
  } | null;
}

const SHOWN = [
  'sched.*',
  'srcu.*',
  'lock.*',
  'mm.pt.*',
  'mm.pte.*',
  'mm.vma.*',
  'mm.frame.write',
  'mm.frame.copy',
  'mm.tlb.*',
  'mmn.*',
  'smmu.*',
  'gart.gatt.set',
  'cache.alias.access',
  'cache.alias.bind',
  'cache.wbmap',
];

function hex(v: number): string {
  return '0x' + (v >>> 0).toString(16);
}

interface Wb {
  domain: string;
  pfn: number;
  line: number;
  reason: string;
  writeback?: number;
  clobbered: number[][];
}

/**
 * Runs the example, printing through `out`.
 * @param out where lines go.
 * @param options `schedules` for the correct composition (default 500), `seed` (default 1).
 */
export function runGartExample(
  out: (line: string) => void,
  options: { readonly schedules?: number; readonly seed?: number } = {},
): GartExampleResult {
  const seed = options.seed ?? 1;
  const schedules = options.schedules ?? 500;
  const pct = { kind: 'pct', depth: 3 } as const;

  out(
    '1. The correct composition: a GRU-like accelerator that tears down and quiesces in ->release,',
  );
  out('   AGP memory churn (alloc, bind, GPU writes, free), munmap, reclaim and exit.');
  const good = explore(gartScenario(), {
    strategy: pct,
    iterations: schedules,
    seed,
    stopOnFirst: false,
  });
  out(`   ${good.iterations} PCT schedules, ${good.distinct.length} violation(s)`);
  out('');

  out('2. The accelerator driver that skips ->release (its hardware keeps its translations and');
  out('   dirty lines after exit; the freed pages come back as AGP memory the GPU writes).');
  const all = explore(gartScenario({ bug: 'skip-release' }), {
    strategy: pct,
    iterations: 2000,
    seed,
  });
  const warn = all.failures[0]?.violations[0] ?? null;
  if (warn !== null) out(`   with every oracle: ${warn.kind} — ${warn.message}`);
  const broken = gartScenario({ bug: 'skip-release', oracles: 'corruption' });
  const hunt = explore(broken, { strategy: pct, iterations: 2000, seed });
  const failure = hunt.failures[0];
  if (failure === undefined) {
    out(`   no corruption in ${hunt.iterations} PCT schedules`);
    return {
      correct: { schedules: good.iterations, violations: good.distinct.length },
      firstWarning: warn?.kind ?? null,
      corruption: null,
    };
  }
  const v = failure.violations[0]!;
  out(
    `   without the mixed-memory-type oracle the run goes on: ${v.kind} at schedule ${failure.iteration + 1}`,
  );
  const m = minimise(broken, failure);
  out(`   minimised ${m.before.preemptions} → ${m.after.preemptions} preemptions (${m.runs} runs)`);
  const { sim, result } = replay(broken, m, { log: true });
  const again = result.violations[0]?.kind ?? null;
  out(`   replayed: ${again ?? 'no violation'}`);
  out('');
  const events = sim.log!.events;
  out('   The interleaving (! marks the events the violation cites):');
  // Write-backs that lost nothing (clflush of zeroed lines) are left out of the table.
  const story = events.filter(
    (e) => e.type !== 'cache.writeback' || (e.data as unknown as Wb).clobbered.length > 0,
  );
  const table = formatInterleaving(interleaving(story, { omit: SHOWN, tail: 30 }), { maxRun: 12 });
  for (const line of table.split('\n')) out('   ' + line);
  out('');
  const wbEvent = events.find((e) => e.type === 'cache.lost');
  if (wbEvent !== undefined) explain(out, events, wbEvent);
  out(`   ${result.violations[0]?.message ?? v.message}`);
  const words =
    (wbEvent?.data as unknown as Wb | undefined)?.clobbered.map((c) => [c[0]!, c[1]!, c[2]!]) ?? [];
  return {
    correct: { schedules: good.iterations, violations: good.distinct.length },
    firstWarning: warn?.kind ?? null,
    corruption: {
      kind: v.kind,
      schedule: failure.iteration + 1,
      preemptionsBefore: m.before.preemptions,
      preemptionsAfter: m.after.preemptions,
      replayedKind: again,
      words,
    },
  };
}

/** Prints the story of the lost bytes: the cached line, the alias write, the write-back. */
function explain(
  out: (line: string) => void,
  events: readonly LoggedEvent[],
  wb: LoggedEvent,
): void {
  const d = wb.data as unknown as Wb;
  const who = (e: LoggedEvent): string => `step ${e.step}, ${e.ctx}`;
  const sameLine = (e: LoggedEvent): boolean => {
    const x = e.data as { domain?: string; pfn?: number; line?: number };
    return x.domain === d.domain && x.pfn === d.pfn && x.line === d.line;
  };
  const filled = events.find(
    (e) => e.seq < wb.seq && (e.type === 'cache.fill' || e.type === 'cache.dirty') && sameLine(e),
  );
  const dirty = events.find((e) => e.seq < wb.seq && e.type === 'cache.dirty' && sameLine(e));
  const free = events
    .filter(
      (e) =>
        e.seq < wb.seq && e.type === 'mm.frame.free' && (e.data as { pfn: number }).pfn === d.pfn,
    )
    .pop();
  const alloc = events
    .filter(
      (e) =>
        e.seq < wb.seq && e.type === 'mm.frame.alloc' && (e.data as { pfn: number }).pfn === d.pfn,
    )
    .pop();
  out(
    `   The cached line: ${d.domain} cache, frame ${d.pfn}, line ${d.line} (bytes ${d.line * 64}..${d.line * 64 + 63})`,
  );
  if (filled !== undefined)
    out(
      `     allocated   #${filled.seq} (${who(filled)}) by the accelerator's store through its write-back translation`,
    );
  if (dirty !== undefined) out(`     dirty       #${dirty.seq} (${who(dirty)})`);
  if (free !== undefined)
    out(`     frame freed #${free.seq} (${who(free)}) by exit — no ->release told the accelerator`);
  if (alloc !== undefined)
    out(
      `     reused      #${alloc.seq} (${who(alloc)}) as AGP memory (zeroed, made UC, bound into the GATT)`,
    );
  for (const [w, stale, lost, seq] of d.clobbered) {
    const gpu = events.find((e) => e.seq === seq);
    out(
      `     GPU wrote   #${seq} (${gpu === undefined ? '?' : who(gpu)}) word ${w} = ${hex(lost!)} through the aperture (non-snooped)`,
    );
    out(
      `     write-back  #${d.writeback !== undefined && d.writeback >= 0 ? d.writeback : wb.seq} (${who(wb)}, ${d.reason}): word ${w} ${hex(lost!)} -> ${hex(stale!)} (bytes ${w! * 4}..${w! * 4 + 3} of the page)`,
    );
  }
  out('');
}
