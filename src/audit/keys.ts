/**
 * The issuer's audit key: Ed25519, made on first use, stored as PKCS#8 sealed with the
 * key-encryption key exactly as the CA keys are (ca/key-encryptor.ts, the record id as
 * associated data). Its signed-note name is the log's origin; the verifier key string is what
 * relying parties and witnesses pin (`writ audit key`).
 */
import { createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import type { KeyEncryptor } from '../ca/key-encryptor.js';
import type { Clock } from '../clock.js';
import { AuditError } from '../errors.js';
import type { Store } from '../store/store.js';
import { isKeyName, type NoteSigner, noteSigner, rawEd25519 } from './note.js';

/** The origin of a trust domain's audit log, unless configured otherwise. */
export const defaultAuditOrigin = (trustDomain: string): string => `${trustDomain}/audit`;

/**
 * The active audit key's signer, making and storing one if there is none. Two issuers sharing
 * a database that start at once make one key: the second insert breaks the one-active index,
 * its transaction rolls back, and it reads the winner's key.
 */
export async function openAuditSigner(deps: { store: Store; encryptor: KeyEncryptor; origin: string; clock: Clock }): Promise<NoteSigner> {
  const { store, encryptor, origin, clock } = deps;
  if (!isKeyName(origin))
    throw new AuditError('ERR_CHECKPOINT_INVALID', `audit: origin ${JSON.stringify(origin)} is not a signed-note key name (no spaces, no plus)`);
  const active = async () => (await store.listAuditKeys()).find((k) => k.state === 'active');
  let rec = await active();
  if (!rec) {
    const id = `audit-${randomBytes(8).toString('hex')}`;
    const key = generateKeyPairSync('ed25519').privateKey;
    const candidate = {
      id,
      name: origin,
      publicKey: rawEd25519(key),
      sealedKey: encryptor.seal(key.export({ type: 'pkcs8', format: 'der' }), id),
      state: 'active' as const,
      createdAt: clock.now().getTime(),
    };
    try {
      await store.transaction(async (tx) => {
        if (!(await tx.listAuditKeys()).some((k) => k.state === 'active')) await tx.putAuditKey(candidate);
      });
    } catch (e) {
      if (!(await active())) throw e;
    }
    rec = await active();
    if (!rec) throw new AuditError('ERR_CHECKPOINT_INVALID', 'audit: no active audit key after making one');
  }
  if (rec.name !== origin) {
    throw new AuditError(
      'ERR_CHECKPOINT_INVALID',
      `audit: the stored audit key is named ${rec.name}, not the configured origin ${origin}; the origin of a log never changes`,
    );
  }
  const key = createPrivateKey({ key: encryptor.open(rec.sealedKey, rec.id), format: 'der', type: 'pkcs8' });
  const signer = noteSigner(rec.name, key);
  if (!rawEd25519(key).equals(rec.publicKey)) throw new AuditError('ERR_CHECKPOINT_INVALID', `audit: key ${rec.id} does not match its stored public key`);
  return signer;
}
