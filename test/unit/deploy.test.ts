import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { loadApiConfig } from '../../api/config';
import type { Env } from '../../lib/env';
import { SEARCH_ATTRIBUTES } from '../../contracts/index';
import { loadWorkerConfig } from '../../worker/config';
import { loadRelayConfig } from '../../relay/config';
import { NATS_SERVER_VERSION, TEMPORAL_SERVER_VERSION, TEMPORAL_UI_SERVER_VERSION } from '../../tools/dev/tools';

/**
 * docker-compose.yml and the Dockerfile, checked without Docker: the compose environment
 * of each app service goes through that process's real config loader, which must accept it
 * and read every variable set there (no dead configuration); the images are the versions
 * the native cluster pins (tools/dev/tools.ts); the topology is the production one
 * (Temporal server on Postgres with a schema job, three NATS nodes, two of each process).
 */

const ROOT = path.resolve(__dirname, '..', '..');
const read = (file: string): string => readFileSync(path.join(ROOT, file), 'utf8');

// ---------------------------------------------------------------------------------------
// docker-compose.yml as `docker compose` would see it with nothing set in the shell

type Scalar = string | number | boolean | null;
interface Service {
  image?: string;
  build?: unknown;
  command?: string | string[];
  entrypoint?: string | string[];
  environment?: Record<string, Scalar> | string[];
  ports?: (string | number)[];
  volumes?: (string | { type?: string; source?: string; target?: string; read_only?: boolean })[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test?: string | string[] };
  restart?: string;
  container_name?: string;
  deploy?: { replicas?: number };
}
interface ComposeFile {
  services: Record<string, Service>;
}

const compose = parse(read('docker-compose.yml'), { merge: true }) as ComposeFile;
const services = compose.services;
const service = (name: string): Service => {
  const found = services[name];
  if (!found) throw new Error(`docker-compose.yml has no service "${name}"`);
  return found;
};

/** `$$` is a literal `$`; `${VAR:-default}` is the default; anything else is refused. */
function withDefaults(text: string): string {
  return text.replace(/\$\$|\$\{([^}]*)\}|\$(\w+)/g, (match: string, braced?: string) => {
    if (match === '$$') return '$';
    const withDefault = /^[A-Za-z_]\w*:-(.*)$/s.exec(braced ?? '');
    if (!withDefault) throw new Error(`${match}: write $$ for a literal $, or \${VAR:-default}`);
    return withDefault[1] ?? '';
  });
}

/** Every string in a parsed value, with its path, for checks over the whole file. */
function* strings(value: unknown, at = ''): Generator<[string, string]> {
  if (typeof value === 'string') yield [at, value];
  else if (Array.isArray(value)) for (const [i, item] of value.entries()) yield* strings(item, `${at}[${i}]`);
  else if (value && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) yield* strings(item, at ? `${at}.${key}` : key);
  }
}

/** A service's environment as written (list or mapping form), values unresolved. */
function rawEnvironment(svc: Service): Record<string, string> {
  const env = svc.environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((entry) => [entry.split('=')[0] ?? entry, entry.split('=').slice(1).join('=')]),
    );
  }
  return Object.fromEntries(
    Object.entries(env).map(([name, value]) => [name, value === null ? '' : String(value)]),
  );
}

const environment = (svc: Service): Record<string, string> =>
  Object.fromEntries(Object.entries(rawEnvironment(svc)).map(([name, value]) => [name, withDefaults(value)]));

const dependencies = (svc: Service): Record<string, string> =>
  Array.isArray(svc.depends_on)
    ? Object.fromEntries(svc.depends_on.map((name) => [name, 'service_started']))
    : Object.fromEntries(
        Object.entries(svc.depends_on ?? {}).map(([name, dep]) => [name, dep.condition ?? 'service_started']),
      );

const ports = (svc: Service): string[] => (svc.ports ?? []).map((port) => withDefaults(String(port)));
const words = (value: string | string[] | undefined): string[] =>
  value === undefined ? [] : Array.isArray(value) ? value : value.split(/\s+/);

// ---------------------------------------------------------------------------------------
// Dockerfile

interface Stage {
  base: string;
  name: string | undefined;
  instructions: string[];
}

