/**
 * The key-encryption key that seals every CA, JWT and writ key at rest: from a passphrase (the
 * environment or a file, stretched with scrypt over a salt kept in the data directory), or, as
 * the development default, a random key in a 0600 file beside the database.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { CaError } from '../errors.js';
import type { ServerSettings } from '../config/config.js';
import { readInputFile, writeFileAtomic } from '../config/files.js';
import { KeyEncryptor } from '../ca/key-encryptor.js';

export function keyEncryptor(settings: ServerSettings, env: NodeJS.ProcessEnv, logger: Logger): KeyEncryptor {
  let passphrase = env.WRIT_KEY_PASSPHRASE;
  if (settings.ca.keyPassphraseFile) passphrase = readInputFile(settings.ca.keyPassphraseFile, 'ca.key_passphrase_file').toString('utf8').trim();
  if (passphrase) {
    const saltPath = join(settings.dataDir, 'kek.salt');
    if (!existsSync(saltPath)) writeFileAtomic(saltPath, KeyEncryptor.randomKek().subarray(0, 16), 0o600);
    return KeyEncryptor.fromPassphrase(passphrase, readFileSync(saltPath));
  }
  const kekPath = join(settings.dataDir, 'kek');
  if (!existsSync(kekPath)) {
    writeFileAtomic(kekPath, KeyEncryptor.randomKek(), 0o600);
    logger.warn(
      { kekPath },
      'generated a key-encryption key file beside the database (development default); set WRIT_KEY_PASSPHRASE or ca.key_passphrase_file in production',
    );
  }
  const st = statSync(kekPath);
  if ((st.mode & 0o077) !== 0) throw new CaError('ERR_KEY_DECRYPT', `ca: ${kekPath} is readable by group or others; chmod 600 it`);
  return new KeyEncryptor(readFileSync(kekPath));
}
