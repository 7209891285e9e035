// `mmnsim explore --out` writes the campaign report, `mmnsim export` writes Chrome trace-event
// JSON and `mmnsim report` the HTML report of a replay, a log or a campaign directory; a
// corrupted input is refused with its line and nothing is written.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { cli } from './helpers.js';

const SCENARIO = 'examples/scenarios/odp-no-read-retry.yaml';
const dir = mkdtempSync(join(tmpdir(), 'mmnsim-visual-'));
const out = join(dir, 'campaign');

describe('export and report (the timeline and the HTML report from the command line)', () => {
  it('explore --out writes campaign.json, index.json naming report.html, and a self-contained report', async () => {
    const r = await cli('explore', SCENARIO, '--schedules', '200', '--out', out, '--json');
    expect(r.code).toBe(1);
    const res = JSON.parse(r.out) as { report: string };
    expect(res.report).toBe(join(out, 'report.html'));
    const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as {
      report: string;
      campaign: string;
      scenarioFile: string;
    };
    expect(index).toMatchObject({ report: 'report.html', campaign: 'campaign.json' });
    expect(index.scenarioFile).toBe(SCENARIO);
    const html = readFileSync(res.report, 'utf8');
    expect(html.startsWith('<!doctype html>') || html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).toContain('odp-no-read-retry');
    expect(html).not.toMatch(/<script[^>]+src=/);
  });

  it('export --format chrome turns the minimised replay into trace-event JSON with the violation instant', async () => {
    const trace = join(dir, 'trace.json');
    const r = await cli(
      'export',
      join(out, 'minimised.replay.json'),
      '--scenario',
      SCENARIO,
      '--format',
      'chrome',
      '-o',
      trace,
    );
    expect(r.code).toBe(0);
    const t = JSON.parse(readFileSync(trace, 'utf8')) as {
      traceEvents: { ph: string; cat?: string; name: string }[];
    };
    expect(
      t.traceEvents.some((e) => e.ph === 'i' && e.cat === 'violation' && e.name.includes('odp-')),
    ).toBe(true);
  });

  it('report writes the HTML report of a log and of a campaign directory', async () => {
    const a = join(dir, 'log.html');
    expect((await cli('report', join(out, 'violation-0.ndjson'), '-o', a)).code).toBe(0);
    expect(readFileSync(a, 'utf8')).toContain('odp-mtt-update-unchecked');
    const b = join(dir, 'campaign.html');
    expect((await cli('report', out, '-o', b)).code).toBe(0);
    expect(readFileSync(b, 'utf8')).toContain('odp-mtt-update-unchecked');
  });

  it('a truncated log is refused with its line (exit 2) and no output file is written', async () => {
    const text = readFileSync(join(out, 'violation-0.ndjson'), 'utf8');
    const cut = join(dir, 'cut.ndjson');
    writeFileSync(cut, text.slice(0, text.indexOf('\n', 400) + 20));
    const target = join(dir, 'cut.json');
    const r = await cli('export', cut, '-o', target);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/cut\.ndjson:\d+:1: /);
    expect(r.err).toContain('truncated');
    expect(existsSync(target)).toBe(false);
  });
});
