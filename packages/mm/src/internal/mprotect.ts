// TEMPORARY STUB — replaced by the unmap helper before commit.
import type { TaskGen } from '@mmnsim/core';
import type { MmCore } from './core.js';
import type { MmStruct } from './mm.js';
export function* doMprotect(
  _core: MmCore,
  _mm: MmStruct,
  _addr: number,
  _len: number,
  _prot: number,
): TaskGen<number> {
  throw new Error('doMprotect: not implemented yet');
}
