/**
 * C2SP signed-note (https://c2sp.org/signed-note) with Ed25519 keys: a UTF-8 text ending in a
 * newline, a blank line, then signature lines `— <name> <base64(key ID ‖ signature)>`. The key
 * ID is the first 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key); the verifier key string
 * is `<name>+<hex key ID>+<base64(0x01 ‖ public key)>`. Signatures are plain RFC 8032 Ed25519
 * over the text bytes (node:crypto).
 *
 * Notes and verifier keys given to `openNote` / `parseVerifierKey` are UNTRUSTED: strict UTF-8,
 * no control characters but newline, canonical base64, bounded size and signature count.
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { AuditError } from '../errors.js';

/** Signature algorithm byte of Ed25519 in signed-note. */
export const ED25519_ALG = 0x01;
/** Largest note accepted, bytes: a checkpoint and a handful of cosignatures fit many times over. */
export const MAX_NOTE_BYTES = 16 * 1024;
/** Most signature lines accepted (the spec asks verifiers to accept at least 16). */
export const MAX_NOTE_SIGNATURES = 32;

const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
const DASH = '\u2014 ';
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f]/;
/** A key name: non-empty, no Unicode space, no plus (signed-note §Signatures). */
const KEY_NAME = /^[^\s+\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/u;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const bad = (message: string): never => {
  throw new AuditError('ERR_CHECKPOINT_INVALID', `audit(note): ${message}`);
};

/** Canonical standard base64 with padding, or an error. */
export function strictBase64(s: string, what: string): Buffer {
  if (!B64.test(s)) bad(`${what} is not canonical base64`);
  const b = Buffer.from(s, 'base64');
  if (b.toString('base64') !== s) bad(`${what} is not canonical base64`);
  return b;
}

export function isKeyName(name: string): boolean {
  return KEY_NAME.test(name) && !CONTROL.test(name);
}

/** The 4-byte key ID of an Ed25519 key, as a uint32. */
export function noteKeyId(name: string, publicKey: Uint8Array): number {
  return createHash('sha256').update(name).update(Buffer.of(0x0a, ED25519_ALG)).update(publicKey).digest().readUInt32BE(0);
}

/** The raw 32-byte public key of an Ed25519 KeyObject. */
export function rawEd25519(key: KeyObject): Buffer {
  const spki = (key.type === 'private' ? createPublicKey(key) : key).export({ type: 'spki', format: 'der' });
  if (spki.length !== 44 || !spki.subarray(0, 12).equals(SPKI_ED25519)) bad('key is not Ed25519');
  return spki.subarray(12);
}

export interface NoteVerifier {
  readonly name: string;
  readonly keyId: number;
  readonly publicKey: KeyObject;
  /** The verifier key string `<name>+<hex key ID>+<base64(0x01 ‖ key)>`. */
  readonly vkey: string;
}

export interface NoteSigner extends NoteVerifier {
  sign(message: Buffer): Buffer;
}

function verifierOf(name: string, raw: Buffer): NoteVerifier {
  if (!isKeyName(name)) bad(`key name ${JSON.stringify(name)} is not a signed-note key name`);
  const keyId = noteKeyId(name, raw);
  return {
    name,
    keyId,
    publicKey: createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: 'der', type: 'spki' }),
    vkey: `${name}+${keyId.toString(16).padStart(8, '0')}+${Buffer.concat([Buffer.of(ED25519_ALG), raw]).toString('base64')}`,
  };
}

/** A signer over an Ed25519 private key. */
export function noteSigner(name: string, privateKey: KeyObject): NoteSigner {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') bad('the note key must be an Ed25519 private key');
  return { ...verifierOf(name, rawEd25519(privateKey)), sign: (m) => sign(null, m, privateKey) };
}

/** An Ed25519 private key from its 32-byte seed (RFC 8032 §5.1.5). */
export function ed25519FromSeed(seed: Uint8Array): KeyObject {
  if (seed.length !== 32) bad('an Ed25519 seed is 32 bytes');
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: 'der', type: 'pkcs8' });
}

