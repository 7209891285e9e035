// pread/pwrite on a SimFile through its page cache (mm/filemap.c filemap_read and
// generic_perform_write, reduced to 32-bit words): what hmm-tests does with its O_TMPFILE files
// before and after a device maps them. Its own file: file I/O that is not a mapping.
import { Errno } from '@mmnsim/core';
import type { TaskGen } from '@mmnsim/core';
import { WORDS_PER_PAGE } from './constants.js';
import type { MmCore } from './core.js';
import type { SimFile } from './file.js';
import { filemapReadPage } from './fault.js';
import { Frame } from './physmem.js';

function badPos(pos: number): boolean {
  return !Number.isInteger(pos) || pos < 0 || pos % 4 !== 0;
}

/**
 * `pwrite(fd, buf, len, pos)` of 32-bit words: writes `words` at byte offset `pos` through the
 * page cache (each page is looked up or read in, written under its folio lock, and marked
 * dirty), growing the file as needed (`i_size`). Returns the bytes written, -EINVAL for a `pos`
 * that is not a non-negative multiple of 4 (the model's files are word-granular) or a word that
 * is not a 32-bit integer, -ENOMEM when no page could be allocated for the first page.
 *
 * Context: process context; may sleep (allocation, folio lock).
 *
 * @see generic_perform_write
 */
export function* filePwrite(
  core: MmCore,
  file: SimFile,
  pos: number,
  words: readonly number[],
): TaskGen<number> {
  if (badPos(pos)) return -Errno.EINVAL;
  for (const w of words)
    if (!Number.isInteger(w) || w < -(2 ** 31) || w >= 2 ** 32) return -Errno.EINVAL;
  const phys = core.phys;
  let done = 0;
  while (done < words.length) {
    const word = pos / 4 + done;
    const index = Math.floor(word / WORDS_PER_PAGE);
    const pfn = yield* filemapReadPage(core, file, index);
    if (pfn < 0) return done > 0 ? done * 4 : -Errno.ENOMEM;
    yield* phys.lockFolio(pfn);
    let w = word % WORDS_PER_PAGE;
    for (; w < WORDS_PER_PAGE && done < words.length; w++, done++) phys.write(pfn, w, words[done]!);
    phys.flags[pfn]! |= Frame.DIRTY;
    phys.unlockFolio(pfn);
    if (index + 1 > file.sizePages) file.sizePages = index + 1;
  }
  return done * 4;
}

/**
 * `pread(fd, buf, count * 4, pos)`: reads up to `count` words at byte offset `pos` through the
 * page cache, stopping at end of file. Returns the words read (fewer at EOF, none past it),
 * -EINVAL for a bad `pos` or `count`, -ENOMEM when a page could not be read in.
 *
 * Context: process context; may sleep (allocation).
 *
 * @see filemap_read
 */
export function* filePread(
  core: MmCore,
  file: SimFile,
  pos: number,
  count: number,
): TaskGen<number[] | number> {
  if (badPos(pos) || !Number.isInteger(count) || count < 0) return -Errno.EINVAL;
  const out: number[] = [];
  const endWord = file.sizePages * WORDS_PER_PAGE;
  for (let word = pos / 4; out.length < count && word < endWord;) {
    const index = Math.floor(word / WORDS_PER_PAGE);
    const pfn = yield* filemapReadPage(core, file, index);
    if (pfn < 0) return out.length > 0 ? out : -Errno.ENOMEM;
    for (let w = word % WORDS_PER_PAGE; w < WORDS_PER_PAGE && out.length < count; w++, word++)
      out.push(core.phys.read(pfn, w));
  }
  return out;
}
