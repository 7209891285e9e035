// TEMPORARY STUB — replaced by the unmap helper before commit.
import type { TaskGen } from '@mmnsim/core';
import type { MmCore } from './core.js';
import type { MmStruct } from './mm.js';
export function* unmapRegionLocked(
  _core: MmCore,
  _mm: MmStruct,
  _start: number,
  _end: number,
): TaskGen<void> {
  throw new Error('unmapRegionLocked: not implemented yet');
}
export function* doMunmap(
  _core: MmCore,
  _mm: MmStruct,
  _addr: number,
  _len: number,
): TaskGen<number> {
  throw new Error('doMunmap: not implemented yet');
}
export function* doMadvise(
  _core: MmCore,
  _mm: MmStruct,
  _addr: number,
  _len: number,
  _advice: number,
): TaskGen<number> {
  throw new Error('doMadvise: not implemented yet');
}
export function* exitMmap(_core: MmCore, _mm: MmStruct): TaskGen<void> {
  throw new Error('exitMmap: not implemented yet');
}
export function* mmput(_core: MmCore, _mm: MmStruct): TaskGen<void> {
  throw new Error('mmput: not implemented yet');
}
export function mmget(_mm: MmStruct): void {
  throw new Error('mmget: not implemented yet');
}
export function mmgetNotZero(_mm: MmStruct): boolean {
  throw new Error('mmgetNotZero: not implemented yet');
}
export function mmgrab(_mm: MmStruct): void {
  throw new Error('mmgrab: not implemented yet');
}
export function mmdrop(_core: MmCore, _mm: MmStruct): void {
  throw new Error('mmdrop: not implemented yet');
}
export function* oomReap(_core: MmCore, _mm: MmStruct): TaskGen<boolean> {
  throw new Error('oomReap: not implemented yet');
}
