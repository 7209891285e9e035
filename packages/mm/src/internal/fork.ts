// TEMPORARY STUB — replaced by the fork/reclaim/migration helper before commit.
import type { TaskGen } from '@mmnsim/core';
import type { MmCore } from './core.js';
import type { MmStruct } from './mm.js';
export function* dupMmap(
  _core: MmCore,
  _parent: MmStruct,
  _childName: string,
): TaskGen<MmStruct | number> {
  throw new Error('dupMmap: not implemented yet');
}
