/** Stops the stack global-setup.ts started and removes its temp dir. */
import { rm } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import type { RunningStack } from './global-setup';
import { RUNNING_STACK_KEY } from './stack';

const STOP_TIMEOUT_MS = 30_000;

export default async function globalTeardown(): Promise<void> {
  const stack = (globalThis as Record<string, unknown>)[RUNNING_STACK_KEY] as RunningStack | undefined;
  if (!stack) return;
  const { child, dir } = stack;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM'); // dev-stack stops postgres, temporal and nats, then exits
    // Unref'd, or the pending timer would hold jest open for the full 30 s.
    const timeout = delay(STOP_TIMEOUT_MS, 'timeout' as const, { ref: false });
    const outcome = await Promise.race([exited, timeout]);
    if (outcome === 'timeout') {
      child.kill('SIGKILL'); // its children still get their parent-death signal
      await exited;
    }
  }
  await rm(dir, { recursive: true, force: true });
}
