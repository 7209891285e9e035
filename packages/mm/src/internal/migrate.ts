// TEMPORARY STUB — replaced by the fork/reclaim/migration helper before commit.
import type { TaskGen } from '@mmnsim/core';
import type { MmCore } from './core.js';
export function* migrateFolio(_core: MmCore, _pfn: number): TaskGen<number> {
  throw new Error('migrateFolio: not implemented yet');
}
