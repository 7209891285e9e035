// The scenario library (examples/scenarios/*.yaml): `mmnsim explore` on each with a small budget
// gives the outcome the file states under `expect` — clean for the correct KVM, x86-TLB and ODP
// models, the named violation kind for each planted bug (the file's "Source:" comment names the
// kernel function and scenario number it comes from).
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { cli } from './helpers.js';

const DIR = join(import.meta.dirname, '../../../examples/scenarios');
const FILES = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

describe('examples/scenarios under mmnsim explore', () => {
  it('has at least 12 scenarios, each naming its source', () => {
    expect(FILES.length).toBeGreaterThanOrEqual(12);
    for (const f of FILES) expect(readFileSync(join(DIR, f), 'utf8')).toMatch(/^# Source: \S+/m);
  });

  for (const f of FILES) {
    it(`${f}: the stated outcome`, async () => {
      const text = readFileSync(join(DIR, f), 'utf8');
      const clean = /^expect: \{ outcome: clean \}/m.test(text);
      const out = mkdtempSync(join(tmpdir(), 'mmnsim-lib-'));
      const r = await cli(
        'explore',
        join(DIR, f),
        '--schedules',
        clean ? '30' : '300',
        '--json',
        '--out',
        out,
      );
      expect(r.err).toBe('');
      const report = JSON.parse(r.out) as {
        asExpected: boolean;
        distinct: { kind: string }[];
        failures: unknown[];
        out: { replays: string[] };
      };
      expect(report.asExpected).toBe(true);
      expect(r.code).toBe(clean ? 0 : 1);
      if (!clean) {
        // The minimised failure was saved and replays to a violation.
        expect(report.out.replays.length).toBeGreaterThan(0);
        const again = await cli(
          'replay',
          report.out.replays[0]!,
          '--scenario',
          join(DIR, f),
          '--json',
        );
        expect(again.code).toBe(1);
        expect(
          (JSON.parse(again.out) as { violations: unknown[] }).violations.length,
        ).toBeGreaterThan(0);
      }
    });
  }
});
