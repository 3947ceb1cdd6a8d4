import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { loadApiConfig } from '../../api/config';
import type { Env } from '../../lib/env';
import { SEARCH_ATTRIBUTES } from '../../contracts/index';
import { loadWorkerConfig } from '../../worker/config';
import { loadRelayConfig } from '../../relay/config';

/**
 * docker-compose.yml and the Dockerfile, checked without Docker: the compose environment
 * of each app service goes through that process's real config loader, which must accept it
 * and read every variable set there (no dead configuration).
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

const LOADERS: Record<string, (env: Env) => unknown> = {
  api: loadApiConfig,
  worker: loadWorkerConfig,
  'relay-1': loadRelayConfig,
  'relay-2': loadRelayConfig,
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

const APP_SERVICES = ['api', 'worker', 'relay-1', 'relay-2', 'migrate'];

// ---------------------------------------------------------------------------------------

describe('docker-compose.yml', () => {
  it('when parsed, then it has every service of the stack', () => {
    for (const name of [
      'postgres',
      'temporal',
      'temporal-ui',
      'temporal-setup',
      'nats',
      'migrate',
      'api',
      'worker',
      'relay-1',
      'relay-2',
    ]) {
      expect(services).toHaveProperty([name]);
    }
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

  it('when the app services are built, then they share one build and image, each running its npm script', () => {
    const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
    const api = service('api');
    expect(api.build).toBeDefined();
    for (const name of APP_SERVICES) {
      const svc = service(name);
      expect({ name, build: svc.build, image: svc.image }).toEqual({
        name,
        build: api.build,
        image: api.image,
      });
      const [npm, run, script] = words(svc.command);
      expect([npm, run]).toEqual(['npm', 'run']);
      expect(scripts).toHaveProperty([script ?? '']);
    }
    expect(words(service('relay-1').command)).toEqual(['npm', 'run', 'relay']);
    expect(words(service('migrate').command)).toEqual(['npm', 'run', 'migrate']);
  });

  it('when an image is pulled, then its tag is pinned to a version', () => {
    for (const [name, svc] of Object.entries(services)) {
      if (svc.build !== undefined || svc.image === undefined) continue;
      expect({ name, image: svc.image }).toEqual({ name, image: expect.stringMatching(/:\d+\.\d+[^:]*$/) });
    }
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
    const api = loadApiConfig({ ...imageEnv, ...environment(service('api')) });
    expect(api.host).toBe('0.0.0.0');
    expect(ports(service('api'))).toContain(`${api.port}:${api.port}`);
    expect(api.temporalUiUrl).toBe('http://localhost:8233');
    expect(ports(service('temporal-ui'))).toContain('8233:8080');

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

    const temporal = environment(service('temporal'));
    expect(api.temporal.address).toBe('temporal:7233');
    expect(temporal).toMatchObject({ DB: 'postgres12', DB_PORT: '5432', POSTGRES_SEEDS: 'postgres' });
    expect(temporal.POSTGRES_USER).toBe(postgres.POSTGRES_USER);
    expect(temporal.POSTGRES_PWD).toBe(postgres.POSTGRES_PASSWORD);
    expect(temporal.DEFAULT_NAMESPACE).toBe(api.temporal.namespace);
    expect(environment(service('temporal-setup')).TEMPORAL_NAMESPACE).toBe(api.temporal.namespace);

    for (const relay of ['relay-1', 'relay-2']) {
      const config = loadRelayConfig(environment(service(relay)));
      expect(new URL(config.natsUrl).host).toBe('nats:4222');
      expect(config.databaseUrl).toBe(worker.databaseUrl);
    }
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
    expect(dependencies(service('temporal'))).toMatchObject({ postgres: 'service_healthy' });
    expect(dependencies(service('temporal-setup'))).toMatchObject({ temporal: 'service_healthy' });
    expect(dependencies(service('migrate'))).toMatchObject({ postgres: 'service_healthy' });
    for (const name of ['api', 'worker']) {
      expect(dependencies(service(name))).toMatchObject({
        postgres: 'service_healthy',
        migrate: 'service_completed_successfully',
        temporal: 'service_healthy',
        'temporal-setup': 'service_completed_successfully',
      });
    }
    for (const name of ['relay-1', 'relay-2']) {
      expect(dependencies(service(name))).toMatchObject({
        migrate: 'service_completed_successfully',
        nats: 'service_healthy',
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

  it('when checked for health, then postgres uses pg_isready and the api asks its own /healthz', () => {
    expect(words(service('postgres').healthcheck?.test).join(' ')).toContain('pg_isready');
    const apiCheck = words(service('api').healthcheck?.test).join(' ');
    expect(apiCheck).toContain(`:${environment(service('api')).PORT}/healthz`);
  });

  it('when scaled, then workers and relays have no container names or host ports', () => {
    for (const [name, svc] of Object.entries(services)) {
      expect({ name, containerName: svc.container_name }).toEqual({ name, containerName: undefined });
    }
    for (const name of ['worker', 'relay-1', 'relay-2', 'migrate']) {
      expect({ name, ports: service(name).ports }).toEqual({ name, ports: undefined });
    }
  });

  it('when temporal-setup runs, then it registers every search attribute of the contract', () => {
    const script = words(service('temporal-setup').command).join(' ');
    expect(script).toContain('temporal operator search-attribute create');
    expect(script).toContain('already exists');
    for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) expect(script).toContain(`${name}=${type}`);
  });

  it('when NATS starts, then JetStream stores under a volume and fsyncs every write (sync_interval: always)', () => {
    const nats = service('nats');
    const args = words(nats.command);
    expect(args).toContain('-js');
    const storeDir = args[args.indexOf('-sd') + 1];
    const configPath = args[args.indexOf('-c') + 1];
    const mounts = (nats.volumes ?? []).map((volume) =>
      typeof volume === 'string'
        ? {
            source: volume.split(':')[0],
            target: volume.split(':')[1],
            readOnly: volume.split(':')[2] === 'ro',
          }
        : { source: volume.source, target: volume.target, readOnly: volume.read_only === true },
    );
    expect(mounts.map((mount) => mount.target)).toContain(storeDir);
    const config = mounts.find((mount) => mount.target === configPath);
    expect(config).toMatchObject({ readOnly: true, source: expect.stringMatching(/^\.\//) });
    const text = read(config?.source ?? '').replace(/#.*$/gm, '');
    expect(text).toMatch(/jetstream\s*\{[^}]*\bsync_interval\s*:\s*always\b[^}]*\}/);
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
  it('when built, then dependencies, the workflow bundle and the runtime are separate stages', () => {
    expect(stages.map((s) => s.name)).toEqual(expect.arrayContaining(['deps', 'build']));
    expect(stage('deps').instructions.join('\n')).toMatch(/^RUN npm ci .*--omit=dev/m);
    expect(stage('build').instructions.join('\n')).toMatch(/^RUN npm ci /m);
    expect(finalStage?.base).toMatch(/^node:20[\d.]*-bookworm-slim$/);
  });

  it('when it runs, then it is the node user, with the prebuilt bundle at WORKFLOW_BUNDLE_PATH and the api by default', () => {
    const instructions = finalStage?.instructions ?? [];
    const users = instructions.filter((line) => /^USER\s/i.test(line));
    expect(users.at(-1)).toBe('USER node');

    // The build stage writes the bundle; the runtime copies that very file to WORKFLOW_BUNDLE_PATH.
    const built = /tools\/build-workflow-bundle\.ts\s+(\S+)/.exec(
      stage('build').instructions.join('\n'),
    )?.[1];
    expect(built).toBeDefined();
    const workdir = instructions.find((line) => /^WORKDIR\s/i.test(line))?.split(/\s+/)[1] ?? '/';
    const copied = instructions
      .map((line) => /^COPY\s+--from=build\s+(\S+)\s+(\S+)$/i.exec(line))
      .find((match) => match?.[1] === built);
    expect(copied).toBeDefined();
    expect(path.posix.resolve(workdir, copied?.[2] ?? '')).toBe(imageEnv.WORKFLOW_BUNDLE_PATH);

    expect(instructions).toEqual(expect.arrayContaining([expect.stringMatching(/^COPY migrations\s/)]));
    const cmd = instructions
      .filter((line) => /^CMD\s/i.test(line))
      .at(-1)
      ?.replace(/^CMD\s+/i, '');
    expect(JSON.parse(cmd ?? 'null')).toEqual(['npm', 'run', 'api']);
  });

  it('when the build context is sent, then local state and artifacts stay out', () => {
    const ignored = read('.dockerignore')
      .split(/\r?\n/)
      .map((line) => line.trim());
    expect(ignored).toEqual(
      expect.arrayContaining([
        'node_modules',
        '.data',
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
