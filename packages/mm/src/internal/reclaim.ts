// TEMPORARY STUB — replaced by the fork/reclaim/migration helper before commit.
import type { TaskGen } from '@mmnsim/core';
import type { MmCore } from './core.js';
export function* shrinkLru(_core: MmCore, _nr: number): TaskGen<number> {
  throw new Error('shrinkLru: not implemented yet');
}
export function* reclaimFolio(_core: MmCore, _pfn: number): TaskGen<boolean> {
  throw new Error('reclaimFolio: not implemented yet');
}
