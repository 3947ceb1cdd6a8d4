/**
 * `node --import tsx tools/build-workflow-bundle.ts [output]`: bundles workflows/ ahead of
 * time, so a worker started with WORKFLOW_BUNDLE_PATH loads the file instead of running
 * webpack at every start. `npm run build` (tools/build.ts) runs its compiled copy,
 * `node dist/tools/build-workflow-bundle.js`, over the compiled workflows. Output defaults to
 * dist/workflow-bundle.js; a relative path is taken from the current directory.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { workflowBundleConverters } from '../lib/payload-codec';

// From tools/ (under tsx) or dist/tools/ (compiled): dist/workflow-bundle.js either way.
const DEFAULT_OUTPUT =
  path.extname(__filename) === '.js'
    ? path.resolve(__dirname, '..', 'workflow-bundle.js')
    : path.resolve(__dirname, '..', 'dist', 'workflow-bundle.js');
const USAGE = 'usage: node --import tsx tools/build-workflow-bundle.ts [output-file]';

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { help: { type: 'boolean', short: 'h' } },
  });
  if (values.help || positionals.length > 1) {
    process.stderr.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const output = path.resolve(positionals[0] ?? DEFAULT_OUTPUT);

  const { code } = await bundleWorkflowCode({
    // The same entry the worker bundles when it has no prebuilt bundle (worker/create-worker.ts).
    workflowsPath: require.resolve('../workflows'),
    logger: new DefaultLogger('WARN'),
    // Failures encoded like the workers' (lib/payload-codec.ts): a worker given this bundle needs it.
    ...workflowBundleConverters,
  });

  // Written next to its final name, then renamed: never a half-written bundle at `output`.
  await mkdir(path.dirname(output), { recursive: true });
  const partial = `${output}.${process.pid}.tmp`;
  await writeFile(partial, code);
  await rename(partial, output);
  process.stdout.write(`workflow bundle: ${output} (${Math.round(Buffer.byteLength(code) / 1024)} KiB)\n`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(
      `workflow bundle failed: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    process.exitCode = 1;
  },
);
