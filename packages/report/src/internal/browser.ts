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

/** What {@link chromiumLaunchOptions} returns: options for playwright-core's `chromium.launch`. */
export interface ChromiumLaunchOptions {
  /** {@link CHROMIUM_PATH}. */
  executablePath: string;
  /** Always true. */
  headless: boolean;
  /** The command-line flags. */
  args: string[];
}

/**
 * Launch options for playwright-core's `chromium.launch`: Debian's binary, headless, no
 * sandbox (CI runs as root), no GPU, and no background networking (the machine's network is
 * closed). Playwright's `launch` starts each browser with a fresh, empty profile directory
 * (it refuses a `--user-data-dir` argument).
 *
 * @param executablePath the browser binary (default {@link CHROMIUM_PATH}).
 * @throws Error with {@link CHROMIUM_MISSING} when Debian's binary is absent.
 */
export function chromiumLaunchOptions(executablePath = CHROMIUM_PATH): ChromiumLaunchOptions {
  if (!existsSync(executablePath)) {
    throw new Error(
      executablePath === CHROMIUM_PATH ? CHROMIUM_MISSING : `${executablePath} does not exist`,
    );
  }
  return {
    executablePath,
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
