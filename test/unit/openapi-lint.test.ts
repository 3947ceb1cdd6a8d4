import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { buildApp } from '../../api/app';
import { loadApiConfig } from '../../api/config';
import type { Pool } from '../../store/pool';

/**
 * The OpenAPI document passes `redocly lint` with its recommended rules (servers, license,
 * an operationId and a 4xx on every operation, security schemes defined, …), so typed clients
 * can be generated from it. Runs the pinned @redocly/cli from node_modules, offline.
 */
const CLI = require.resolve('@redocly/cli/bin/cli.js');

interface LintReport {
  totals: { errors: number; warnings: number };
  problems: Array<{ ruleId: string; message: string; location?: Array<{ pointer?: string }> }>;
}

it('when /openapi.json is linted with the recommended rules, then there is no error and no warning', async () => {
  const app = buildApp({
    pool: {} as Pool,
    temporal: {} as Client,
    config: loadApiConfig({
      DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none',
      TEMPORAL_ADDRESS: '127.0.0.1:1',
      PAYLOAD_ENCRYPTION: 'off',
      API_TOKENS: 'lint-token',
    }),
  });
  const spec = (await app.inject({ method: 'GET', url: '/openapi.json' })).body;
  await app.close();
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'openapi-lint-')), 'openapi.json');
  writeFileSync(file, spec);

  const run = spawnSync(
    process.execPath,
    [CLI, 'lint', file, '--extends', 'recommended', '--format', 'json'],
    {
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
    },
  );
  const report = JSON.parse(run.stdout) as LintReport;
  const problems = report.problems.map(
    (problem) => `${problem.ruleId}: ${problem.message} (${problem.location?.[0]?.pointer ?? ''})`,
  );
  expect(problems).toEqual([]);
  expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
  expect(run.status).toBe(0);
}, 60_000);
