/**
 * Headless Chromium for browser tests: Debian's `chromium` package, driven by
 * playwright-core (which ships no browser). Installed with apt-get when missing; when it
 * cannot be installed the test fails with a message saying how to install it. It never
 * skips: a browser test that silently does not run proves nothing.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

const INSTALL_HINT =
  'install it with `apt-get update && apt-get install -y chromium` (as root; .ci/run does this)';

const run = promisify(execFile);

/** Runs one command; its failure reads as one line with the end of its output. */
async function runStep(command: string, args: string[]): Promise<void> {
  try {
    await run(command, args, {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (error) {
    const { stderr, message } = error as { stderr?: string; message: string };
    const detail = (stderr?.trim() || message).split('\n').slice(-3).join(' | ');
    throw new Error(`\`${command} ${args.join(' ')}\` failed: ${detail}`);
  }
}

/** The path of a Chromium binary, installing the Debian package first if there is none. */
export async function ensureChromium(): Promise<string> {
  if (existsSync(CHROMIUM_PATH)) return CHROMIUM_PATH;
  // Wait for a concurrent apt/dpkg (another test run, unattended upgrades) instead of failing.
  const lockWait = ['-o', 'DPkg::Lock::Timeout=600'];
  try {
    await runStep('apt-get', [...lockWait, 'update']);
    await runStep('apt-get', [...lockWait, 'install', '-y', '--no-install-recommends', 'chromium']);
  } catch (error) {
    throw new Error(
      `headless Chromium is required by the browser tests and is not at ${CHROMIUM_PATH}; ` +
        `installing it failed (${(error as Error).message}); ${INSTALL_HINT}`,
    );
  }
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`apt-get installed chromium, but there is no ${CHROMIUM_PATH}; ${INSTALL_HINT}`);
  }
  return CHROMIUM_PATH;
}

/** Launches headless Chromium with nothing running in the background (no sync, no updates). */
export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: await ensureChromium(),
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
  });
}
