/**
 * The drills' cluster engine (`npm run test:chaos -- --engine cluster`): the production
 * topology of tools/dev/cluster-stack.ts (the Temporal server on Postgres, three NATS nodes
 * with ORDERS at R3, two each of api, worker and relay) on fresh throw-away data and ports
 * the OS picks, seen through the drills' engine-neutral interfaces: its servers as a
 * DrillStack, its api, worker and relay replicas as Services.
 */
import { startCluster, type ClusterStack, type ServiceReplica } from '../dev/cluster-stack';
import type { ClusterTools } from '../dev/tools';
import type { DrillStack } from './drills';
import type { Services, UnexpectedExit } from './fleet';
import type { ServiceName } from './services';

export interface ClusterEngine {
  cluster: ClusterStack;
  stack: DrillStack;
  services: ClusterServices;
}

/**
 * The cluster's replicas as the drills kill and start them. A replica that exits on its own
 * is recorded (a finding for the drill) and started again, as the dev engine's Fleet does.
 */
export class ClusterServices implements Services {
  readonly unexpectedExits: UnexpectedExit[] = [];
  private closing = false;

  constructor(
    private readonly cluster: ClusterStack,
    private readonly log: (line: string) => void,
  ) {}

  replicas(role: ServiceName): string[] {
    return this.cluster.services.filter((service) => service.role === role).map((service) => service.name);
  }

  replica(name: string): ServiceReplica {
    const found = this.cluster.services.find((service) => service.name === name);
    if (!found) throw new Error(`no service replica named ${name}`);
    return found;
  }

  pid(name: string): number | undefined {
    return this.replica(name).pid;
  }

  async kill(name: string): Promise<void> {
    await this.replica(name).stop('crash');
  }

  async start(name: string): Promise<void> {
    await this.replica(name).start();
  }

  /** From startCluster's onUnexpectedExit: a service is recorded and restarted; a server only logged. */
  exited(piece: string, how: string, lastLines: string): void {
    if (this.closing) return;
    const service = this.cluster.services.find((replica) => replica.name === piece);
    if (!service) {
      this.log(`!! ${piece} exited unexpectedly (${how})`);
      return;
    }
    this.unexpectedExits.push({ service: service.role, at: new Date(), how: `${piece}: ${how}`, lastLines });
    this.log(`!! ${piece} exited unexpectedly (${how}); restarting it`);
    service.start().catch((failure: unknown) => this.log(`!! ${piece} did not restart: ${String(failure)}`));
  }

  /** From here on exits are expected (the cluster is stopping). */
  close(): void {
    this.closing = true;
  }
}

export async function startClusterEngine(options: {
  dataDir: string;
  tools: ClusterTools;
  encryptionKeys: string;
  /** Over PATH and HOME, for every service (each reads only its own variables). */
  serviceEnv: NodeJS.ProcessEnv;
  log: (line: string) => void;
}): Promise<ClusterEngine> {
  // The cluster reports exits from its start on; the services exist once it has started.
  const report: { to?: ClusterServices } = {};
  const cluster = await startCluster({
    dataDir: options.dataDir,
    tools: options.tools,
    fresh: true,
    ephemeral: true,
    ports: 'any',
    encryptionKeys: options.encryptionKeys,
    serviceEnv: {
      ...Object.fromEntries(
        ['PATH', 'HOME', 'TMPDIR'].flatMap((name) => (process.env[name] ? [[name, process.env[name]]] : [])),
      ),
      ...options.serviceEnv,
    },
    log: options.log,
    onUnexpectedExit: (exit) => {
      const { code, signal, error } = exit.status;
      report.to?.exited(exit.piece, error ? error.message : (signal ?? `exit code ${code}`), exit.lastLines);
    },
  });
  const services = new ClusterServices(cluster, options.log);
  report.to = services;
  return {
    cluster,
    stack: { postgres: cluster.postgres, temporal: cluster.temporal, natsNodes: cluster.nats },
    services,
  };
}
