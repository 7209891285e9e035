import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { explore, makeReplayFile, minimise } from '@mmnsim/core';
import type { ReplayFile } from '@mmnsim/core';
import { ZOO } from '@mmnsim/zoo';

// The CLI is run from its build (`pnpm test` builds first), in a fresh node process.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'examples', 'dist', 'replay', 'main.js');
const dir = mkdtempSync(join(tmpdir(), 'mmnsim-replay-cli-'));
let files = 0;

function run(
  file: ReplayFile | string,
  ...args: string[]
): { status: number; out: string; err: string } {
  const path = join(dir, `f${files++}.json`);
  writeFileSync(path, typeof file === 'string' ? file : JSON.stringify(file));
  const r = spawnSync(process.execPath, [cli, path, ...args], { encoding: 'utf8' });
  return { status: r.status ?? -1, out: r.stdout, err: r.stderr };
}

describe('pnpm replay (issue 9)', () => {
  const variant = ZOO.find((v) => v.id === 'kvm-seq-after-gup')!;
  const scenario = variant.scenario(true);
  const failure = explore(scenario, {
    strategy: { kind: 'pct', depth: 3 },
    iterations: 2000,
    seed: 1,
  }).failures[0]!;
  const shrunk = minimise(scenario, failure);
  const file = makeReplayFile(scenario, { seed: shrunk.seed, schedule: shrunk.schedule });

  it('reproduces a saved zoo failure in a fresh process: same hash, same violation, its interleaving', () => {
    const r = run(file);
    expect(r.status).toBe(0);
    expect(r.out).toContain(`final hash  ${file.finalHash}  (matches the file)`);
    expect(r.out).toContain(`violation   ${file.violation!.kind}:`);
    expect(r.out).toMatch(/! +\d+ +vcpu0@cpu1 +oracle\.violation/);
  });

  it('stops at a step for inspection', () => {
    const r = run(file, '--stop-at', '3');
    expect(r.status).toBe(0);
    expect(r.out).toContain('stopped     at step 3');
    expect(r.out).not.toContain('oracle.violation');
  });

  it('a tampered file is refused with the field named (exit 2)', () => {
    const r = run({ ...file, finalHash: 'f'.repeat(64) });
    expect(r.status).toBe(2);
    expect(r.err).toContain('replay file: "finalHash"');
    const bad = run(JSON.stringify({ ...file, seed: 'one' }));
    expect(bad.status).toBe(2);
    expect(bad.err).toContain('"seed"');
  });

  it('a schedule that no longer fits the run says where it diverged (exit 1)', () => {
    const r = run({ ...file, schedule: file.schedule.slice(0, 2) });
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/replay diverged at choice 2 \(step \d+\)/);
  });
});
