// Regenerates the README's screenshots (`pnpm report:screenshot`): the report of the zoo's
// odp-no-read-retry minimised replay, and of a 60-schedule portfolio campaign on it, rendered
// in Debian's Chromium. Writes packages/report/docs/report.png and campaign.png.
import 'reflect-metadata';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { explore, makeReplayFile } from '@mmnsim/core';
import {
  campaignReportHtml,
  chromiumLaunchOptions,
  loadRunText,
  minimisedRuns,
  recordIterations,
  runReportHtml,
} from '@mmnsim/report';
import { huntVariant, ZOO, zooScenario } from '@mmnsim/zoo';
import { chromium } from 'playwright-core';

const docs = join(dirname(fileURLToPath(import.meta.url)), '..', 'docs');
mkdirSync(docs, { recursive: true });
const v = ZOO.find((z) => z.id === 'odp-no-read-retry');
const scenario = v.scenario(true);
const h = huntVariant(v, { broken: true, seed: 1, iterations: 2000, minimise: true });
const file = makeReplayFile(scenario, { ...h.minimised, strategy: { kind: 'pct', depth: 3 } });
const run = loadRunText(JSON.stringify(file), zooScenario, 'odp-no-read-retry.replay.json');
const runHtml = runReportHtml(run, { replayCommand: 'pnpm replay odp-no-read-retry.replay.json' });

let tick = 0;
const rec = recordIterations(() => (tick += 3));
const report = explore(scenario, {
  strategy: 'portfolio',
  iterations: 60,
  stopOnFirst: false,
  seed: 1,
  onIteration: rec.onIteration,
});
const campaignHtml = campaignReportHtml({
  report,
  iterations: rec.records,
  runs: minimisedRuns(scenario, report, { replayCommand: (_f, i) => `pnpm replay bug-${i}.json` }),
});

const browser = await chromium.launch(chromiumLaunchOptions());
try {
  for (const [name, html] of [
    ['report.png', runHtml],
    ['campaign.png', campaignHtml],
  ]) {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.setContent(html);
    await page.waitForFunction(() => globalThis.__report?.ready === true);
    await page.screenshot({ path: join(docs, name), fullPage: name === 'campaign.png' });
    await page.close();
    console.log(`wrote ${join(docs, name)}`);
  }
} finally {
  await browser.close();
}
