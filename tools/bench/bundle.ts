/** The workflow bundles the bench builds itself (webpack; warnings and up only). */
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { workflowBundleConverters } from '../../lib/payload-codec';

export async function bundleWorkflows(
  workflowsPath: string,
  workflowInterceptorModules: string[] = [],
): Promise<string> {
  const { code } = await bundleWorkflowCode({
    workflowsPath,
    workflowInterceptorModules,
    logger: new DefaultLogger('WARN'),
    ...workflowBundleConverters,
  });
  return code;
}
