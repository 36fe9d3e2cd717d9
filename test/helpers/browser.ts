/**
 * Debian's chromium, driven by playwright-core: headless, no sandbox (containers), no network
 * of its own, a fresh profile per launch (removed at close), never a downloaded browser. The
 * browser process is closed by `close()`; should that fail, it is killed by its PID.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env.WRIT_CHROMIUM ?? '/usr/bin/chromium';
/** Whether the browser tests can run (scripts/install-test-deps.sh installs Debian's chromium). */
export const HAVE_CHROMIUM = existsSync(CHROMIUM);
if (!HAVE_CHROMIUM)
  console.warn(`\n*** ${CHROMIUM} not found: the web console's browser tests are SKIPPED (scripts/install-test-deps.sh installs chromium) ***\n`);

export async function launchChromium(): Promise<{ browser: Browser; close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'writ-chromium-'));
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    // playwright refuses --user-data-dir with launch(); it gives every launch a fresh profile of its
    // own (removed at close). Downloads, crash reports and the like go to `profile`.
    downloadsPath: profile,
  });
  const pid = (browser as unknown as { process?: () => { pid?: number } | undefined }).process?.()?.pid;
  return {
    browser,
    async close() {
      try {
        await browser.close();
      } catch {
        if (pid) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Where screenshots go: $WRIT_CONSOLE_SCREENSHOTS, else a fresh temporary directory. */
export function screenshotDir(): string {
  return process.env.WRIT_CONSOLE_SCREENSHOTS ?? mkdtempSync(join(tmpdir(), 'writ-console-shots-'));
}
