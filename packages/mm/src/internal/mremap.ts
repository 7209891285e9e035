// TEMPORARY STUB — replaced by the unmap helper before commit.
import type { TaskGen } from '@mmnsim/core';
import type { MmCore } from './core.js';
import type { MmStruct } from './mm.js';
export function* doMremap(
  _core: MmCore,
  _mm: MmStruct,
  _oldAddr: number,
  _oldLen: number,
  _newLen: number,
  _flags: number,
  _newAddr: number,
): TaskGen<number> {
  throw new Error('doMremap: not implemented yet');
}
