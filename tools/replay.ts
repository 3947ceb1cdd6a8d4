import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, makeTelemetryFilterString, Runtime, Worker } from '@temporalio/worker';
import { loadOrExit } from '../lib/env';
import { dataConverterFor, loadPayloadEncryption } from '../lib/payload-codec';
import { loadTemporalConnection } from '../worker/config';

/**
 * `npm run replay -- --workflow-id <id>` or `-- --query '<visibility query>'`: fetches
 * those runs' histories from the server and replays them against the current workflow
 * code. Exit code 1 with a readable report on any non-determinism: the pre-deploy check.
 */
const USAGE = `usage: npm run replay -- --workflow-id <id> [--workflow-id <id> …]
       npm run replay -- --query 'WorkflowType="orderSaga" AND ExecutionStatus="Running"'`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      'workflow-id': { type: 'string', multiple: true },
      query: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  const ids = values['workflow-id'] ?? [];
  if (values.help || (ids.length === 0 && !values.query)) {
    process.stderr.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const temporal = loadOrExit(() => loadTemporalConnection(process.env));
  // The same keys as the workers (PAYLOAD_ENCRYPTION_KEYS): the histories are encrypted.
  const { keys } = loadOrExit(() => loadPayloadEncryption(process.env, { required: false }));
  const dataConverter = dataConverterFor(keys);
  Runtime.install({
    logger: new DefaultLogger('WARN'),
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }) } },
  });
  const connection = await Connection.connect({
    address: temporal.address,
    ...(temporal.tls ? { tls: temporal.tls } : {}),
    ...(temporal.apiKey ? { apiKey: temporal.apiKey } : {}),
  });
  const client = new Client({ connection, namespace: temporal.namespace, dataConverter });
  try {
    const executions = values.query
      ? client.workflow.list({ query: values.query }).intoHistories()
      : (async function* () {
          for (const workflowId of ids) {
            yield { workflowId, history: await client.workflow.getHandle(workflowId).fetchHistory() };
          }
        })();
    let replayed = 0;
    const failures: string[] = [];
    for await (const result of Worker.runReplayHistories(
      { workflowsPath: require.resolve('../workflows'), dataConverter },
      executions,
    )) {
      replayed++;
      if (result.error) {
        failures.push(`  ✗ ${result.workflowId}\n      ${String(result.error).split('\n').join('\n      ')}`);
      } else {
        process.stdout.write(`  ✓ ${result.workflowId}\n`);
      }
    }
    if (replayed === 0) {
      process.stderr.write('no workflow matched; nothing was replayed\n');
      return 2;
    }
    if (failures.length > 0) {
      process.stdout.write(`${failures.join('\n')}\n`);
      process.stdout.write(
        `replay FAILED: ${failures.length} of ${replayed} run(s) are not deterministic with this code\n`,
      );
      return 1;
    }
    process.stdout.write(`replay OK: ${replayed} run(s) replay against the current workflow code\n`);
    return 0;
  } finally {
    await connection.close();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`replay failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  },
);
