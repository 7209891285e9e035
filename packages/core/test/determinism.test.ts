import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import * as core from '@mmnsim/core';
import { readNdjson } from '@mmnsim/core';
// @ts-expect-error -- plain ESM fixture without type declarations, shared with a child process
import { runLockScenario } from './fixtures/lock-scenario.mjs';

type Run = { ndjson: string; hash: string; counter: number; reason: string };
const run = runLockScenario as (c: typeof core, seed: number) => Run;
const here = dirname(fileURLToPath(import.meta.url));

describe('determinism (ARCHITECTURE §3.5, §4): same scenario + seed + strategy -> same log', () => {
  it('two runs with the same seed in one process give byte-identical NDJSON', () => {
    const a = run(core, 42);
    const b = run(core, 42);
    expect(a.reason).toBe('done');
    expect(a.counter).toBe(10);
    expect(a.ndjson).toBe(b.ndjson);
    expect(a.hash).toBe(b.hash);
    expect(readNdjson(a.ndjson).finalHash).toBe(a.hash);
  });

  it('different seeds give different interleavings (the seed really drives the run)', () => {
    const hashes = new Set([1, 2, 3, 4, 5].map((s) => run(core, s).hash));
    expect(hashes.size).toBeGreaterThan(1);
  });

  it('a separate Node process running the built package writes the byte-identical log', () => {
    const child = join(here, 'fixtures', 'lock-scenario-child.mjs');
    const out = execFileSync(process.execPath, [child, '7'], { encoding: 'utf8' });
    const mine = run(core, 7);
    expect(out.length).toBeGreaterThan(1000);
    expect(out).toBe(mine.ndjson);
  });
});
