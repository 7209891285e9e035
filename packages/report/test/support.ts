/** Test helpers: the minimised replay file of a zoo variant, made the way `pnpm zoo` makes it. */
import { makeReplayFile } from '@mmnsim/core';
import type { ReplayFile } from '@mmnsim/core';
import { huntVariant } from '@mmnsim/zoo';
import type { ZooVariant } from '@mmnsim/zoo';

/** Hunts `v` (seed 1, PCT d=3), minimises the failure and returns its replay file and text. */
export function minimisedReplay(v: ZooVariant): { file: ReplayFile; text: string } {
  const h = huntVariant(v, { broken: true, seed: 1, iterations: 2000, minimise: true });
  if (h.minimised === undefined) throw new Error(`${v.id}: not found`);
  const file = makeReplayFile(v.scenario(true), {
    seed: h.minimised.seed,
    schedule: h.minimised.schedule,
    strategy: { kind: 'pct', depth: 3 },
  });
  return { file, text: JSON.stringify(file, null, 2) + '\n' };
}
