/**
 * A TPM in software for the agent side of the `tpm` evidence type (src/attestation/tpm/attestor.ts,
 * measure.ts): the commands TpmAttestor and measureAgent send, answered with keys, quotes and
 * certifications made as a TPM makes them (test/helpers/soft-tpm.ts) and ActivateCredential done
 * with the EK's private key. Primaries are deterministic per hierarchy and template, as in a
 * TPM. TPM2_Sign is answered by a test-given function: the fake sees only the digest, and
 * Node's crypto signs messages, not digests.
 */
import { createHash } from 'node:crypto';
import { TpmError } from '../../src/errors.js';
import type { Tpm } from '../../src/tpm/client.js';
import { HASHES, TPM_ALG, TPM_ECC, TPM_ST } from '../../src/tpm/constants.js';
import { marshalPublic, objectName, type PcrSelection, type PublicTemplate, type TpmPublic, type TpmSignature } from '../../src/tpm/structures.js';
import { pcrDigest } from '../../src/attestation/tpm/quote.js';
import { activate, attest, softKey, tpmSign, type SoftKey } from '../helpers/soft-tpm.js';

const PCR_COUNT = 24;

export class SoftTpmDevice {
  /** Handles flushed, in order. */
  readonly flushed: number[] = [];
  /** Commands received, by name, in order. */
  readonly calls: string[] = [];
  readonly pcrs: Buffer[] = Array.from({ length: PCR_COUNT }, (_, i) => (i < 8 ? createHash('sha256').update(`boot ${i}`).digest() : Buffer.alloc(32)));
  /** NV indices (the EK certificate). */
  readonly nv = new Map<number, Buffer>();
  /** Persistent objects by handle (a persistent EK). */
  readonly persistent = new Map<number, SoftKey>();
  /** What TPM2_Sign answers for a digest with a loaded key. */
  onSign: (key: SoftKey, digest: Buffer) => TpmSignature = () => {
    throw new TpmError('ERR_TPM_COMMAND', 'tpm: sign not scripted');
  };
  counters = { resetCount: 1, restartCount: 0, clock: 5000n };

  private readonly primaries = new Map<string, SoftKey>();
  private readonly blobs = new Map<string, SoftKey>();
  private readonly loaded = new Map<number, SoftKey>();
  private next = 0x80000000;

  /** The fake as the Tpm the attestor takes (it uses only the commands implemented here). */
  get tpm(): Tpm {
    return this as unknown as Tpm;
  }

  private key(template: PublicTemplate): SoftKey {
    const curve = template.type === TPM_ALG.ECC && (template as { curve?: number }).curve === TPM_ECC.NIST_P384 ? 'secp384r1' : 'prime256v1';
    return softKey(template, {}, curve, (template as { keyBits?: number }).keyBits ?? 2048);
  }

  private handleFor(k: SoftKey): number {
    const h = this.next++;
    this.loaded.set(h, k);
    return h;
  }

  private object(handle: number): SoftKey {
    const k = this.loaded.get(handle) ?? this.persistent.get(handle);
    if (!k) throw new TpmError('ERR_TPM_COMMAND', `tpm: handle 0x${handle.toString(16)} is not loaded`);
    return k;
  }

  /** The key of the primary made from `template` under `hierarchy` (the same every time, as in a TPM). */
  primary(hierarchy: number, template: PublicTemplate): SoftKey {
    const id = `${hierarchy}:${marshalPublic(template).toString('hex')}`;
    let k = this.primaries.get(id);
    if (!k) {
      k = this.key(template);
      this.primaries.set(id, k);
    }
    return k;
  }

  async createPrimary(hierarchy: number, template: PublicTemplate): Promise<{ handle: number; public: TpmPublic; name: Buffer }> {
    this.calls.push('createPrimary');
    const k = this.primary(hierarchy, template);
    return { handle: this.handleFor(k), public: k.pub, name: objectName(k.pub) };
  }