function dockerStages(text: string): Stage[] {
  const lines = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of lines) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$/i.exec(line);
    if (from) {
      const base = (from[1] ?? '').replace(/\$\{?(\w+)\}?/g, (_m, name: string) => args.get(name) ?? '');
      stages.push({ base, name: from[2], instructions: [] });
      continue;
    }
    const current = stages.at(-1);
    if (current) current.instructions.push(line);
    else {
      const arg = /^ARG\s+(\w+)=(\S+)$/i.exec(line);
      if (arg) args.set(arg[1] ?? '', arg[2] ?? '');
    }
  }
  return stages;
}

const stages = dockerStages(read('Dockerfile'));
const finalStage = stages.at(-1);
const stage = (name: string): Stage => {
  const found = stages.find((s) => s.name === name);
  if (!found) throw new Error(`Dockerfile has no stage "${name}"`);
  return found;
};
/** ENV of the final stage: what every container of the image starts with. */
const imageEnv: Env = Object.fromEntries(
  (finalStage?.instructions ?? [])
    .filter((line) => /^ENV\s/i.test(line))
    .flatMap((line) => line.replace(/^ENV\s+/i, '').split(/\s+/))
    .map((pair) => [pair.split('=')[0] ?? pair, pair.split('=').slice(1).join('=')]),
);

// ---------------------------------------------------------------------------------------
// The real config loaders, behind an environment that records what they read

function recording(values: Env): { env: Env; read: Set<string> } {
  const read = new Set<string>();
  const env = new Proxy(values, {
    get(target, name, receiver) {
      if (typeof name === 'string') read.add(name);
      return Reflect.get(target, name, receiver) as string | undefined;
    },
    has(target, name) {
      if (typeof name === 'string') read.add(name);
      return Reflect.has(target, name);
    },
  });
  return { env, read };
}

const APIS = ['api-1', 'api-2'];
const RELAYS = ['relay-1', 'relay-2'];
const NATS_NODES = ['nats-1', 'nats-2', 'nats-3'];

const LOADERS: Record<string, (env: Env) => unknown> = {
  ...Object.fromEntries(APIS.map((name) => [name, loadApiConfig])),
  worker: loadWorkerConfig,
  ...Object.fromEntries(RELAYS.map((name) => [name, loadRelayConfig])),
};

/**
 * Loads a service's config as its container would (image ENV, then compose environment);
 * throws what the process would print at start. Returns the variables the loader read.
 */
function readsOf(name: string): Set<string> {
  const loader = LOADERS[name];
  if (!loader) throw new Error(`no loader for ${name}`);
  const { env, read } = recording({ ...imageEnv, ...environment(service(name)) });
  loader(env);
  return read;
}

/**
 * tools/migrate.ts keeps its loader private and runs main() on import, so it runs here as
 * its container would: with the recording environment as process.env and the database
 * layer replaced.
 */
async function runMigrateEntrypoint(values: Env) {
  const { env, read } = recording(values);
  const createPool = jest.fn((_url: string) => ({ end: jest.fn(() => Promise.resolve()) }));
  const migrate = jest.fn(() => Promise.resolve({ applied: [] as string[], skipped: [] as string[] }));
  const errors: string[] = [];
  const exitCodeBefore = process.exitCode;
  const spies = [
    jest.spyOn(process.stdout, 'write').mockImplementation(() => true),
    jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      errors.push(String(chunk));
      return true;
    }),
    jest.spyOn(process, 'exit').mockImplementation((code) => {
      throw new Error(`process.exit(${String(code)})`);
    }),
  ];
  const replaced = jest.replaceProperty(process, 'env', env);
  try {
    await jest.isolateModulesAsync(async () => {
      jest.doMock('../../store/pool', () => ({ createPool }));
      jest.doMock('../../store/migrate', () => ({ migrate }));
      await import('../../tools/migrate');
      await new Promise((resolve) => setImmediate(resolve)); // main() finishes
    });
  } finally {
    replaced.restore();
    for (const spy of spies) spy.mockRestore();
    process.exitCode = exitCodeBefore;
  }
  return { read, errors, createPool, migrate };
}

