/**
 * `npx tsx tools/bench/start-time.ts [--runs 5]`: how long api, worker and relay take from
 * spawn to ready, and their resident memory once ready, run three ways: through npm and tsx
 * (`npm run api`, what the image ran before), tsx alone (`node --import tsx api/server.ts`)
 * and compiled (`node dist/api/server.js`, what the image runs now). Needs `npm run build`
 * first and a stack to talk to: DATABASE_URL, TEMPORAL_ADDRESS and NATS_URL as printed by
 * `npm start -- --stack-only`.
 *
 * Ready: the api's /readyz answers 200; the worker logs "worker started" (polling); the relay
 * logs "relay started". RSS: the sum over the process and its descendants (npm and its shell
 * included), 2 s after ready. Variants run round-robin, so load from elsewhere on the machine
 * spreads over all of them; the table shows the median and the range.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { choosePorts } from '../dev/processes';
import { generateEncryptionKey } from '../../lib/payload-codec';

const ROOT = path.resolve(__dirname, '..', '..');
const BUNDLE = path.join(ROOT, 'dist', 'workflow-bundle.js');
const READY_TIMEOUT_MS = 120_000;
const SETTLE_MS = 2_000;

type Role = 'api' | 'worker' | 'relay';
interface Variant {
  role: Role;
  how: string;
  command: string;
  args: string[];
  env?: Record<string, string>;
}

const node = process.execPath;
const VARIANTS: Variant[] = [
  { role: 'api', how: 'npm run api (npm + tsx)', command: 'npm', args: ['run', 'api'] },
  { role: 'api', how: 'node --import tsx', command: node, args: ['--import', 'tsx', 'api/server.ts'] },
  { role: 'api', how: 'node dist (compiled)', command: node, args: ['dist/api/server.js'] },
  {
    role: 'worker',
    how: 'npm run worker (npm + tsx, bundles at start)',
    command: 'npm',
    args: ['run', 'worker'],
  },
  {
    role: 'worker',
    how: 'npm run worker + prebuilt bundle (image before)',
    command: 'npm',
    args: ['run', 'worker'],
    env: { WORKFLOW_BUNDLE_PATH: BUNDLE },
  },
  {
    role: 'worker',
    how: 'node dist (compiled, prebuilt bundle)',
    command: node,
    args: ['dist/worker/main.js'],
  },
  { role: 'relay', how: 'npm run relay (npm + tsx)', command: 'npm', args: ['run', 'relay'] },
  { role: 'relay', how: 'node --import tsx', command: node, args: ['--import', 'tsx', 'relay/main.ts'] },
  { role: 'relay', how: 'node dist (compiled)', command: node, args: ['dist/relay/main.js'] },
];

const READY_LINE: Record<Exclude<Role, 'api'>, string> = {
  worker: '"msg":"worker started"',
  relay: '"msg":"relay started"',
};

function required(name: string): string {
  const value = process.env[name];
  if (!value)
    throw new Error(`${name} is not set: start a stack (npm start -- --stack-only) and pass its URLs`);
  return value;
}

/** The pids of a process and all its descendants, from /proc. */
async function tree(root: number): Promise<number[]> {
  const parents = new Map<number, number>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(Number(entry), ppid);
    } catch {
      // gone meanwhile
    }
  }
  const found = [root];
  for (let i = 0; i < found.length; i++) {
    for (const [pid, ppid] of parents) if (ppid === found[i]) found.push(pid);
  }
  return found;
}

async function rssMiB(root: number): Promise<number> {
  let kib = 0;
  for (const pid of await tree(root)) {
    try {
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      kib += Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    } catch {
      // gone meanwhile
    }
  }
  return kib / 1024;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  process.kill(-child.pid!, 'SIGTERM');
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

async function once(
  variant: Variant,
  env: Record<string, string>,
): Promise<{ readyMs: number; rssMiB: number }> {
  const [port] = await choosePorts('api', [0]);
  const started = performance.now();
  const child = spawn(variant.command, variant.args, {
    cwd: ROOT,
    detached: true, // its own process group: npm, its shell and node stop together
    env: { ...env, PORT: String(port), ...variant.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  try {
    for (;;) {
      if (child.exitCode !== null)
        throw new Error(`${variant.how} exited while starting:\n${output.slice(-2000)}`);
      if (performance.now() - started > READY_TIMEOUT_MS)
        throw new Error(`${variant.how} not ready:\n${output.slice(-2000)}`);
      if (variant.role === 'api') {
        const status = await fetch(`http://127.0.0.1:${port}/readyz`).then(
          (r) => r.status,
          () => 0,
        );
        if (status === 200) break;
      } else if (output.includes(READY_LINE[variant.role])) break;
      await delay(10);
    }
    const readyMs = performance.now() - started;
    await delay(SETTLE_MS);
    return { readyMs, rssMiB: await rssMiB(child.pid!) };
  } finally {
    await stop(child);
  }
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
  const runs = Number(values.runs);
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    DATABASE_URL: required('DATABASE_URL'),
    TEMPORAL_ADDRESS: required('TEMPORAL_ADDRESS'),
    NATS_URL: required('NATS_URL'),
    TEMPORAL_TASK_QUEUE: `start-time-${process.pid}`, // polls a queue of its own
    PAYLOAD_ENCRYPTION_KEYS: generateEncryptionKey('start-time'),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    WORKER_SHUTDOWN_GRACE: '1s',
    NPM_CONFIG_UPDATE_NOTIFIER: 'false',
  };
  const results = new Map<Variant, { readyMs: number[]; rssMiB: number[] }>(
    VARIANTS.map((variant) => [variant, { readyMs: [], rssMiB: [] }]),
  );
  for (let run = 1; run <= runs; run++) {
    for (const variant of VARIANTS) {
      const { readyMs, rssMiB } = await once(variant, env);
      results.get(variant)!.readyMs.push(readyMs);
      results.get(variant)!.rssMiB.push(rssMiB);
      process.stderr.write(
        `run ${run}/${runs} ${variant.role} ${variant.how}: ${readyMs.toFixed(0)} ms, ${rssMiB.toFixed(0)} MiB\n`,
      );
    }
  }
  process.stdout.write(
    '| process | started as | spawn → ready, ms (median, min–max) | RSS once ready, MiB (median, min–max) |\n',
  );
  process.stdout.write('| --- | --- | --- | --- |\n');
  for (const [variant, { readyMs, rssMiB }] of results) {
    const range = (xs: number[]) => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`;
    process.stdout.write(
      `| ${variant.role} | ${variant.how} | ${median(readyMs).toFixed(0)} (${range(readyMs)}) | ${median(rssMiB).toFixed(0)} (${range(rssMiB)}) |\n`,
    );
  }
  process.stdout.write(
    `${JSON.stringify(Object.fromEntries([...results].map(([v, r]) => [`${v.role}: ${v.how}`, r])))}\n`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`start-time failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
