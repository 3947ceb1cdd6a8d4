/**
 * The bench's cluster engine (`--engine cluster`): the production topology of
 * `npm run start:cluster` (tools/dev/cluster-stack.ts: the Temporal server on Postgres, three
 * NATS nodes with ORDERS at 3 replicas, two each of api, worker and relay), started fresh in
 * the bench's data directory with the bench's service settings, as a System (./system.ts).
 * Orders go to both api replicas in turn; stopping the relay stops both relays.
 */
import { startCluster } from '../dev/cluster-stack';
import { ensureClusterTools } from '../dev/tools';
import type { BenchConfig } from './config';
import { prepareDatabase, type ServiceName, type System, type SystemHooks } from './system';

export async function startClusterSystem(config: BenchConfig, dataDir: string, hooks: SystemHooks): Promise<System> {
  const tools = await ensureClusterTools(hooks.log);
  let stopping = false;
  const cluster = await startCluster({
    dataDir,
    tools,
    fresh: true,
    ports: 'any',
    serviceEnv: { PATH: process.env.PATH, HOME: process.env.HOME, ...config.childEnv },
    log: hooks.log,
    onUnexpectedExit: ({ piece, status }) => {
      if (stopping) return;
      const service = cluster_services.find((each) => piece.startsWith(each));
      hooks.onServiceExit(service ?? 'api', `${piece}: ${JSON.stringify(status)}`, `${dataDir}/logs/${piece}.log`);
    },
  });
  await prepareDatabase(cluster.databaseUrl);
  let stopped: Promise<void> | undefined;
  return {
    dataDir,
    stack: {
      databaseUrl: cluster.databaseUrl,
      temporalAddress: cluster.temporalAddress,
      temporalUiUrl: cluster.temporalUiUrl,
      natsUrl: cluster.natsUrl,
      stop: () => cluster.stop(),
    },
    apiUrl: cluster.apiUrls[0]!,
    apiUrls: cluster.apiUrls,
    embedded: { postgres: true, temporal: true, nats: true },
    async stopService(name: ServiceName) {
      await Promise.all(
        cluster.services.filter((service) => service.role === name).map((service) => service.stop('graceful')),
      );
    },
    stop: () =>
      (stopped ??= (async () => {
        stopping = true;
        await cluster.stop();
      })()),
  };
}

const cluster_services: readonly ServiceName[] = ['worker', 'relay', 'api'];
