import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { chromiumLaunchOptions, loadRunText, runReportHtml } from '@mmnsim/report';
import { ZOO, zooScenario } from '@mmnsim/zoo';
import { chromium } from 'playwright-core';
import { minimisedReplay } from './support.js';

/** Test output (gitignored): the report and its screenshot. */
const OUT = join(process.cwd(), '.tmp', 'report-test');

describe('the HTML report in Chromium (issue 18)', () => {
  it('kvm-flush-after-start: shows a lane per task, the violation marker and cited events; the scrubber changes the state; no console error', async () => {
    const v = ZOO.find((z) => z.id === 'kvm-flush-after-start')!;
    const run = loadRunText(minimisedReplay(v).text, zooScenario, 'kvm.replay.json');
    const html = runReportHtml(run, { replayCommand: 'pnpm replay kvm.replay.json' });
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=|https?:\/\/(?!www\.w3\.org)/);
    mkdirSync(OUT, { recursive: true });
    const file = join(OUT, 'report.html');
    writeFileSync(file, html);

    const browser = await chromium.launch(chromiumLaunchOptions());
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      const errors: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (e) => errors.push(e.message));
      const requests: string[] = [];
      page.on('request', (r) => {
        if (!r.url().startsWith('file:')) requests.push(r.url());
      });
      await page.goto('file://' + file);
      await page.waitForFunction(() => window.__report?.ready === true);

      const spawned = run.events
        .filter((e) => e.type === 'sched.spawn')
        .map((e) => (e.data as { id: number; name: string }).name);
      const lanes = await page.locator('#lane-labels .lane').allTextContents();
      expect(lanes).toEqual(spawned.map((name, id) => `${name}#${id}`));
      const groups = await page.locator('#lane-labels .group').allTextContents();
      expect(groups).toEqual(['cpu0', 'cpu1']);

      const v0 = run.violations[0]!;
      await expect(page.locator('#violation-marker').isVisible()).resolves.toBe(true);
      expect(await page.locator('#violation-marker').textContent()).toContain(v0.kind);
      expect(await page.locator('#violation').textContent()).toContain(v0.kind);
      const cites = await page
        .locator('#violation a.cite')
        .evaluateAll((as) => as.map((a) => Number(a.getAttribute('data-seq'))));
      expect(cites).toEqual([...v0.evidence, v0.seq]);

      // The report opens at the violation: mini-kvm still maps the page the window covers.
      const atViolation = await page.locator('#state').textContent();
      expect(atViolation).toContain('mini-kvm');
      expect(atViolation).toContain('range #2 CLEAR');
      await page.locator('#scrubber').fill('0');
      const atStart = await page.locator('#state').textContent();
      expect(atStart).not.toEqual(atViolation);
      expect(atStart).not.toContain('range #2 CLEAR');
      expect(await page.locator('#position').textContent()).toContain('step 0');
      // Clicking a cited event moves the scrubber there.
      await page.locator('#violation a.cite').first().click();
      expect(Number(await page.locator('#scrubber').inputValue())).toBe(
        run.events.findIndex((e) => e.seq === v0.evidence[0]),
      );
      // Search by address highlights the events that touch the page.
      await page.locator('#search').fill('0x40002000');
      expect(await page.locator('#events .ev.hit').count()).toBeGreaterThan(0);
      await page.locator('#search').fill('');

      await page.screenshot({ path: join(OUT, 'report.png'), fullPage: true });
      expect(errors).toEqual([]);
      expect(requests).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 60_000);
});
