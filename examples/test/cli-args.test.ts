// Issue 23: the CLIs parse numbers strictly ('' , 1,,2, 0x10, 1e21 and values beyond the
// safe-integer range are refused; seed + schedules must stay in range) and the demo checks its
// output directory before doing its work, failing with a named error.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { parseZooArgs, UsageError, wholeNumber, wholeNumberList, ZOO } from '@mmnsim/zoo';
import { parseDemoArgs } from '../src/demo/args.js';
import { parseReplayArgs } from '../src/replay/args.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ids = ZOO.map((v) => v.id);

describe('strict whole numbers', () => {
  it.each([
    '',
    ' 1',
    '1 ',
    '+1',
    '-1',
    '01',
    '0x10',
    '1e21',
    '1.0',
    '1_000',
    '9007199254740992',
    '١',
  ])('refuses %p naming the flag', (text) => {
    expect(() => wholeNumber('--seed', text, 0)).toThrow(UsageError);
    expect(() => wholeNumber('--seed', text, 0)).toThrow(/^--seed takes a whole number/);
  });

  it('accepts plain decimal digits in range, and lists without empty items', () => {
    expect(wholeNumber('--seed', '0', 0)).toBe(0);
    expect(wholeNumber('--seed', '9007199254740991', 0)).toBe(Number.MAX_SAFE_INTEGER);
    expect(wholeNumberList('--seeds', '1,2,3', 0)).toEqual([1, 2, 3]);
    expect(() => wholeNumberList('--seeds', '1,,2', 0)).toThrow(/without empty items/);
    expect(() => wholeNumberList('--seeds', '1,', 0)).toThrow(UsageError);
  });

  it('seed + schedules (and the zoo seeds + iterations) must stay safe integers', () => {
    expect(() => parseDemoArgs(['--seed', '9007199254740990'], ids)).toThrow(
      /--seed takes a whole number from 0 to 9007199254738992/,
    );
    expect(parseDemoArgs(['--seed', '9007199254738992'], ids).seed).toBe(9007199254738992);
    expect(() => parseDemoArgs(['--schedules', '0'], ids)).toThrow(/--schedules/);
    expect(() => parseZooArgs(['--iterations', '10', '--seeds', '9007199254740985'], ids)).toThrow(
      /--seeds/,
    );
    expect(parseZooArgs(['--iterations', '10', '--seeds', '9007199254740982'], ids).seeds).toEqual([
      9007199254740982,
    ]);
    expect(() => parseReplayArgs(['f.json', '--stop-at', '1e3'])).toThrow(/--stop-at/);
    expect(() => parseReplayArgs(['f.json', '--bogus'])).toThrow(UsageError);
    expect(() => parseDemoArgs(['--variant', 'nope'], ids)).toThrow(/--variant must be one of/);
  });
});

describe('the CLIs', () => {
  it('pnpm zoo --seeds 1,,2 exits 2 with the message (it ran seed 0 before)', () => {
    const r = spawnSync(
      process.execPath,
      [join(root, 'examples/zoo/dist/main.js'), '--seeds', '1,,2'],
      { encoding: 'utf8' },
    );
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/zoo: --seeds takes whole numbers separated by single commas/);
  });

  it('pnpm demo with .mmnsim a file fails at once with a named error, before the work', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'mmnsim-demo-out-'));
    writeFileSync(join(cwd, '.mmnsim'), 'not a directory');
    const r = spawnSync(
      process.execPath,
      [join(root, 'examples/dist/demo/main.js'), '--schedules', '1'],
      { cwd, encoding: 'utf8' },
    );
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(
      /^demo: cannot create the output directory \.mmnsim\/replays: ENOTDIR/,
    );
    expect(r.stdout).toBe('');
  });
});
