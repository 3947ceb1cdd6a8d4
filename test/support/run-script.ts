/**
 * Runs one of the project's TypeScript entry points (`node --import tsx <entry> …`) as an
 * operator would, with only PATH, HOME and TMPDIR from this environment (never a
 * developer's DATABASE_URL and friends), and collects everything it printed.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');

export interface ScriptRun {
  code: number | null;
  /** stdout and stderr, interleaved as they came. */
  output: string;
}

export function runScript(entry: string, args: string[]): Promise<ScriptRun> {
  return runNode(['--import', 'tsx', path.join(ROOT, entry), ...args], {
    HOME: process.env.HOME,
    TMPDIR: process.env.TMPDIR,
  });
}

/** `node <args>` in the repository with only PATH and `env`, collecting everything it printed. */
export function runNode(args: string[], env: NodeJS.ProcessEnv): Promise<ScriptRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}
