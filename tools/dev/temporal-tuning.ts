/**
 * The Temporal server's dynamic config, one file for every engine here:
 * deploy/temporal/dynamicconfig.yaml is mounted by docker-compose.yml, written into the
 * cluster stack's generated config (tools/dev/cluster-stack.ts), and passed as
 * `--dynamic-config-value` flags to the dev server that `npm start`, the tests and the chaos
 * drills run (tools/dev/stack.ts, tools/chaos/stack.ts, test/support/private-servers.ts).
 * So what the bench measures and the tests exercise is what a deployment gets.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';

export const DYNAMIC_CONFIG_FILE = path.resolve(
  __dirname,
  '..',
  '..',
  'deploy',
  'temporal',
  'dynamicconfig.yaml',
);

/** One key's values, as the server's file format has them (checked before use). */
type Values = Array<{ value?: unknown; constraints?: Record<string, unknown> }>;

/** The file's text, as the server reads it. */
export function temporalDynamicConfigText(): string {
  return readFileSync(DYNAMIC_CONFIG_FILE, 'utf8');
}

/**
 * `--dynamic-config-value KEY=JSON` flags for `temporal server start-dev`, which takes only
 * values without constraints: a constrained one in the file is refused here, not dropped.
 */
export function devServerDynamicConfigFlags(text = temporalDynamicConfigText()): string[] {
  const config = (parse(text) ?? {}) as Record<string, Values | null>;
  return Object.entries(config).flatMap(([key, values]) => {
    const only = Array.isArray(values) && values.length === 1 ? values[0] : undefined;
    if (only == null || !('value' in only) || Object.keys(only.constraints ?? {}).length > 0) {
      throw new Error(
        `${DYNAMIC_CONFIG_FILE}: ${key} must have exactly one value without constraints for the dev server`,
      );
    }
    return ['--dynamic-config-value', `${key}=${JSON.stringify(only.value)}`];
  });
}
