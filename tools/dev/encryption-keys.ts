/**
 * The payload encryption keys the local stacks hand their api, worker and relay processes
 * (`npm start` and `npm run start:cluster`): PAYLOAD_ENCRYPTION_KEYS when given, else the key
 * kept in `keysFile` (generated on the first run, readable by this user only), so runs,
 * restarts and both stacks decode each other's payloads. Nothing with PAYLOAD_ENCRYPTION=off
 * and no keys given.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { generateEncryptionKey, parseEncryptionKeys } from '../../lib/payload-codec';

export async function localEncryptionKeys(options: {
  /** PAYLOAD_ENCRYPTION_KEYS as given (already checked), if any. */
  given: string | undefined;
  /** PAYLOAD_ENCRYPTION=off was set. */
  off: boolean;
  keysFile: string;
  note: (line: string) => void;
}): Promise<string | undefined> {
  if (options.given !== undefined) return options.given;
  if (options.off) return undefined;
  const kept = await readFile(options.keysFile, 'utf8').then(
    (text) => text.trim(),
    () => undefined,
  );
  if (kept !== undefined) {
    parseEncryptionKeys(kept, options.keysFile);
    return kept;
  }
  const generated = generateEncryptionKey(`local-${new Date().toISOString().slice(0, 10)}`);
  await mkdir(path.dirname(options.keysFile), { recursive: true });
  await writeFile(options.keysFile, `${generated}\n`, { mode: 0o600, flag: 'wx' });
  options.note(`payload encryption: generated a key into ${path.relative(process.cwd(), options.keysFile)}`);
  return generated;
}
