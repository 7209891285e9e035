/**
 * The scenarios `pnpm replay` can rebuild from a replay file's `scenario` id: the bug zoo's
 * (broken and correct forms), the demo's composed simulation, and the lock demo's.
 */
import type { Scenario } from '@mmnsim/core';
import { zooScenario } from '@mmnsim/zoo';
import { demoScenario } from './demo/scenario.js';
import { lockDemoScenario } from './lock-demo/scenario.js';

/**
 * Event types left out of printed interleavings by default: lock, SRCU and page-table
 * bookkeeping, which every step has and few races are about (`pnpm replay --all` shows them).
 */
export const QUIET_EVENTS: readonly string[] = [
  'sched.switch',
  'srcu.*',
  'lock.*',
  'mm.pt.alloc',
  'mm.frame.write',
  'mm.vma.*',
];

/** The scenario registered under `id`, or undefined. */
export function findScenario(id: string): Scenario | undefined {
  const zoo = zooScenario(id);
  if (zoo !== undefined) return zoo;
  for (const s of [demoScenario(), lockDemoScenario(), lockDemoScenario({ broken: true })])
    if (s.id === id) return s;
  return undefined;
}
