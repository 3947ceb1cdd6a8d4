/**
 * Gets the native tools, pinned. The local stack (`npm start`) needs two: the Temporal CLI
 * and nats-server. The production topology (`npm run start:cluster`) needs nats-server and
 * the Temporal server, its SQL schema tool with the schema files of the same version, and
 * the Temporal UI server.
 *   <NAME>_PATH override → cached binary → `go install` → release download (where one is
 *   published for the platform) → one line saying what to install.
 * Binaries live in `${XDG_CACHE_HOME:-$HOME/.cache}/order-saga/tools/<name>-<version>/`, so a
 * second run only checks `--version` and returns in milliseconds.
 *
 * CLI: `npm run tools` prints the dev stack's paths; `npm run tools -- --cluster` the cluster's.
 */
import { execFile, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import {
  access,
  chmod,
  constants,
  cp,
  mkdir,
  mkdtemp,
  readdir,
  rename,
  rm,
  writeFile,
} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

export const TEMPORAL_VERSION = '1.5.1';
export const NATS_SERVER_VERSION = '2.12.15';
/**
 * The Temporal server, its schema tool and schema files: one module version. 1.32.2 needs
 * Go ≥ 1.26.10 to build; 1.32.1 declares go 1.26.8.
 */
export const TEMPORAL_SERVER_VERSION = '1.32.1';
export const TEMPORAL_UI_SERVER_VERSION = '2.42.1';

interface GoVersion {
  major: number;
  minor: number;
  patch: number;
}
/** What the CLI and nats-server need; a tool that needs more says so in its spec. */
const MIN_GO: GoVersion = { major: 1, minor: 22, patch: 0 };
/** go.temporal.io/server v1.32.1's go.mod: `go 1.26.8`. */
const TEMPORAL_SERVER_MIN_GO: GoVersion = { major: 1, minor: 26, patch: 8 };

export interface Tools {
  temporal: string;
  natsServer: string;
}

/** What `npm run start:cluster` runs (tools/dev/cluster-stack.ts). */
export interface ClusterTools {
  natsServer: string;
  temporalServer: string;
  temporalSqlTool: string;
  /** Holds `temporal/` and `visibility/` (each with `versioned/`): schema/postgresql/v12. */
  temporalSchemaDir: string;
  temporalUiServer: string;
}

export type Log = (line: string) => void;

const execFileAsync = promisify(execFile);

interface ToolSpec {
  name: string;
  binary: string;
  version: string;
  envVar: string;
  goModule: string;
  goPackage: string;
  /** What `go install` names the binary (the package's last element), when not `binary`. */
  goBinary?: string;
  /** The Go the module's go.mod asks for, when above MIN_GO. */
  minGo?: GoVersion;
  /** `go install` of a tagged module leaves temporal's version at its 0.0.0-DEV default. */
  goLdflags?: string;
  /** The release archive for a platform, where the project publishes one we can use. */
  releaseUrl?(platform: Platform): string;
}

/** Files (not a binary) taken from a module's source, as `go mod download` leaves it. */
interface ModuleFilesSpec {
  name: string;
  version: string;
  envVar: string;
  goModule: string;
  /** Copied from <module dir>/<from> to <cache dir>/<from>; the tool uses that folder. */
  from: string;
  /** Present when the copy is complete (checked relative to the copied folder). */
  proof: string[];
}

interface Platform {
  os: 'linux' | 'darwin';
  arch: 'amd64' | 'arm64';
}

const TEMPORAL: ToolSpec = {
  name: 'temporal',
  binary: 'temporal',
  version: TEMPORAL_VERSION,
  envVar: 'TEMPORAL_CLI_PATH',
  goModule: 'github.com/temporalio/cli',
  // Newer tags carry a `replace` directive, which `go install pkg@version` refuses: stay on 1.5.1.
  goPackage: 'github.com/temporalio/cli/cmd/temporal',
  goLdflags: `-X github.com/temporalio/cli/temporalcli.Version=${TEMPORAL_VERSION}`,
  releaseUrl: ({ os: system, arch }) =>
    `https://github.com/temporalio/cli/releases/download/v${TEMPORAL_VERSION}/temporal_cli_${TEMPORAL_VERSION}_${system}_${arch}.tar.gz`,
};

const NATS_SERVER: ToolSpec = {
  name: 'nats-server',
  binary: 'nats-server',
  version: NATS_SERVER_VERSION,
  envVar: 'NATS_SERVER_PATH',
  goModule: 'github.com/nats-io/nats-server/v2',
  goPackage: 'github.com/nats-io/nats-server/v2',
  releaseUrl: ({ os: system, arch }) =>
    `https://github.com/nats-io/nats-server/releases/download/v${NATS_SERVER_VERSION}/nats-server-v${NATS_SERVER_VERSION}-${system}-${arch}.tar.gz`,
};

const TEMPORAL_SERVER: ToolSpec = {
  name: 'temporal-server',
  binary: 'temporal-server',
  version: TEMPORAL_SERVER_VERSION,
  envVar: 'TEMPORAL_SERVER_PATH',
  goModule: 'go.temporal.io/server',
  goPackage: 'go.temporal.io/server/cmd/server',
  goBinary: 'server',
  minGo: TEMPORAL_SERVER_MIN_GO,
};

const TEMPORAL_SQL_TOOL: ToolSpec = {
  name: 'temporal-sql-tool',
  binary: 'temporal-sql-tool',
  version: TEMPORAL_SERVER_VERSION,
  envVar: 'TEMPORAL_SQL_TOOL_PATH',
  goModule: 'go.temporal.io/server',
  goPackage: 'go.temporal.io/server/cmd/tools/sql',
  goBinary: 'sql',
  minGo: TEMPORAL_SERVER_MIN_GO,
};

const TEMPORAL_SCHEMA: ModuleFilesSpec = {
  name: 'temporal-schema',
  version: TEMPORAL_SERVER_VERSION,
  envVar: 'TEMPORAL_SCHEMA_DIR',
  goModule: 'go.temporal.io/server',
  from: 'schema/postgresql/v12',
  proof: ['temporal/versioned', 'visibility/versioned'],
};

const TEMPORAL_UI_SERVER: ToolSpec = {
  name: 'temporal-ui-server',
  binary: 'temporal-ui-server',
  version: TEMPORAL_UI_SERVER_VERSION,
  envVar: 'TEMPORAL_UI_SERVER_PATH',
  goModule: 'github.com/temporalio/ui-server/v2',
  goPackage: 'github.com/temporalio/ui-server/v2/cmd/server',
  goBinary: 'server',
  minGo: { major: 1, minor: 24, patch: 0 },
};

export function toolsCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const cacheHome = env.XDG_CACHE_HOME?.trim() || path.join(os.homedir(), '.cache');
  return path.join(cacheHome, 'order-saga', 'tools');
}

