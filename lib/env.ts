/**
 * Typed readers over an environment object. Each process has exactly one config.ts that
 * calls these with `process.env`; nothing else reads the environment.
 * A missing or malformed value throws ConfigError, whose message is one line naming the
 * variable; entrypoints print it and exit 1.
 */
export type Env = Record<string, string | undefined>;

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}

const present = (env: Env, name: string): string | undefined => {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
};

/** The variable's value; unset, undefined when `optional`, else "is required but not set". */
function given(env: Env, name: string): string;
function given(env: Env, name: string, optional: true | undefined): string | undefined;
function given(env: Env, name: string, optional?: true): string | undefined {
  const value = present(env, name);
  if (value === undefined && !optional) throw new ConfigError(name, 'is required but not set');
  return value;
}

export function requireString(env: Env, name: string): string {
  return given(env, name);
}

export function optionalString(env: Env, name: string): string | undefined;
export function optionalString(env: Env, name: string, fallback: string): string;
export function optionalString(env: Env, name: string, fallback?: string): string | undefined {
  return present(env, name) ?? fallback;
}

export function integer(
  env: Env,
  name: string,
  fallback: number,
  { min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER }: { min?: number; max?: number } = {},
): number {
  const raw = present(env, name);
  if (raw === undefined) return fallback;
  if (!/^-?\d+$/.test(raw)) throw new ConfigError(name, `must be an integer, got "${raw}"`);
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(name, `must be an integer between ${min} and ${max}, got "${raw}"`);
  }
  return value;
}

const UNITS_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses durations like `250ms`, `30s`, `15m`, `24h`, `7d` into milliseconds. */
export function parseDuration(raw: string): number | undefined {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(raw.trim());
  if (!match) return undefined;
  return Number(match[1]) * UNITS_MS[match[2]!]!;
}

export function duration(env: Env, name: string, fallback: string): { text: string; ms: number } {
  const text = present(env, name) ?? fallback;
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) {
    throw new ConfigError(name, `must be a duration such as 30s, 15m or 24h, got "${text}"`);
  }
  return { text, ms };
}

export function url(env: Env, name: string, protocols: string[]): string;
export function url(env: Env, name: string, protocols: string[], optional: true): string | undefined;
export function url(env: Env, name: string, protocols: string[], optional?: true): string | undefined {
  const raw = given(env, name, optional);
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, 'is not a valid URL');
  }
  if (!protocols.includes(parsed.protocol.replace(/:$/, ''))) {
    throw new ConfigError(name, `must use ${protocols.join(' or ')}, got ${parsed.protocol.replace(/:$/, '')}`);
  }
  return raw;
}

/**
 * One URL, or several comma-separated (NATS_URL: every node of a cluster), each checked as
 * url() checks one. Returns the value as given; splitUrls() lists its URLs.
 */
export function urls(env: Env, name: string, protocols: string[]): string;
export function urls(env: Env, name: string, protocols: string[], optional: true): string | undefined;
export function urls(env: Env, name: string, protocols: string[], optional?: true): string | undefined {
  const raw = given(env, name, optional);
  if (raw === undefined) return undefined;
  const each = splitUrls(raw);
  if (each.length === 0) throw new ConfigError(name, 'is not a valid URL');
  for (const one of each) url({ [name]: one }, name, protocols);
  return raw;
}

/** The items of a comma-separated list, trimmed, empty items dropped. */
function splitList(raw: string): string[] {
  return raw
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** The URLs of a comma-separated list such as NATS_URL (as list() splits any list). */
export const splitUrls: (raw: string) => string[] = splitList;

/** `host:port`, as TEMPORAL_ADDRESS takes it. */
export function hostPort(env: Env, name: string, fallback?: string): string {
  const raw = present(env, name) ?? fallback;
  if (raw === undefined) throw new ConfigError(name, 'is required but not set');
  if (!/^[\w.-]+:\d{1,5}$/.test(raw) && !/^\[[\da-f:]+\]:\d{1,5}$/i.test(raw)) {
    throw new ConfigError(name, `must be host:port, got "${raw}"`);
  }
  return raw;
}

export function list(env: Env, name: string): string[] {
  const raw = present(env, name);
  return raw === undefined ? [] : splitList(raw);
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
export function logLevel(env: Env): string {
  const level = present(env, 'LOG_LEVEL') ?? 'info';
  if (!LOG_LEVELS.includes(level)) {
    throw new ConfigError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}, got "${level}"`);
  }
  return level;
}

/** Runs an entrypoint's config loader; on ConfigError prints its one line and exits 1. */
export function loadOrExit<T>(load: () => T): T {
  try {
    return load();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`configuration error: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
}
