/**
 * `pnpm bench log`: a streamed 10^7-event log written with `NdjsonFileWriter` (line by line,
 * with the hash chain) and verified with `verifyNdjsonFile`, in bounded memory; reports both
 * rates and the peak resident set size of the process (target ≤ 300 MB). Its own suite because
 * it writes about 2 GB to the temporary directory.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NdjsonFileWriter, verifyNdjsonFile } from '@mmnsim/core';
import type { LoggedEvent } from '@mmnsim/core';
import type { Metric } from './metric.js';

/** Events in the log (MMNSIM_BENCH_LOG_EVENTS overrides, for a quick look). */
const EVENTS = Number(process.env.MMNSIM_BENCH_LOG_EVENTS ?? 10_000_000);

/** `log.write_events_per_s`, `log.verify_events_per_s`, `log.peak_rss_mb`, `log.file_mb`. */
export function benchLog(): Metric[] {
  const dir = mkdtempSync(join(tmpdir(), 'mmnsim-bench-log-'));
  const path = join(dir, 'run.ndjson');
  try {
    const types = ['sched.switch', 'mm.pte.set', 'mmn.invalidate_start', 'sched.wake'];
    const w = new NdjsonFileWriter(path, { seed: 1, bench: 'log' });
    const t0 = performance.now();
    for (let i = 0; i < EVENTS; i++) {
      const event: LoggedEvent = {
        seq: i,
        step: i >> 2,
        time: (i >> 2) * 100,
        ctx: i & 1 ? 'cpu1' : 'cpu0',
        task: i & 3,
        type: types[i & 3]!,
        data: { from: i & 3, to: (i + 1) & 3, va: 0x7f0000000000 + i * 4096, pte: i * 7 },
      };
      w.record(event);
    }
    const hash = w.close();
    const writeS = (performance.now() - t0) / 1000;
    const bytes = statSync(path).size;
    const t1 = performance.now();
    const v = verifyNdjsonFile(path);
    const verifyS = (performance.now() - t1) / 1000;
    if (v.events !== EVENTS || v.finalHash !== hash)
      throw new Error(`log bench: verified ${v.events} events, hash ${v.finalHash} ≠ ${hash}`);
    const rssMb = process.resourceUsage().maxRSS / 1024;
    return [
      { name: 'log.write_events_per_s', value: Math.round(EVENTS / writeS), unit: 'events/s' },
      { name: 'log.verify_events_per_s', value: Math.round(EVENTS / verifyS), unit: 'events/s' },
      { name: 'log.peak_rss_mb', value: Math.round(rssMb), unit: 'MB' },
      { name: 'log.file_mb', value: Math.round(bytes / 1e6), unit: 'MB' },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
