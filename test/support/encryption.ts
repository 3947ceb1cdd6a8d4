/**
 * The payload encryption key of the tests (never used anywhere else): the harness's
 * workers and clients, the api and worker processes the tests start, and the tests that read
 * histories with and without it.
 */
import type { History } from '@temporalio/common/lib/proto-utils';
import { decodeHistory } from '../../lib/decode-history';
import { dataConverterFor, parseEncryptionKeys } from '../../lib/payload-codec';

export const TEST_ENCRYPTION_KEYS = 'test-1:3DiT2+z0lvlAnId5c+bDoYY5/HLJgrjOSQlrQJmdzwE=';
export const testEncryptionKeys = parseEncryptionKeys(TEST_ENCRYPTION_KEYS);
/** What every test client that reads saga results, queries or histories needs. */
export const testDataConverter = dataConverterFor(testEncryptionKeys);

/** A run's history as the tests read it: every payload decrypted with the test key. */
export async function decodedHistory(handle: { fetchHistory(): Promise<History> }): Promise<History> {
  return decodeHistory(await handle.fetchHistory(), testDataConverter.payloadCodecs ?? []);
}