/** Makes sure both tools are present (installing them on first use) and returns their paths. */
export async function ensureTools(
  log: Log = (line) => process.stderr.write(`${line}\n`),
  env: NodeJS.ProcessEnv = process.env,
): Promise<Tools> {
  const go = await findGo();
  // One at a time: each `go install` already uses every core.
  const temporal = await ensureTool(TEMPORAL, { go, log, env });
  const natsServer = await ensureTool(NATS_SERVER, { go, log, env });
  return { temporal, natsServer };
}

/**
 * The tools of `npm run start:cluster`, installed on first use: about 2 minutes for the
 * Temporal server on a warm Go module cache (more when its modules must be downloaded), the
 * rest in seconds.
 */
export async function ensureClusterTools(
  log: Log = (line) => process.stderr.write(`${line}\n`),
  env: NodeJS.ProcessEnv = process.env,
): Promise<ClusterTools> {
  const go = await findGo();
  const context = { go, log, env };
  const natsServer = await ensureTool(NATS_SERVER, context);
  const temporalServer = await ensureTool(TEMPORAL_SERVER, context);
  const temporalSqlTool = await ensureTool(TEMPORAL_SQL_TOOL, context);
  const temporalSchemaDir = await ensureModuleFiles(TEMPORAL_SCHEMA, context);
  const temporalUiServer = await ensureTool(TEMPORAL_UI_SERVER, context);
  return { natsServer, temporalServer, temporalSqlTool, temporalSchemaDir, temporalUiServer };
}

interface InstallContext {
  go: GoCommand | undefined;
  log: Log;
  env: NodeJS.ProcessEnv;
}

interface GoCommand {
  command: string;
  version: GoVersion;
}

async function ensureTool(spec: ToolSpec, { go, log, env }: InstallContext): Promise<string> {
  const override = env[spec.envVar]?.trim();
  if (override) return checkOverride(spec, override);

  const dir = path.join(toolsCacheDir(env), `${spec.name}-${spec.version}`);
  const target = path.join(dir, spec.binary);
  if (await isInstalled(spec, target, go)) return target;

  await mkdir(dir, { recursive: true });
  const failures: string[] = [];
  const minGo = spec.minGo ?? MIN_GO;
  if (go && !atLeast(go.version, minGo)) {
    failures.push(`go install needs Go ≥${formatGo(minGo)}, found ${formatGo(go.version)}`);
  } else if (go) {
    try {
      await goInstall(spec, go.command, dir, log);
      if (await isInstalled(spec, target, go)) return target;
      failures.push('go install produced a binary that does not report the pinned version');
    } catch (error) {
      failures.push(`go install failed (${message(error)})`);
    }
  }
  const platform = currentPlatform();
  if (platform && spec.releaseUrl) {
    try {
      await download(spec, spec.releaseUrl(platform), dir, log);
      if (await isInstalled(spec, target, go)) return target;
      failures.push('the downloaded binary does not report the pinned version');
    } catch (error) {
      failures.push(`download failed (${message(error)})`);
    }
  }
  const why = failures.length > 0 ? ` [${failures.join('; ')}]` : '';
  const sources = spec.releaseUrl ? ' or internet access' : '';
  throw new Error(
    `need Go ≥${formatGo(minGo)} (go install)${sources} to get ${spec.name} v${spec.version}; ` +
      `or set ${spec.envVar}${why}`,
  );
}