/** Parses a verifier key string. UNTRUSTED (an `--audit-key` argument, a bundle file). */
export function parseVerifierKey(vkey: string): NoteVerifier {
  if (vkey.length > 512) bad('verifier key is too long');
  // The name holds no '+'; the base64 key may.
  const a = vkey.indexOf('+');
  const b = vkey.indexOf('+', a + 1);
  if (a <= 0 || b < 0) bad('verifier key must be <name>+<hex key ID>+<base64 key>');
  const [name, id, key] = [vkey.slice(0, a), vkey.slice(a + 1, b), vkey.slice(b + 1)];
  if (!/^[0-9a-f]{8}$/.test(id)) bad('verifier key ID must be 8 lower-case hex digits');
  const raw = strictBase64(key, 'verifier key');
  if (raw.length !== 33 || raw[0] !== ED25519_ALG) bad('verifier key is not an Ed25519 (0x01) key of 32 bytes');
  const v = verifierOf(name, raw.subarray(1));
  if (v.keyId !== Number.parseInt(id, 16)) bad('verifier key ID does not match its name and key');
  return v;
}

function checkText(text: string): void {
  if (text.length === 0 || !text.endsWith('\n')) bad('note text must be non-empty and end in a newline');
  if (CONTROL.test(text)) bad('note text holds a control character other than newline');
}

/** Signs a note text (which must end in a newline); returns the whole note. */
export function signNote(text: string, signer: NoteSigner): string {
  checkText(text);
  const sig = signer.sign(Buffer.from(text, 'utf8'));
  const id = Buffer.alloc(4);
  id.writeUInt32BE(signer.keyId);
  return `${text}\n${DASH}${signer.name} ${Buffer.concat([id, sig]).toString('base64')}\n`;
}

export interface NoteSignature {
  readonly name: string;
  readonly keyId: number;
  /** The signature bytes after the key ID. */
  readonly signature: Buffer;
}

export interface OpenedNote {
  readonly text: string;
  /** Every signature line, in order; only `verifier`'s were checked. */
  readonly signatures: readonly NoteSignature[];
}

/**
 * Opens a signed note: it must carry a signature by `verifier` (same name and key ID) that
 * verifies; a second line for the same key is refused, other keys' lines are kept unchecked.
 */
export function openNote(note: string | Uint8Array, verifier: NoteVerifier): OpenedNote {
  let s: string;
  if (typeof note === 'string') {
    s = note;
    if (Buffer.byteLength(s, 'utf8') > MAX_NOTE_BYTES) bad(`note is larger than ${MAX_NOTE_BYTES} bytes`);
  } else {
    if (note.length > MAX_NOTE_BYTES) bad(`note is larger than ${MAX_NOTE_BYTES} bytes`);
    try {
      s = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(note);
    } catch {
      return bad('note is not UTF-8');
    }
  }
  if (LONE_SURROGATE.test(s)) bad('note holds a lone surrogate');
  if (!s.endsWith('\n')) bad('note must end in a newline');
  const split = s.lastIndexOf('\n\n');
  if (split < 0) bad('note has no blank line before its signatures');
  const text = s.slice(0, split + 1);
  checkText(text);
  const lines = s.slice(split + 2, -1).split('\n');
  if (lines.length > MAX_NOTE_SIGNATURES) bad(`note has more than ${MAX_NOTE_SIGNATURES} signatures`);
  const signatures: NoteSignature[] = [];
  let verified = false;
  for (const line of lines) {
    if (!line.startsWith(DASH)) bad('signature line does not start with an em dash and a space');
    const rest = line.slice(DASH.length);
    const sp = rest.lastIndexOf(' ');
    if (sp <= 0) bad('signature line must be "— <name> <base64>"');
    const name = rest.slice(0, sp);
    if (!isKeyName(name)) bad('signature line names no valid key');
    const blob = strictBase64(rest.slice(sp + 1), 'signature');
    if (blob.length < 5) bad('signature is shorter than its key ID');
    const sig: NoteSignature = { name, keyId: blob.readUInt32BE(0), signature: blob.subarray(4) };
    signatures.push(sig);
    if (sig.name !== verifier.name || sig.keyId !== verifier.keyId) continue;
    if (verified) bad(`two signatures by ${verifier.name}`);
    if (sig.signature.length !== 64 || !verify(null, Buffer.from(text, 'utf8'), verifier.publicKey, sig.signature)) {
      bad(`signature by ${verifier.name} does not verify`);
    }
    verified = true;
  }
  if (!verified) bad(`note carries no signature by ${verifier.name}+${verifier.keyId.toString(16).padStart(8, '0')}`);
  return { text, signatures };
}
