/**
 * The browser's own check of an audit record: its RFC 9162 inclusion proof against a signed
 * checkpoint (C2SP tlog-checkpoint in a C2SP signed-note, Ed25519), with WebCrypto only. Nothing
 * here trusts the issuer's word that a record is in the log: the leaf hash is computed from the
 * exact bytes shown, the root from the proof, and compared with the root the checkpoint signs.
 * The same algorithms as src/audit/merkle.ts and src/audit/note.ts, written again for the browser
 * (those use node:crypto); test/unit/console-verify.test.ts checks the two agree.
 */

/** Longest inclusion proof: a tree of at most 2^64 leaves (RFC 9162 §2.1.3.1). */
export const MAX_PROOF_HASHES = 64;
const HASH_BYTES = 32;

export type Verdict =
  | { readonly ok: true; readonly size: number; readonly root: string; readonly origin: string; readonly signed: boolean }
  | { readonly ok: false; readonly reason: string };

const subtle = () => globalThis.crypto.subtle;

async function sha256(...parts: Uint8Array[]): Promise<Uint8Array> {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const buf = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    buf.set(p, o);
    o += p.length;
  }
  return new Uint8Array(await subtle().digest('SHA-256', buf));
}

const ZERO = Uint8Array.of(0);
const ONE = Uint8Array.of(1);

/** RFC 9162 §2.1.1: the hash of a leaf. */
export const leafHash = (entry: Uint8Array) => sha256(ZERO, entry);

/** RFC 9162 §2.1.3.2: the root an inclusion proof leads to, or an error naming what is wrong. */
export async function rootFromInclusionProof(index: number, size: number, entry: Uint8Array, proof: readonly Uint8Array[]): Promise<Uint8Array> {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) throw new Error(`leaf ${index} is not in a tree of ${size}`);
  if (proof.length > MAX_PROOF_HASHES) throw new Error('the proof is too long');
  if (proof.some((p) => p.length !== HASH_BYTES)) throw new Error('a proof hash is not 32 bytes');
  let fn = index;
  let sn = size - 1;
  let r = await leafHash(entry);
  const odd = (x: number) => x % 2 === 1;
  const half = (x: number) => Math.floor(x / 2);
  for (const p of proof) {
    if (sn === 0) throw new Error('the proof is longer than the path to the root');
    if (odd(fn) || fn === sn) {
      r = await sha256(ONE, p, r);
      if (!odd(fn))
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
    } else {
      r = await sha256(ONE, r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw new Error('the proof is shorter than the path to the root');
  return r;
}

const b64decode = (s: string): Uint8Array => {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)) throw new Error('not canonical base64');
  return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
};
const b64encode = (b: Uint8Array) => btoa(String.fromCharCode(...b));
const equal = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

export interface ParsedCheckpoint {
  readonly origin: string;
  readonly size: number;
  readonly root: Uint8Array;
  /** The signed text (the body, through its last newline). */
  readonly text: string;
  readonly signatures: readonly { readonly name: string; readonly bytes: Uint8Array }[];
}

/** A signed note holding a checkpoint: origin, size, base64 root, then signature lines. */
export function parseCheckpointNote(note: string): ParsedCheckpoint {
  if (note.length > 16 * 1024) throw new Error('the checkpoint is too large');
  const split = note.indexOf('\n\n');
  if (split < 0) throw new Error('the checkpoint has no signature block');
  const text = note.slice(0, split + 1);
  const lines = text.split('\n');
  const origin = lines[0] ?? '';
  const sizeText = lines[1] ?? '';
  if (origin === '' || !/^(0|[1-9][0-9]{0,15})$/.test(sizeText)) throw new Error('the checkpoint has no origin or size');
  const root = b64decode(lines[2] ?? '');
  if (root.length !== HASH_BYTES) throw new Error('the checkpoint root is not 32 bytes');
  const signatures = note
    .slice(split + 2)
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const m = /^\u2014 (\S+) (\S+)$/.exec(l);
      if (!m) throw new Error('a signature line is malformed');
      return { name: m[1]!, bytes: b64decode(m[2]!) };
    });
  return { origin, size: Number(sizeText), root, text, signatures };
}

/**
 * True when the note carries a valid Ed25519 signature by `vkey` (`name+hexid+base64(0x01‖key)`),
 * signed-note's verifier key string.
 */
export async function verifyNoteSignature(c: ParsedCheckpoint, vkey: string): Promise<boolean> {
  // The base64 key may itself hold '+': split at the first two only.
  const a = vkey.indexOf('+');
  const b = vkey.indexOf('+', a + 1);
  const [name, idHex, keyB64] = a < 0 || b < 0 ? [] : [vkey.slice(0, a), vkey.slice(a + 1, b), vkey.slice(b + 1)];
  if (!name || !idHex || !keyB64 || !/^[0-9a-f]{8}$/.test(idHex)) throw new Error('the verifier key is malformed');
  const raw = b64decode(keyB64);
  if (raw.length !== 33 || raw[0] !== 1) throw new Error('the verifier key is not an Ed25519 key');
  const id = (await sha256(new TextEncoder().encode(`${name}\n`), raw)).slice(0, 4);
  if (Array.from(id, (x) => x.toString(16).padStart(2, '0')).join('') !== idHex) throw new Error('the verifier key id does not match its key');
  const key = await subtle().importKey('raw', raw.slice(1), { name: 'Ed25519' }, false, ['verify']);
  for (const s of c.signatures) {
    if (s.name !== name || s.bytes.length !== 68 || !equal(s.bytes.slice(0, 4), id)) continue;
    if (await subtle().verify({ name: 'Ed25519' }, key, s.bytes.slice(4), new TextEncoder().encode(c.text))) return true;
  }
  return false;
}

/**
 * The whole check: the checkpoint's signature by `vkey`, then the record's inclusion in the tree
 * that checkpoint names. Never throws: a failure is a verdict with its reason.
 */
export async function verifyRecordInclusion(p: {
  readonly seq: number;
  readonly size: number;
  readonly canonical: Uint8Array;
  readonly proof: readonly Uint8Array[];
  readonly checkpoint: string;
  readonly verifierKey: string;
}): Promise<Verdict> {
  try {
    const c = parseCheckpointNote(p.checkpoint);
    if (c.size !== p.size) return { ok: false, reason: `the proof is for a tree of ${p.size} records, the checkpoint for ${c.size}` };
    const signed = await verifyNoteSignature(c, p.verifierKey);
    if (!signed) return { ok: false, reason: 'the checkpoint is not signed by the audit key' };
    const root = await rootFromInclusionProof(p.seq, p.size, p.canonical, p.proof);
    if (!equal(root, c.root)) return { ok: false, reason: 'the proof leads to another root than the checkpoint signs: the record or the proof was altered' };
    return { ok: true, size: c.size, root: b64encode(root), origin: c.origin, signed };
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
}
