/**
 * A nats-server of a test's own, to stop and start at will without touching the stack the
 * other test files share. Same binary (tools/dev/tools.ts) and the same durability settings
 * as the embedded one: JetStream with its own store and `sync_interval: always`.
 * nats-server cannot take port 0 from a config file, so a free port is chosen up front and
 * kept across restarts, like the store.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { choosePorts, launch, waitUntilReady, type ManagedProcess } from '../../tools/dev/processes';
import { ensureTools } from '../../tools/dev/tools';
import type { NatsConnection } from '../../relay/stream';

export interface PrivateNats {
  url: string;
  /** Starts the server (again), on the same port and store; resolves once JetStream answers. */
  start(): Promise<void>;
  /** SIGTERM, as an orchestrator stops it; resolves once the process is gone. */
  stop(): Promise<void>;
}

export async function createPrivateNats(dir: string): Promise<PrivateNats> {
  const { natsServer } = await ensureTools(() => undefined);
  const [port] = await choosePorts('nats', [0]);
  const url = `nats://127.0.0.1:${port}`;
  const configFile = path.join(dir, 'nats.conf');
  await writeFile(
    configFile,
    [
      `listen: "127.0.0.1:${port}"`,
      'jetstream {',
      `  store_dir: ${JSON.stringify(path.join(dir, 'store'))}`,
      '  sync_interval: always',
      '}',
      '',
    ].join('\n'),
  );
  let server: ManagedProcess | undefined;
  return {
    url,
    async start() {
      if (server && !server.hasExited()) return;
      const started = launch({
        name: 'nats',
        command: natsServer,
        args: ['-c', configFile],
        logFile: path.join(dir, 'nats.log'),
        stopSignal: 'SIGTERM',
      });
      server = started;
      await waitUntilReady(started, () => jetStreamAnswers(url), 15_000);
    },
    async stop() {
      await server?.stop();
    },
  };
}

async function jetStreamAnswers(url: string): Promise<boolean> {
  const nats = (await connect({ servers: url, reconnect: false, timeout: 1_000 })) as NatsConnection;
  try {
    await (await jetstreamManager(nats)).getAccountInfo();
    return true;
  } finally {
    await nats.close();
  }
}