const APP_SERVICES = [...APIS, 'worker', ...RELAYS, 'migrate'];
/** The compiled entry each app service runs, and the TypeScript source it is built from. */
const ENTRIES: Record<string, string> = {
  'api-1': 'dist/api/server.js',
  'api-2': 'dist/api/server.js',
  worker: 'dist/worker/main.js',
  'relay-1': 'dist/relay/main.js',
  'relay-2': 'dist/relay/main.js',
  migrate: 'dist/tools/migrate.js',
};
const sourceOf = (entry: string): string => entry.replace(/^dist\//, '').replace(/\.js$/, '.ts');

/** The routes of a NATS config file's cluster block, as host:port. */
function natsRoutes(config: string): string[] {
  const cluster = /\bcluster\s*\{([\s\S]*?)\n\}/.exec(config.replace(/#.*$/gm, ''))?.[1] ?? '';
  const routes = /\broutes\s*[:=]?\s*\[([^\]]*)\]/.exec(cluster)?.[1] ?? '';
  return [...routes.matchAll(/nats(?:-route)?:\/\/([\w.-]+:\d+)/g)].map((match) => match[1] ?? '');
}

/** A service's mounts, from the short or the long syntax. */
function mounts(svc: Service): { source?: string; target?: string; readOnly: boolean }[] {
  return (svc.volumes ?? []).map((volume) =>
    typeof volume === 'string'
      ? {
          source: volume.split(':')[0],
          target: volume.split(':')[1],
          readOnly: volume.split(':')[2] === 'ro',
        }
      : { source: volume.source, target: volume.target, readOnly: volume.read_only === true },
  );
}

// ---------------------------------------------------------------------------------------

describe('docker-compose.yml', () => {
  it('when parsed, then it has every service of the production topology', () => {
    for (const name of [
      'postgres',
      'temporal-schema',
      'temporal',
      'temporal-setup',
      'temporal-ui',
      ...NATS_NODES,
      'migrate',
      ...APIS,
      'worker',
      ...RELAYS,
    ]) {
      expect(services).toHaveProperty([name]);
    }
    // Two of each process: two api services, two worker replicas, two relays.
    expect(service('worker').deploy?.replicas).toBe(2);
  });

  it('when started with nothing set, then every substitution has a default and every $ is escaped', () => {
    const refused = [...strings(compose)].flatMap(([at, value]) => {
      try {
        withDefaults(value);
        return [];
      } catch (error) {
        return [`${at}: ${(error as Error).message}`];
      }
    });
    expect(refused).toEqual([]);
  });

  it('when an image is pulled, then it is the version the native cluster pins (tools/dev/tools.ts)', () => {
    const images = Object.fromEntries(
      Object.entries(services).flatMap(([name, svc]) =>
        svc.build === undefined && svc.image !== undefined ? [[name, svc.image]] : [],
      ),
    );
    expect(images).toMatchObject({
      temporal: `temporalio/server:${TEMPORAL_SERVER_VERSION}`,
      'temporal-schema': `temporalio/admin-tools:${TEMPORAL_SERVER_VERSION}`,
      'temporal-setup': `temporalio/admin-tools:${TEMPORAL_SERVER_VERSION}`,
      'temporal-ui': `temporalio/ui:${TEMPORAL_UI_SERVER_VERSION}`,
      ...Object.fromEntries(NATS_NODES.map((name) => [name, `nats:${NATS_SERVER_VERSION}-alpine`])),
    });
    for (const [name, image] of Object.entries(images)) {
      // Pinned, and never the deprecated all-in-one image.
      expect({ name, image }).toEqual({ name, image: expect.stringMatching(/:\d+\.\d+[^:]*$/) });
      expect({ name, image }).toEqual({ name, image: expect.not.stringContaining('auto-setup') });
    }
  });

  it('when the app services are built, then they share one image, each running node on its compiled entry', () => {
    const api = service('api-1');
    expect(api.build).toBeDefined();
    for (const name of APP_SERVICES) {
      const svc = service(name);
      expect({ name, build: svc.build, image: svc.image }).toEqual({
        name,
        build: api.build,
        image: api.image,
      });
      expect({ name, command: words(svc.command) }).toEqual({ name, command: ['node', ENTRIES[name]] });
      expect({ name, entrypoint: svc.entrypoint }).toEqual({ name, entrypoint: undefined });
      // What `npm run build` compiles: the entry's TypeScript source exists.
      expect(() => readFileSync(path.join(ROOT, sourceOf(ENTRIES[name] ?? '')))).not.toThrow();
      // Neither the command nor a healthcheck goes through npm or tsx.
      for (const [at, value] of strings({ command: svc.command, healthcheck: svc.healthcheck })) {
        expect({ name, at, value }).toEqual({
          name,
          at,
          value: expect.not.stringMatching(/\b(npm|npx|tsx)\b/),
        });
      }
    }
    // The same entries as package.json's compiled start scripts.
    const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
    expect(scripts).toMatchObject({
      'start:api': `node ${ENTRIES['api-1']}`,
      'start:worker': `node ${ENTRIES.worker}`,
      'start:relay': `node ${ENTRIES['relay-1']}`,
      'migrate:prod': `node ${ENTRIES.migrate}`,
    });
  });

  describe.each(Object.keys(LOADERS))('the %s service', (name) => {
    it('when its loader reads the compose environment, then it accepts it and reads every variable set there', () => {
      const readByLoader = readsOf(name);
      const unread = Object.keys(environment(service(name))).filter(
        (variable) => !readByLoader.has(variable),
      );
      expect(unread).toEqual([]);
    });
  });

  it('when the loaders read it, then the services point at each other consistently', () => {
    const [api, api2] = APIS.map((name) => loadApiConfig({ ...imageEnv, ...environment(service(name)) }));
    expect(api2).toEqual(api);
    if (!api) throw new Error('no api');
    expect(api.host).toBe('0.0.0.0');
    expect(ports(service('api-1'))).toEqual([`${api.port}:${api.port}`]);
    expect(ports(service('api-2'))).toEqual([`${api.port + 1}:${api.port}`]);
    expect(api.temporalUiUrl).toBe('http://localhost:8233');
    expect(ports(service('temporal-ui'))).toContain('8233:8080');
    // The Web UI decodes through the API's codec, as the browser reaches api-1.
    expect(environment(service('temporal-ui')).TEMPORAL_CODEC_ENDPOINT).toBe(
      `http://localhost:${api.port}/codec`,
    );

    const worker = loadWorkerConfig({ ...imageEnv, ...environment(service('worker')) });
    // The image's prebuilt bundle, not webpack at every worker start.
    expect(worker.workflowBundlePath).toBe(imageEnv.WORKFLOW_BUNDLE_PATH);
    expect(worker.taskQueue).toBe(api.taskQueue);
    expect(worker.temporal.namespace).toBe(api.temporal.namespace);

    const postgres = environment(service('postgres'));
    const database = new URL(worker.databaseUrl);
    expect(database.hostname).toBe('postgres');
    expect(database.username).toBe(postgres.POSTGRES_USER);
    expect(decodeURIComponent(database.password)).toBe(postgres.POSTGRES_PASSWORD);
    expect(database.pathname).toBe(`/${postgres.POSTGRES_DB}`);
    expect(api.databaseUrl).toBe(worker.databaseUrl);

    expect(api.temporal.address).toBe('temporal:7233');
    expect(ports(service('temporal'))).toContain('127.0.0.1:7233:7233');
    expect(environment(service('temporal-setup'))).toMatchObject({
      TEMPORAL_ADDRESS: api.temporal.address,
      TEMPORAL_NAMESPACE: api.temporal.namespace,
    });
    expect(environment(service('temporal-ui')).TEMPORAL_ADDRESS).toBe(api.temporal.address);
  });

  it('when Temporal starts, then it is the server on Postgres, its schema set up by a one-shot job first', () => {
    const postgres = environment(service('postgres'));
    const temporal = environment(service('temporal'));
    expect(temporal).toMatchObject({ DB: 'postgres12', DB_PORT: '5432', POSTGRES_SEEDS: 'postgres' });
    expect(temporal.POSTGRES_USER).toBe(postgres.POSTGRES_USER);
    expect(temporal.POSTGRES_PWD).toBe(postgres.POSTGRES_PASSWORD);
    expect(Number(temporal.NUM_HISTORY_SHARDS)).toBeGreaterThanOrEqual(4);
    // Its dynamic config file is mounted where it is told to read it (it refuses to start without).
    const dynamicConfig = mounts(service('temporal')).find(
      (m) => m.target === temporal.DYNAMIC_CONFIG_FILE_PATH,
    );
    expect(dynamicConfig).toMatchObject({ readOnly: true, source: expect.stringMatching(/^\.\//) });
    expect(parse(read(dynamicConfig?.source ?? ''))).toEqual(expect.any(Object));

    const schema = environment(service('temporal-schema'));
    expect(schema).toMatchObject({
      SQL_PLUGIN: temporal.DB,
      SQL_HOST: temporal.POSTGRES_SEEDS,
      SQL_PORT: temporal.DB_PORT,
      SQL_USER: temporal.POSTGRES_USER,
      SQL_PASSWORD: temporal.POSTGRES_PWD,
    });
    const script = withDefaults(words(service('temporal-schema').command).join(' '));
    // Both of the server's databases, created, set up and updated from the image's schema files.
    const databases = {
      [temporal.DBNAME ?? 'temporal']: 'temporal',
      [temporal.VISIBILITY_DBNAME ?? 'temporal_visibility']: 'visibility',
    };
    expect(Object.keys(databases).sort()).toEqual(['temporal', 'temporal_visibility']);
    for (const [database, schemaDir] of Object.entries(databases))
      expect(script).toContain(`${database}:${schemaDir}`);
    for (const step of ['create', 'setup-schema -v 0.0', 'update-schema -d']) {
      expect(script).toContain(`temporal-sql-tool --db "$database" ${step}`);
    }
    expect(script).toContain('/etc/temporal/schema/postgresql/v12');
    expect(script).toMatch(/^set -eu/);
  });

  it('when migrate runs with its compose environment, then it accepts it, reads every variable set and migrates that database', async () => {
    const values = { ...imageEnv, ...environment(service('migrate')) };
    const { read: readByMigrate, errors, createPool, migrate } = await runMigrateEntrypoint(values);
    expect(errors).toEqual([]);
    expect(createPool).toHaveBeenCalledWith(values.DATABASE_URL, expect.anything());
    expect(migrate).toHaveBeenCalledTimes(1);
    const unread = Object.keys(environment(service('migrate'))).filter(
      (variable) => !readByMigrate.has(variable),
    );
    expect(unread).toEqual([]);
  });

  it('when the stack starts, then each service waits for what it needs', () => {
    expect(dependencies(service('temporal-schema'))).toMatchObject({ postgres: 'service_healthy' });
    expect(dependencies(service('temporal'))).toMatchObject({
      'temporal-schema': 'service_completed_successfully',
    });
    expect(dependencies(service('temporal-setup'))).toMatchObject({ temporal: 'service_healthy' });
    expect(dependencies(service('temporal-ui'))).toMatchObject({
      'temporal-setup': 'service_completed_successfully',
    });
    expect(dependencies(service('migrate'))).toMatchObject({ postgres: 'service_healthy' });
    for (const name of [...APIS, 'worker']) {
      expect(dependencies(service(name))).toMatchObject({
        postgres: 'service_healthy',
        migrate: 'service_completed_successfully',
        temporal: 'service_healthy',
        'temporal-setup': 'service_completed_successfully',
      });
    }
    for (const name of RELAYS) {
      expect(dependencies(service(name))).toMatchObject({
        migrate: 'service_completed_successfully',
        ...Object.fromEntries(NATS_NODES.map((node) => [node, 'service_healthy'])),
      });
    }
    // Whatever is waited on can get there: a healthcheck, or a one-shot that is not restarted.
    for (const svc of Object.values(services)) {
      for (const [target, condition] of Object.entries(dependencies(svc))) {
        if (condition === 'service_healthy') expect(service(target).healthcheck?.test).toBeDefined();
        if (condition === 'service_completed_successfully') expect(service(target).restart).toBe('no');
      }
    }
  });

  it('when checked for health, then postgres uses pg_isready and each api asks its own /readyz', () => {
    expect(words(service('postgres').healthcheck?.test).join(' ')).toContain('pg_isready');
    for (const name of APIS) {
      const apiCheck = words(service(name).healthcheck?.test).join(' ');
      expect(apiCheck).toContain(`:${environment(service(name)).PORT}/readyz`);
    }
    for (const name of NATS_NODES) {
      expect(words(service(name).healthcheck?.test).join(' ')).toContain(':8222/healthz');
    }
  });

  it('when scaled, then workers and relays have no container names or host ports', () => {
    for (const [name, svc] of Object.entries(services)) {
      expect({ name, containerName: svc.container_name }).toEqual({ name, containerName: undefined });
    }
    for (const name of ['worker', ...RELAYS, 'migrate']) {
      expect({ name, ports: service(name).ports }).toEqual({ name, ports: undefined });
    }
  });

  it('when temporal-setup runs, then it creates the namespace and registers every search attribute of the contract', () => {
    const script = withDefaults(words(service('temporal-setup').command).join(' '));
    expect(script).toContain('temporal operator cluster health');
    expect(script).toContain('temporal operator namespace create');
    expect(script).toContain('temporal operator search-attribute create');
    expect(script).toContain('already exists');
    for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) expect(script).toContain(`${name}=${type}`);
    // admin-tools is Alpine: POSIX sh, no bash-only syntax.
    expect(words(service('temporal-setup').entrypoint)[0]).toBe('/bin/sh');
    expect(script).not.toContain('<<<');
  });

  it('when NATS starts, then three nodes form one JetStream cluster, each routing to all three', () => {
    const names = NATS_NODES.map((name) => {
      const args = words(service(name).command);
      expect(args).toContain('-js');
      return args[args.indexOf('--server_name') + 1];
    });
    expect(new Set(names)).toEqual(new Set(NATS_NODES)); // unique names: JetStream needs them

    const configs = new Set<string>();
    for (const name of NATS_NODES) {
      const nats = service(name);
      const args = words(nats.command);
      const storeDir = args[args.indexOf('-sd') + 1];
      const configPath = args[args.indexOf('-c') + 1];
      // Each node its own store, on a volume of its own.
      const store = mounts(nats).find((mount) => mount.target === storeDir);
      expect(store?.source).toBe(`${name}-data`);
      const config = mounts(nats).find((mount) => mount.target === configPath);
      expect(config).toMatchObject({ readOnly: true, source: expect.stringMatching(/^\.\//) });
      configs.add(config?.source ?? '');
    }
    expect(configs.size).toBe(1);
    const text = read([...configs][0] ?? '').replace(/#.*$/gm, '');
    // fsync every write before acknowledging it (Jepsen, NATS 2.12).
    expect(text).toMatch(/jetstream\s*\{[^}]*\bsync_interval\s*:\s*always\b[^}]*\}/);
    expect(natsRoutes(text).sort()).toEqual(NATS_NODES.map((name) => `${name}:6222`));
  });

  it('when the relays start, then both know every NATS node and keep ORDERS at one replica per node', () => {
    expect(RELAYS).toHaveLength(2);
    for (const name of RELAYS) {
      const config = loadRelayConfig(environment(service(name)));
      expect(config.natsUrls.map((url) => new URL(url).host).sort()).toEqual(
        NATS_NODES.map((node) => `${node}:4222`),
      );
      expect(config.streamReplicas).toBe(NATS_NODES.length);
      expect(config.databaseUrl).toBe(
        loadWorkerConfig({ ...imageEnv, ...environment(service('worker')) }).databaseUrl,
      );
    }
  });

  it('when it sets a secret, then the only one is the local Postgres password, from ${POSTGRES_PASSWORD:-…}', () => {
    const fromVariable = /^\$\{POSTGRES_PASSWORD:-[^}]*\}$/;
    for (const [name, svc] of Object.entries(services)) {
      for (const [variable, value] of Object.entries(rawEnvironment(svc))) {
        if (/PASSWORD|PWD|SECRET|TOKEN|API_KEY|PRIVATE/i.test(variable)) {
          // The password from POSTGRES_PASSWORD; any other secret only from the user, empty by default.
          const ok = fromVariable.test(value) || /^\$\{\w+:-\}$/.test(value);
          expect({ name, variable, ok }).toEqual({ name, variable, ok: true });
        }
      }
      for (const [at, value] of strings(svc)) {
        const credentials = /\/\/[^/@:\s]+:([^@\s]+)@/.exec(value);
        if (credentials)
          expect({ name, at, password: credentials[1] }).toEqual({
            name,
            at,
            password: expect.stringMatching(fromVariable),
          });
      }
    }
  });
});

describe('Dockerfile', () => {
  const runtime = finalStage?.instructions ?? [];
  const workdir = runtime.find((line) => /^WORKDIR\s/i.test(line))?.split(/\s+/)[1] ?? '/';

  it('when built, then production dependencies, the compiled build and the runtime are separate stages', () => {
    expect(stages.map((s) => s.name)).toEqual(expect.arrayContaining(['deps', 'build']));
    expect(stage('deps').instructions.join('\n')).toMatch(/^RUN npm ci .*--omit=dev/m);
    expect(stage('build').instructions.join('\n')).toMatch(/^RUN npm ci /m);
    expect(stage('build').instructions).toContain('RUN npm run build');
    expect(finalStage?.base).toMatch(/^node:20[\d.]*-bookworm-slim$/);
  });

  it('when it runs, then it is the node user running node on dist/, with production dependencies only', () => {
    const users = runtime.filter((line) => /^USER\s/i.test(line));
    expect(users.at(-1)).toBe('USER node');
    const copies = runtime.filter((line) => /^COPY\s/i.test(line));
    // node_modules from the production-only stage, dist/ from the build; no TypeScript source.
    expect(copies).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^COPY --from=deps \/app\/node_modules \.\/node_modules$/),
        expect.stringMatching(/^COPY --from=build \/app\/dist \.\/dist$/),
      ]),
    );
    for (const line of copies) {
      expect(line).toMatch(/^COPY (--from=(deps|build) \S+|package\.json) \S+$/);
    }
    const cmd = runtime
      .filter((line) => /^CMD\s/i.test(line))
      .at(-1)
      ?.replace(/^CMD\s+/i, '');
    expect(JSON.parse(cmd ?? 'null')).toEqual(['node', ENTRIES['api-1']]);
    expect(runtime.join('\n')).not.toMatch(/\b(tsx|npx)\b|npm run/);
  });

  it('when the worker starts in it, then WORKFLOW_BUNDLE_PATH is the bundle npm run build writes into dist/', () => {
    expect(imageEnv.WORKFLOW_BUNDLE_PATH).toBe(path.posix.resolve(workdir, 'dist/workflow-bundle.js'));
    expect(read('tools/build.ts')).toContain("path.join(DIST, 'workflow-bundle.js')");
  });

  it('when the build context is sent, then local state and artifacts stay out', () => {
    const ignored = read('.dockerignore')
      .split(/\r?\n/)
      .map((line) => line.trim());
    expect(ignored).toEqual(
      expect.arrayContaining([
        'node_modules',
        '.data',
        'dist',
        '.git',
        'coverage',
        'test-artifacts',
        'tools/bench/results',
      ]),
    );
  });
});

describe('.env.example', () => {
  it('when read, then it lists every variable the processes and the compose file read', async () => {
    const listed = new Set(
      read('.env.example')
        .split(/\r?\n/)
        .map((line) => /^#?\s*([A-Z][A-Z0-9_]*)=/.exec(line)?.[1])
        .filter((name): name is string => name !== undefined),
    );
    const readByLoaders = Object.keys(LOADERS).flatMap((name) => [...readsOf(name)]);
    const migrate = await runMigrateEntrypoint({ ...imageEnv, ...environment(service('migrate')) });
    const interpolated = [...strings(compose)].flatMap(([, value]) =>
      [...value.matchAll(/(?<!\$)\$\{(\w+)/g)].map((match) => match[1] ?? ''),
    );
    const missing = [...new Set([...readByLoaders, ...migrate.read, ...interpolated])]
      .filter((name) => /^[A-Z][A-Z0-9_]*$/.test(name))
      .filter((name) => !listed.has(name))
      .sort();
    expect(missing).toEqual([]);
  });
});
