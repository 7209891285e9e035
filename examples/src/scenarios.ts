/**
 * The scenarios `pnpm replay` can rebuild from a replay file's `scenario` id: the bug zoo's
 * (broken and correct forms), the demo's composed simulation, and the lock demo's.
 */
import type { Scenario } from '@mmnsim/core';
import { zooScenario } from '@mmnsim/zoo';
import { lockDemoScenario } from './lock-demo/scenario.js';

/** The scenario registered under `id`, or undefined. */
export function findScenario(id: string): Scenario | undefined {
  const zoo = zooScenario(id);
  if (zoo !== undefined) return zoo;
  for (const s of [lockDemoScenario(), lockDemoScenario({ broken: true })])
    if (s.id === id) return s;
  return undefined;
}
