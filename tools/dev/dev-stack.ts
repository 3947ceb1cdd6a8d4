/**
 * `tsx tools/dev/dev-stack.ts --data-dir <dir>`: the stack for the integration tests.
 * Starts it on fresh data (what earlier runs left in <dir> is removed first), prints ONE
 * JSON line `{"databaseUrl","temporalAddress","temporalUiUrl","natsUrl"}` on stdout once
 * everything answers, and stops it on SIGTERM/SIGINT or when stdin closes, so it dies with
 * the process that started it. DATABASE_URL / TEMPORAL_ADDRESS / NATS_URL, when set, are
 * used instead of starting that piece. Everything else goes to stderr.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { hostPort, loadOrExit, optionalString, url, urls, type Env } from '../../lib/env';
import { startStack, type Stack } from './stack';
import { ensureTools } from './tools';

interface DevStackConfig {
  dataDir: string;
  databaseUrl?: string;
  temporalAddress?: string;
  temporalUiUrl?: string;
  natsUrl?: string;
}

function loadConfig(argv: string[], env: Env): DevStackConfig {
  const { values } = parseArgs({ args: argv, options: { 'data-dir': { type: 'string' } } });
  const dataDir = values['data-dir'];
  if (!dataDir) throw new Error('usage: tsx tools/dev/dev-stack.ts --data-dir <dir>');
  const temporalAddress = optionalString(env, 'TEMPORAL_ADDRESS') && hostPort(env, 'TEMPORAL_ADDRESS');
  const databaseUrl = url(env, 'DATABASE_URL', ['postgres', 'postgresql'], true);
  const temporalUiUrl = url(env, 'TEMPORAL_UI_URL', ['http', 'https'], true);
  const natsUrl = urls(env, 'NATS_URL', ['nats', 'tls'], true);
  return {
    dataDir: path.resolve(dataDir),
    ...(databaseUrl ? { databaseUrl } : {}),
    ...(temporalAddress ? { temporalAddress } : {}),
    ...(temporalUiUrl ? { temporalUiUrl } : {}),
    ...(natsUrl ? { natsUrl } : {}),
  };
}

async function main(): Promise<void> {
  const config = loadOrExit(() => loadConfig(process.argv.slice(2), process.env));
  const state: { stack?: Stack; stopping: boolean } = { stopping: false };
  const stop = (why: string): void => {
    if (state.stopping) return;
    state.stopping = true;
    if (!state.stack) {
      // Nothing to wait for yet: exiting signals whatever has started.
      process.stderr.write(`dev-stack: ${why} before the stack was ready; stopping\n`);
      process.exit(1);
    }
    state.stack.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // stdin closing means the parent is gone (or never meant to keep us): stop with it.
  process.stdin.on('end', () => stop('stdin closed'));
  process.stdin.on('close', () => stop('stdin closed'));
  process.stdin.resume();

  const tools = await ensureTools();
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const stack = await startStack({ ...config, tools, fresh: true, ephemeral: true, log });
  state.stack = stack;
  const { databaseUrl, temporalAddress, temporalUiUrl, natsUrl } = stack;
  process.stdout.write(`${JSON.stringify({ databaseUrl, temporalAddress, temporalUiUrl, natsUrl })}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`dev-stack: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