  async create(_parent: number, template: PublicTemplate): Promise<{ private: Buffer; public: TpmPublic }> {
    this.calls.push('create');
    const k = this.key(template);
    const priv = createHash('sha256').update(k.pub.bytes).digest();
    this.blobs.set(priv.toString('hex'), k);
    return { private: priv, public: k.pub };
  }

  async load(_parent: number, priv: Buffer, pub: TpmPublic): Promise<{ handle: number; name: Buffer }> {
    this.calls.push('load');
    const k = this.blobs.get(priv.toString('hex'));
    if (!k?.pub.bytes.equals(pub.bytes)) throw new TpmError('ERR_TPM_COMMAND', 'tpm: the blob is not this TPM’s');
    return { handle: this.handleFor(k), name: objectName(k.pub) };
  }

  async readPublic(handle: number): Promise<{ public: TpmPublic; name: Buffer }> {
    this.calls.push('readPublic');
    const k = this.persistent.get(handle);
    if (!k) throw new TpmError('ERR_TPM_COMMAND', 'tpm: TPM_RC_HANDLE');
    return { public: k.pub, name: objectName(k.pub) };
  }

  async flush(handle: number): Promise<void> {
    this.calls.push('flush');
    this.flushed.push(handle);
    this.loaded.delete(handle);
  }

  async nvRead(index: number): Promise<Buffer> {
    this.calls.push('nvRead');
    const v = this.nv.get(index);
    if (!v) throw new TpmError('ERR_TPM_COMMAND', 'tpm: no such NV index');
    return v;
  }

  async pcrRead(sel: readonly PcrSelection[]): Promise<Map<number, Map<number, Buffer>>> {
    this.calls.push('pcrRead');
    return new Map(sel.map((b) => [b.hash, new Map(b.pcrs.map((p) => [p, Buffer.from(this.pcrs[p]!)]))]));
  }

  async pcrExtend(pcr: number, hash: number, digest: Buffer): Promise<void> {
    this.calls.push('pcrExtend');
    if (hash !== TPM_ALG.SHA256 || digest.length !== HASHES.get(hash)!.size) throw new RangeError('the fake has a sha256 bank only');
    this.pcrs[pcr] = createHash('sha256').update(this.pcrs[pcr]!).update(digest).digest();
  }

  async pcrReset(pcr: number): Promise<void> {
    this.calls.push('pcrReset');
    this.pcrs[pcr] = Buffer.alloc(32);
  }

  async quote(akHandle: number, nonce: Buffer, sel: readonly PcrSelection[]): Promise<{ attest: Buffer; signature: Buffer }> {
    this.calls.push('quote');
    const k = this.object(akHandle);
    const values = new Map(sel.map((b) => [b.hash, new Map(b.pcrs.map((p) => [p, this.pcrs[p]!]))]));
    const a = attest(k, { nonce, sel: [...sel], digest: pcrDigest(k.pub.scheme.hashAlg!, sel, values), ...this.counters });
    return { attest: a, signature: tpmSign(k, a) };
  }

  async certify(objectHandle: number, akHandle: number, nonce: Buffer): Promise<{ attest: Buffer; signature: Buffer }> {
    this.calls.push('certify');
    const obj = this.object(objectHandle);
    const k = this.object(akHandle);
    const a = attest(k, { type: TPM_ST.ATTEST_CERTIFY, name: objectName(obj.pub), nonce, ...this.counters });
    return { attest: a, signature: tpmSign(k, a) };
  }

  async sign(keyHandle: number, digest: Buffer): Promise<TpmSignature> {
    this.calls.push('sign');
    return this.onSign(this.object(keyHandle), digest);
  }

  async activateCredential(akHandle: number, ekHandle: number, credentialBlob: Buffer, secret: Buffer): Promise<Buffer> {
    this.calls.push('activateCredential');
    const ak = this.object(akHandle);
    const ek = this.object(ekHandle);
    return activate(ek.pub, ek.key, objectName(ak.pub), credentialBlob, secret);
  }
}
