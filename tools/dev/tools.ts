/**
 * Gets the two native tools the local stack needs, pinned:
 *   TEMPORAL_CLI_PATH / NATS_SERVER_PATH → cached binary → `go install` → release download.
 * Binaries live in `${XDG_CACHE_HOME:-$HOME/.cache}/order-saga/tools/<name>-<version>/`, so a
 * second run only checks `--version` and returns in milliseconds.
 *
 * CLI: `npm run tools` prints both paths.
 */
import { execFile, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { access, chmod, constants, mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

export const TEMPORAL_VERSION = '1.5.1';
export const NATS_SERVER_VERSION = '2.12.15';
/** The Temporal server and its Web UI server of the production topology (docker-compose.yml). */
export const TEMPORAL_SERVER_VERSION = '1.32.1';
export const UI_SERVER_VERSION = '2.42.1';
const MIN_GO = { major: 1, minor: 22 };

export interface Tools {
  temporal: string;
  natsServer: string;
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
  /** `go install` of a tagged module leaves temporal's version at its 0.0.0-DEV default. */
  goLdflags?: string;
  /** The release archive for a platform. */
  releaseUrl(platform: Platform): string;
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

interface InstallContext {
  go: string | undefined;
  log: Log;
  env: NodeJS.ProcessEnv;
}

async function ensureTool(spec: ToolSpec, { go, log, env }: InstallContext): Promise<string> {
  const override = env[spec.envVar]?.trim();
  if (override) return checkOverride(spec, override);

  const dir = path.join(toolsCacheDir(env), `${spec.name}-${spec.version}`);
  const target = path.join(dir, spec.binary);
  if (await isInstalled(spec, target, go)) return target;

  await mkdir(dir, { recursive: true });
  const failures: string[] = [];
  if (go) {
    try {
      await goInstall(spec, go, dir, log);
      if (await isInstalled(spec, target, go)) return target;
      failures.push('go install produced a binary that does not report the pinned version');
    } catch (error) {
      failures.push(`go install failed (${message(error)})`);
    }
  }
  const platform = currentPlatform();
  if (platform) {
    try {
      await download(spec, spec.releaseUrl(platform), dir, log);
      if (await isInstalled(spec, target, go)) return target;
      failures.push('the downloaded binary does not report the pinned version');
    } catch (error) {
      failures.push(`download failed (${message(error)})`);
    }
  }
  const why = failures.length > 0 ? ` [${failures.join('; ')}]` : '';
  throw new Error(
    `need Go ≥${MIN_GO.major}.${MIN_GO.minor} (go install) or internet access to get ${spec.name} v${spec.version}; ` +
      `or set ${spec.envVar}${why}`,
  );
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
async function isInstalled(spec: ToolSpec, file: string, go: string | undefined): Promise<boolean> {
  try {
    const { stdout } = await execFileAsync(file, ['--version'], { timeout: 10_000 });
    if (stdout.includes(spec.version)) return true;
    if (!go) return false;
    const info = await execFileAsync(go, ['version', '-m', file], { timeout: 10_000 });
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
    await rename(path.join(scratch, spec.binary), path.join(dir, spec.binary));
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

/** Returns the `go` command when Go is installed and new enough, else undefined. */
async function findGo(): Promise<string | undefined> {
  try {
    const { stdout } = await execFileAsync('go', ['version'], { timeout: 10_000 });
    const match = /go(\d+)\.(\d+)/.exec(stdout);
    if (!match) return undefined;
    const [major, minor] = [Number(match[1]), Number(match[2])];
    const recentEnough = major > MIN_GO.major || (major === MIN_GO.major && minor >= MIN_GO.minor);
    return recentEnough ? 'go' : undefined;
  } catch {
    return undefined;
  }
}

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
  ensureTools().then(
    (tools) => process.stdout.write(`temporal: ${tools.temporal}\nnats-server: ${tools.natsServer}\n`),
    (error: unknown) => {
      process.stderr.write(`${message(error)}\n`);
      process.exit(1);
    },
  );
}
