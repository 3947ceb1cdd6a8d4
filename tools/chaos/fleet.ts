/**
 * The api, worker and relay of a drill run: started, killed and restarted on purpose, and
 * watched for exits nobody asked for. Such an exit is a finding (the process should have
 * ridden out the outage); the fleet restarts the process so the run can go on.
 */
import path from 'node:path';
import { waitUntilReady } from '../dev/processes';
import { ENTRYPOINTS, spawnService, type ChildService, type ServiceName } from './services';

const READY_TIMEOUT_MS = 120_000;

export interface UnexpectedExit {
  service: ServiceName;
  at: Date;
  how: string;
  lastLines: string;
}

/**
 * The api, worker and relay processes as the drills see them, on either engine: this
 * file's Fleet (dev: one of each) or tools/chaos/cluster-engine.ts' (two of each). A name is
 * a replica's: `worker` is the first worker, `worker-2` the second (the cluster's names).
 */
export interface Services {
  /** Exits nobody asked for (the process was restarted). */
  readonly unexpectedExits: UnexpectedExit[];
  /** The replicas of a role, by name (`['relay']` on dev, `['relay', 'relay-2']` on the cluster). */
  replicas(role: ServiceName): string[];
  pid(name: string): number | undefined;
  /** SIGKILL: a crash, no shutdown code runs. */
  kill(name: string): Promise<void>;
  /** Starts it (if not running) and waits until it is ready. */
  start(name: string): Promise<void>;
}

export interface FleetOptions {
  logsDir: string;
  env: Record<ServiceName, NodeJS.ProcessEnv>;
  apiUrl: string;
  log: (line: string) => void;
}

export class Fleet implements Services {
  private readonly children = new Map<ServiceName, ChildService>();
  /** Children we are stopping or killing on purpose. */
  private readonly intended = new Set<ChildService>();
  private closing = false;
  readonly unexpectedExits: UnexpectedExit[] = [];

  constructor(private readonly options: FleetOptions) {}

  replicas(role: ServiceName): string[] {
    return [role];
  }

  pid(name: ServiceName): number | undefined {
    const child = this.children.get(name);
    return child && !child.hasExited() ? child.pid : undefined;
  }

  /** Starts the service and waits until it is ready (api answers /healthz, worker and relay log "started"). */
  async start(name: ServiceName): Promise<void> {
    const current = this.children.get(name);
    if (current && !current.hasExited()) return;
    const child = spawnService({
      name,
      entry: ENTRYPOINTS[name],
      env: this.options.env[name],
      logFile: path.join(this.options.logsDir, `${name}.log`),
    });
    this.children.set(name, child);
    void child.exited.then(async ({ code, signal, error }) => {
      if (this.intended.has(child) || this.closing) return;
      const how = error ? error.message : (signal ?? `exit code ${code}`);
      this.unexpectedExits.push({ service: name, at: new Date(), how, lastLines: await child.lastLines(15) });
      this.options.log(`!! ${name} exited unexpectedly (${how}); restarting it`);
      if (this.children.get(name) === child && !this.closing) {
        await this.start(name).catch((failure: unknown) =>
          this.options.log(`!! ${name} did not restart: ${String(failure)}`),
        );
      }
    });
    await waitUntilReady(child, () => this.ready(name, child), READY_TIMEOUT_MS);
  }

  private async ready(name: ServiceName, child: ChildService): Promise<boolean> {
    if (name === 'api') {
      const response = await fetch(`${this.options.apiUrl}/healthz`, { signal: AbortSignal.timeout(2_000) });
      return response.status === 200;
    }
    const started = name === 'worker' ? '"msg":"worker started"' : '"msg":"relay started"';
    return (await child.lastLines(200)).includes(started);
  }

  /** SIGKILL: a crash, no shutdown code runs. */
  async kill(name: ServiceName): Promise<void> {
    const child = this.children.get(name);
    if (!child || child.hasExited()) return;
    this.intended.add(child);
    child.kill('SIGKILL');
    await child.exited;
  }

  async stop(name: ServiceName): Promise<void> {
    const child = this.children.get(name);
    if (!child || child.hasExited()) return;
    this.intended.add(child);
    await child.stop(name === 'worker' ? 20_000 : 10_000);
  }

  async restart(name: ServiceName, how: 'kill' | 'stop' = 'kill'): Promise<void> {
    await (how === 'kill' ? this.kill(name) : this.stop(name));
    await this.start(name);
  }

  /** Stops everything: api first, then relay and worker (as npm start does). */
  async close(): Promise<void> {
    this.closing = true;
    await this.stop('api').catch(() => undefined);
    await Promise.all([
      this.stop('relay').catch(() => undefined),
      this.stop('worker').catch(() => undefined),
    ]);
  }
}