/**
 * A folder of a module's source (e.g. the SQL schema next to the schema tool), copied into
 * the cache from the Go module cache (`go mod download` fetches it when missing).
 */
async function ensureModuleFiles(spec: ModuleFilesSpec, { go, log, env }: InstallContext): Promise<string> {
  const override = env[spec.envVar]?.trim();
  if (override) {
    const dir = path.resolve(override);
    if (!(await hasAll(dir, spec.proof))) {
      throw new Error(`${spec.envVar}: ${dir} does not hold ${spec.proof.join(' and ')}`);
    }
    return dir;
  }
  const dir = path.join(toolsCacheDir(env), `${spec.name}-${spec.version}`);
  const target = path.join(dir, spec.from);
  if (await hasAll(target, spec.proof)) return target;
  if (!go) {
    throw new Error(`need Go to get ${spec.name} v${spec.version} (${spec.from}); or set ${spec.envVar}`);
  }
  log(`tools: copying ${spec.from} of ${spec.goModule} v${spec.version} into ${dir}…`);
  await mkdir(dir, { recursive: true });
  const { stdout } = await execFileAsync(
    go.command,
    ['mod', 'download', '-json', `${spec.goModule}@v${spec.version}`],
    // Outside any module: `go mod download` of a module@version needs no go.mod.
    { cwd: os.tmpdir(), timeout: 600_000, maxBuffer: 4 * 1024 * 1024 },
  );
  const moduleDir = (JSON.parse(stdout) as { Dir?: string; Error?: string }).Dir;
  if (!moduleDir) throw new Error(`go mod download gave no directory for ${spec.goModule}@v${spec.version}`);
  // Into a scratch folder, then renamed: a killed copy never passes for a complete one.
  const scratch = await mkdtemp(path.join(dir, '.copy-'));
  try {
    await cp(path.join(moduleDir, spec.from), path.join(scratch, 'files'), { recursive: true });
    // The module cache is read-only; the copy must stay removable.
    await run('chmod', ['-R', 'u+w', scratch], process.env);
    await mkdir(path.dirname(target), { recursive: true });
    await rm(target, { recursive: true, force: true });
    await rename(path.join(scratch, 'files'), target);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  if (!(await hasAll(target, spec.proof))) {
    throw new Error(
      `${spec.goModule}@v${spec.version} has no ${spec.proof.join(' and ')} under ${spec.from}`,
    );
  }
  return target;
}

async function hasAll(dir: string, entries: string[]): Promise<boolean> {
  const found = await Promise.all(
    entries.map((entry) =>
      access(path.join(dir, entry)).then(
        () => true,
        () => false,
      ),
    ),
  );
  return found.every(Boolean);
}

async function checkOverride(spec: ToolSpec, file: string): Promise<string> {
  try {
    await access(file, constants.X_OK);
  } catch {
    throw new Error(`${spec.envVar}: ${file} is not an executable file`);
  }
  return path.resolve(file);
}

/**
 * A cached binary counts when it runs and reports the pinned version. Binaries built by a
 * plain `go install` say 0.0.0-DEV; for those Go's embedded module info is the proof.
 */
async function isInstalled(spec: ToolSpec, file: string, go: GoCommand | undefined): Promise<boolean> {
  try {
    const { stdout } = await execFileAsync(file, ['--version'], { timeout: 10_000 });
    if (stdout.includes(spec.version)) return true;
    if (!go) return false;
    const info = await execFileAsync(go.command, ['version', '-m', file], { timeout: 10_000 });
    return new RegExp(
      `^\\s*mod\\s+${escapeRegExp(spec.goModule)}\\s+v${escapeRegExp(spec.version)}\\s`,
      'm',
    ).test(info.stdout);
  } catch {
    return false;
  }
}

/** Builds into a scratch GOBIN inside `dir`, then renames: a killed build leaves no half binary. */
async function goInstall(spec: ToolSpec, go: string, dir: string, log: Log): Promise<void> {
  log(
    `tools: building ${spec.name} v${spec.version} with go install (first run only; this can take minutes)…`,
  );
  const scratch = await mkdtemp(path.join(dir, '.build-'));
  const logFile = path.join(dir, 'install.log');
  try {
    const args = ['install', ...(spec.goLdflags ? [`-ldflags=${spec.goLdflags}`] : [])];
    await run(
      go,
      [...args, `${spec.goPackage}@v${spec.version}`],
      { ...process.env, GOBIN: scratch },
      logFile,
    );
    await rename(path.join(scratch, spec.goBinary ?? spec.binary), path.join(dir, spec.binary));
  } catch (error) {
    throw new Error(`${message(error)}; see ${logFile}`);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** Downloads and unpacks the official release archive, then renames the binary into place. */
async function download(spec: ToolSpec, url: string, dir: string, log: Log): Promise<void> {
  log(`tools: downloading ${spec.name} v${spec.version} from ${url}…`);
  const scratch = await mkdtemp(path.join(dir, '.download-'));
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(300_000) });
    if (!response.ok) throw new Error(`HTTP ${response.status} for ${url}`);
    const archive = path.join(scratch, 'archive.tar.gz');
    await writeFile(archive, Buffer.from(await response.arrayBuffer()));
    const unpacked = path.join(scratch, 'unpacked');
    await mkdir(unpacked);
    await run('tar', ['-xzf', archive, '-C', unpacked], process.env);
    // temporal's archive holds the binary at the top, nats-server's in a versioned folder.
    const binary = await findFile(unpacked, spec.binary);
    if (!binary) throw new Error(`no ${spec.binary} in ${url}`);
    await chmod(binary, 0o755);
    await rename(binary, path.join(dir, spec.binary));
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The `go` command and its version when Go is installed and at least MIN_GO, else undefined. */
async function findGo(): Promise<GoCommand | undefined> {
  try {
    const { stdout } = await execFileAsync('go', ['version'], { timeout: 10_000 });
    const match = /go(\d+)\.(\d+)(?:\.(\d+))?/.exec(stdout);
    if (!match) return undefined;
    const version = { major: Number(match[1]), minor: Number(match[2]), patch: Number(match[3] ?? 0) };
    return atLeast(version, MIN_GO) ? { command: 'go', version } : undefined;
  } catch {
    return undefined;
  }
}

function atLeast(version: GoVersion, minimum: GoVersion): boolean {
  if (version.major !== minimum.major) return version.major > minimum.major;
  if (version.minor !== minimum.minor) return version.minor > minimum.minor;
  return version.patch >= minimum.patch;
}

const formatGo = ({ major, minor, patch }: GoVersion): string =>
  patch === 0 ? `${major}.${minor}` : `${major}.${minor}.${patch}`;

function currentPlatform(): Platform | undefined {
  const system = process.platform === 'linux' || process.platform === 'darwin' ? process.platform : undefined;
  const arch = process.arch === 'x64' ? 'amd64' : process.arch === 'arm64' ? 'arm64' : undefined;
  return system && arch ? { os: system, arch } : undefined;
}

/** Runs a command with its output appended to `logFile` (or discarded); rejects on failure. */
function run(command: string, args: string[], env: NodeJS.ProcessEnv, logFile?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    if (logFile) {
      const out = createWriteStream(logFile, { flags: 'a' });
      child.stdout.pipe(out);
      child.stderr.pipe(out);
    } else {
      child.stdout.resume();
      child.stderr.resume();
    }
    child.on('error', reject);
    child.on('exit', (code, signal) =>
      code === 0
        ? resolve()
        : reject(new Error(`${path.basename(command)} exited with ${signal ?? `code ${code}`}`)),
    );
  });
}

async function findFile(dir: string, name: string): Promise<string | undefined> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const found = entries.find((entry) => entry.isFile() && entry.name === name);
  return found && path.join(found.parentPath, found.name);
}

const message = (error: unknown): string => (error instanceof Error ? error.message : String(error));
const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

if (require.main === module) {
  const cluster = process.argv.includes('--cluster');
  const paths: Promise<Record<string, string>> = cluster
    ? ensureClusterTools().then((tools) => ({
        'nats-server': tools.natsServer,
        'temporal-server': tools.temporalServer,
        'temporal-sql-tool': tools.temporalSqlTool,
        'temporal-schema': tools.temporalSchemaDir,
        'temporal-ui-server': tools.temporalUiServer,
      }))
    : ensureTools().then((tools) => ({ temporal: tools.temporal, 'nats-server': tools.natsServer }));
  paths.then(
    (tools) => {
      const lines = Object.entries(tools).map(([name, file]) => `${name}: ${file}`);
      process.stdout.write(`${lines.join('\n')}\n`);
    },
    (error: unknown) => {
      process.stderr.write(`${message(error)}\n`);
      process.exit(1);
    },
  );
}
