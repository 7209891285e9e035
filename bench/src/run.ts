/**
 * `pnpm bench`: prints one JSON line per metric, `{"name","value","unit"}`. Figures are
 * measured here and reported in notes; tests never assert on speed.
 */
import 'reflect-metadata';
import { benchCli } from './cli.js';
import { benchCore } from './core.js';
import { benchExplore, benchZoo } from './explore.js';
import { benchItree } from './itree.js';
import { benchKvm } from './kvm.js';
import { benchMm } from './mm.js';
import { benchMunmap } from './mm-unmap.js';
import { benchMmn } from './mmn.js';
import { benchRdma } from './rdma.js';
import { benchSrcu } from './srcu.js';
import { benchSync } from './sync.js';
import { benchX86Tlb } from './x86-tlb.js';
import type { Metric } from './metric.js';

const suites: Record<string, () => Metric[]> = {
  core: benchCore,
  itree: benchItree,
  sync: benchSync,
  srcu: benchSrcu,
  mm: benchMm,
  munmap: benchMunmap,
  mmn: benchMmn,
  x86: benchX86Tlb,
  kvm: benchKvm,
  rdma: benchRdma,
  explore: benchExplore,
  zoo: benchZoo,
  cli: benchCli,
};

const only = process.argv.slice(2);
for (const [name, suite] of Object.entries(suites)) {
  if (only.length > 0 && !only.includes(name)) continue;
  for (const m of suite()) process.stdout.write(JSON.stringify(m) + '\n');
}
