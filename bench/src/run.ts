/**
 * `pnpm bench`: prints one JSON line per metric, `{"name","value","unit"}`. Figures are
 * measured here and reported in notes; tests never assert on speed.
 */
import 'reflect-metadata';
import { benchCli } from './cli.js';
import { benchCore } from './core.js';
import { benchExplore, benchZoo } from './explore.js';
import { benchIommu } from './iommu.js';
import { benchGart } from './gart.js';
import { benchItree } from './itree.js';
import { benchKvm } from './kvm.js';
import { benchLog } from './log.js';
import { benchMm } from './mm.js';
import { benchMigrate } from './mm-migrate.js';
import { benchMunmap } from './mm-unmap.js';
import { benchThp } from './mm-thp.js';
import { benchMmn } from './mmn.js';
import { benchRdma } from './rdma.js';
import { benchReport } from './report.js';
import { benchSrcu } from './srcu.js';
import { benchSync } from './sync.js';
import { benchX86Tlb } from './x86-tlb.js';
import type { Metric } from './metric.js';

const suites: Record<string, () => Metric[] | Promise<Metric[]>> = {
  core: benchCore,
  itree: benchItree,
  sync: benchSync,
  srcu: benchSrcu,
  mm: benchMm,
  munmap: benchMunmap,
  migrate: benchMigrate,
  thp: benchThp,
  mmn: benchMmn,
  x86: benchX86Tlb,
  kvm: benchKvm,
  rdma: benchRdma,
  explore: benchExplore,
  zoo: benchZoo,
  iommu: benchIommu,
  gart: benchGart,
  report: benchReport,
  log: benchLog,
  cli: benchCli,
};

const only = process.argv.slice(2);
for (const [name, suite] of Object.entries(suites)) {
  if (only.length > 0 && !only.includes(name)) continue;
  for (const m of await suite()) process.stdout.write(JSON.stringify(m) + '\n');
}
