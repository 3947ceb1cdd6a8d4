/**
 * The failure converter of every process that talks to Temporal, and of the workflow bundle
 * (it is bundled through `failureConverterPath`, so it imports nothing but
 * @temporalio/common). `encodeCommonAttributes` moves a failure's message and stack trace
 * into a payload, which the payload codec (lib/payload-codec.ts) then encrypts: an error
 * message that quotes an address or a token never reaches Temporal in clear.
 */
import { DefaultFailureConverter } from '@temporalio/common';

export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
