// A plugin from a driver author's own module, named in a scenario by a relative path: it loads
// with no change to the CLI, its oracle runs, `mmnsim plugins` lists it with its options, and
// its option errors point at the scenario line of those options.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { cli } from './helpers.js';

const DIR = join(import.meta.dirname, 'fixtures/plugin');

describe('a plugin by relative path', () => {
  it('runs from the scenario file and its oracle reports (3 tasks, limit 2)', async () => {
    const r = await cli(
      'explore',
      join(DIR, 'spawn-limit.yaml'),
      '--schedules',
      '3',
      '--json',
      '--out',
      mkdtempSync(join(tmpdir(), 'mmnsim-plugin-')),
    );
    expect(r.code).toBe(1);
    const rep = JSON.parse(r.out) as { distinct: { kind: string }[] };
    expect(rep.distinct.map((d) => d.kind)).toEqual(['spawn-limit']);
  });
  it('with limit 3 the run is clean; a bad option is reported at its line', async () => {
    const text = readFileSync(join(DIR, 'spawn-limit.yaml'), 'utf8');
    // Next to the plugin module, so its relative path resolves (removed afterwards).
    const ok = join(DIR, 'tmp-ok.yaml');
    const bad = join(DIR, 'tmp-bad.yaml');
    try {
      writeFileSync(ok, text.replace('limit: 2', 'limit: 3'));
      expect((await cli('explore', ok, '--schedules', '3', '--json')).code).toBe(0);
      writeFileSync(bad, text.replace('limit: 2', 'limit: 0'));
      const r = await cli('explore', bad, '--schedules', '3');
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/tmp-bad\.yaml:7:23: plugins\.1\.options\.limit: plugin "spawn-limit"/);
    } finally {
      rmSync(ok, { force: true });
      rmSync(bad, { force: true });
    }
  });
  it('mmnsim plugins lists it with its id and options', async () => {
    const r = await cli('plugins', join(DIR, 'spawn-limit-plugin.js'), '--json');
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.out) as {
      id: string;
      requires: string[];
      options: { properties?: object } | null;
    }[];
    expect(rows.map((x) => x.id)).toEqual(
      expect.arrayContaining(['mm', 'x86-tlb', 'kvm', 'rdma', 'iommu', 'spawn-limit']),
    );
    expect(
      Object.keys(rows.find((x) => x.id === 'spawn-limit')!.options!.properties ?? {}),
    ).toEqual(['limit']);
  });
});

describe('mmnsim zoo', () => {
  it('a broken variant is found and its correct counterpart is clean: exit 0', async () => {
    const r = await cli(
      'zoo',
      '--only',
      'odp-no-read-retry',
      '--seeds',
      '1',
      '--iterations',
      '300',
    );
    expect(r.out).toMatch(/^found {3}odp-no-read-retry /m);
    expect(r.out).toMatch(/^clean {3}odp-no-read-retry\/correct /m);
    expect(r.code).toBe(0);
  });
});
