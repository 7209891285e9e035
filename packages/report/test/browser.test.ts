/// <reference lib="dom" />
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { explore } from '@mmnsim/core';
import {
  campaignReportHtml,
  CHROMIUM_MISSING,
  chromiumLaunchOptions,
  loadRunText,
  minimisedRuns,
  recordIterations,
  runReportHtml,
} from '@mmnsim/report';
import { ZOO, zooScenario } from '@mmnsim/zoo';
import { chromium } from 'playwright-core';
import type { Page } from 'playwright-core';
import { minimisedReplay } from './support.js';

/** Test output (gitignored): the reports and their screenshots. */
const OUT = join(process.cwd(), '.tmp', 'report-test');

/**
 * Writes `html` to the test output as `<name>.html`, opens it in Chromium, runs `check`, saves
 * `<name>.png`, and asserts that no console error and no network request happened.
 */
async function inChromium(name: string, html: string, check: (page: Page) => Promise<void>) {
  mkdirSync(OUT, { recursive: true });
  const file = join(OUT, `${name}.html`);
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
    await page.waitForFunction(
      () => (window as { __report?: { ready: boolean } }).__report?.ready === true,
    );
    await check(page);
    await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
    expect(errors).toEqual([]);
    expect(requests).toEqual([]);
  } finally {
    await browser.close();
  }
}

describe('the HTML report in Chromium (issue 18)', () => {
  it('a missing browser fails with the command that installs it (never a skip, never a download)', () => {
    expect(CHROMIUM_MISSING).toContain('apt-get install -y --no-install-recommends chromium');
    expect(() => chromiumLaunchOptions('/nonexistent/chromium')).toThrow('/nonexistent/chromium');
    expect(chromiumLaunchOptions().args).toContain('--disable-background-networking');
  });

  it('kvm-flush-after-start: shows a lane per task, the violation marker and cited events; the scrubber changes the state; no console error', async () => {
    const v = ZOO.find((z) => z.id === 'kvm-flush-after-start')!;
    const run = loadRunText(minimisedReplay(v).text, zooScenario, 'kvm.replay.json');
    const html = runReportHtml(run, { replayCommand: 'pnpm replay kvm.replay.json' });
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=|https?:\/\/(?!www\.w3\.org)/);
    await inChromium('report', html, async (page) => {
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
    });
  }, 60_000);

  it('a campaign report (odp-no-read-retry, 60 portfolio schedules): summary with the PCT guarantee, three uPlot plots, each distinct violation with its minimised schedule and run', async () => {
    const v = ZOO.find((z) => z.id === 'odp-no-read-retry')!;
    const scenario = v.scenario(true);
    let tick = 0;
    const rec = recordIterations(() => (tick += 3));
    const report = explore(scenario, {
      strategy: 'portfolio',
      iterations: 60,
      stopOnFirst: false,
      seed: 1,
      onIteration: rec.onIteration,
    });
    expect(report.distinct.length).toBeGreaterThan(0);
    const runs = minimisedRuns(scenario, report, {
      replayCommand: (_f, i) => `pnpm replay bug-${i}.json`,
    });
    const html = campaignReportHtml({ report, iterations: rec.records, runs });
    await inChromium('campaign', html, async (page) => {
      const summary = await page.locator('#campaign-summary').textContent();
      expect(summary).toContain(`schedules${report.iterations}`);
      expect(summary).toContain('PCT d=2');
      expect(await page.locator('#plot-found canvas').count()).toBeGreaterThan(0);
      expect(await page.locator('#plot-steps canvas').count()).toBeGreaterThan(0);
      expect(await page.locator('#plot-rate canvas').count()).toBeGreaterThan(0);
      expect(await page.locator('.distinct').count()).toBe(report.distinct.length);
      const first = page.locator('.distinct').first();
      expect(await first.textContent()).toContain('pnpm replay bug-0.json');
      expect(await first.textContent()).toContain(
        `minimised schedule (${runs[0]!.run.replay!.schedule.length} choices)`,
      );
      // The first run is shown: its lanes and its violation.
      expect(await page.locator('#violation').first().textContent()).toContain(
        report.distinct[0]!.kind,
      );
      expect(await page.locator('#lane-labels .lane').count()).toBeGreaterThan(1);
    });
  }, 60_000);
});
