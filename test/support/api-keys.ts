import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Scope } from '../../api/plugins/auth';

export interface TestApiKey {
  id: string;
  token: string;
  scopes: Scope[];
}

/** An API_KEYS_FILE holding these keys (as sha256 hashes, as an operator writes it); its path. */
export function writeApiKeysFile(keys: readonly TestApiKey[]): string {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'order-saga-keys-')), 'api-keys.json');
  const entries = keys.map(({ id, token, scopes }) => ({
    id,
    sha256: createHash('sha256').update(token).digest('hex'),
    scopes,
  }));
  writeFileSync(file, JSON.stringify({ keys: entries }));
  return file;
}
