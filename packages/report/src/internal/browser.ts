/**
 * Launching Debian's Chromium through playwright-core for the browser test, the benchmark and
 * the README screenshot script. Its own file: the one place with the launch flags and the
 * message that says how to install the browser (it is never downloaded).
 */
import { existsSync } from 'node:fs';

/** Where Debian installs Chromium. */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/** The message of a missing browser: how to install it. */
export const CHROMIUM_MISSING =
  `Chromium is not installed at ${CHROMIUM_PATH}: install Debian's package with ` +
  '`apt-get update && apt-get install -y --no-install-recommends chromium` (.ci/run does this ' +
  'when it is absent); the browser is never downloaded by Playwright';

/**
 * Launch options for playwright-core's `chromium.launch`: Debian's binary, headless, no
 * sandbox (CI runs as root), no GPU, and no background networking (the machine's network is
 * closed). Playwright's `launch` starts each browser with a fresh, empty profile directory
 * (it refuses a `--user-data-dir` argument).
 *
 * @throws Error with {@link CHROMIUM_MISSING} when the binary is absent.
 */
export function chromiumLaunchOptions(): {
  executablePath: string;
  headless: boolean;
  args: string[];
} {
  if (!existsSync(CHROMIUM_PATH)) throw new Error(CHROMIUM_MISSING);
  return {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  };
}
