/**
 * The sidecar's TPM side of the handshake: recreate the EK from its TCG template and read its
 * certificate, recreate the AK (a primary in the owner hierarchy: the same template always
 * yields the same key, so it persists without NV), quote the requested PCRs over the issuer's
 * nonce, and activate the credential on first contact.
 */
import { TpmError } from '../../errors.js';
import type { Tpm } from '../../tpm/client.js';
import { createHash } from 'node:crypto';
import { TPMA_OBJECT, TPM_ALG, TPM_RH } from '../../tpm/constants.js';
import type { JwsSigner } from '../../jose/jws.js';
import { encodeEvidence1, encodeEvidence2, parseChallenge1, parseChallenge2 } from '../../tpm/evidence.js';
import {
  akTemplate,
  marshalPublic,
  parsePcrSelectionSpec,
  parsePublic,
  publicKeyOf,
  residentKeyTemplate,
  srkTemplate,
  type PublicTemplate,
  type TpmPublic,
} from '../../tpm/structures.js';
import { EK_TEMPLATES, isInstanceOf } from '../../tpm/ek-templates.js';
import { measureAgent, type MeasureOptions } from './measure.js';

export interface TpmAttestorOptions {
  /** Which EK to use: the TCG RSA-2048 (L-1, default) or ECC P-384 (H-3) template. */
  readonly ek?: 'rsa2048' | 'ecc384';
  /** Always recreate the EK from its template, even when a persistent copy exists. */
  readonly recreateEk?: boolean;
  /** AK key type (default ECC P-256). */
  readonly ak?: 'ecc' | 'rsa';
  /** AK template override (tests use it to try keys the verifier must refuse). */
  readonly akTemplate?: PublicTemplate;
  /** Extra EK chain certificates to send (DER). */
  readonly ekIntermediates?: readonly Buffer[];
  /** Measure the agent's code into the application PCR and send the log. */
  readonly measure?: MeasureOptions;
  /** The firmware's TCG event log to send (e.g. /sys/kernel/security/tpm0/binary_bios_measurements). */
  readonly eventLog?: Buffer;
}

export class TpmAttestor {
  private ek?: { handle: number; public: TpmPublic; persistent: boolean };
  private ak?: { handle: number; public: TpmPublic };
  private residentKey?: { handle: number; public: TpmPublic };
  /** Evidence rounds answered so far (1 = known AK, 2 = activation happened). */
  rounds = 0;

  constructor(
    private readonly tpm: Tpm,
    private readonly opts: TpmAttestorOptions = {},
  ) {}

  /**
   * Creates the agent's SVID key inside the TPM (under the SRK, never exportable) and keeps it
   * loaded; the first evidence then carries TPM2_Certify of it by the AK. Returns its SPKI (for
   * the hello) and the blobs to reload it later with `loadResidentKey`.
   */
  async createResidentKey(): Promise<{ spki: Buffer; public: Buffer; private: Buffer }> {
    const srk = await this.tpm.createPrimary(TPM_RH.OWNER, srkTemplate());
    try {
      const made = await this.tpm.create(srk.handle, residentKeyTemplate());
      const loaded = await this.tpm.load(srk.handle, made.private, made.public);
      this.residentKey = { handle: loaded.handle, public: made.public };
      return { spki: publicKeyOf(made.public).export({ type: 'spki', format: 'der' }), public: made.public.bytes, private: made.private };
    } finally {
      // Children stay loaded when their parent is flushed; this frees an object slot.
      await this.tpm.flush(srk.handle);
    }
  }

  /** Reloads a resident key made by `createResidentKey` (the SRK is a primary: recreated alike). */
  async loadResidentKey(pub: Buffer, priv: Buffer): Promise<Buffer> {
    const publicArea = parsePublic(pub);
    const srk = await this.tpm.createPrimary(TPM_RH.OWNER, srkTemplate());
    try {
      const loaded = await this.tpm.load(srk.handle, priv, publicArea);
      this.residentKey = { handle: loaded.handle, public: publicArea };
      return publicKeyOf(publicArea).export({ type: 'spki', format: 'der' });
    } finally {
      await this.tpm.flush(srk.handle);
    }
  }

  /**
   * A JWS signer over the loaded TPM-resident key (ES256 by TPM2_Sign): proofs of possession and
   * hop grants for a writ whose key never leaves the TPM.
   */
  residentSigner(): JwsSigner {
    const k = this.residentKey;
    if (!k) throw new TpmError('ERR_TPM_COMMAND', 'tpm: no resident key is loaded (createResidentKey or loadResidentKey first)');
    const tpm = this.tpm;
    return {
      alg: 'ES256',
      publicKey: publicKeyOf(k.public),
      async sign(input) {
        const sig = await tpm.sign(k.handle, createHash('sha256').update(input).digest());
        if (sig.sigAlg !== TPM_ALG.ECDSA || !sig.r || !sig.s || sig.r.length > 32 || sig.s.length > 32)
          throw new TpmError('ERR_TPM_COMMAND', 'tpm: the resident key did not return a P-256 ECDSA signature');
        // IEEE P1363: r and s, each left-padded to the curve size.
        return Buffer.concat([Buffer.alloc(32 - sig.r.length), sig.r, Buffer.alloc(32 - sig.s.length), sig.s]);
      },
    };
  }

  /**
   * The EK this attestor would present and its hash: SHA-256 of its SubjectPublicKeyInfo, hex,
   * the value of the `tpm:ek_hash:` selector (`writ tpm ek-hash`).
   */
  async endorsementKey(): Promise<{ spki: Buffer; ekHash: string }> {
    const which = EK_TEMPLATES.find((t) => t.name === (this.opts.ek ?? 'rsa2048'))!;
    this.ek ??= await this.loadEk(which);
    const spki = publicKeyOf(this.ek.public).export({ type: 'spki', format: 'der' });
    return { spki, ekHash: createHash('sha256').update(spki).digest('hex') };
  }

  /** Answers one challenge of the `tpm` evidence type. */
  async respond(challenge: { nonce: Uint8Array; payload: Uint8Array }): Promise<Buffer> {
    this.rounds++;
    if (this.rounds === 1) return this.firstEvidence(Buffer.from(challenge.nonce), Buffer.from(challenge.payload));
    const { credentialBlob, secret } = parseChallenge2(challenge.payload);
    if (!this.ek || !this.ak) throw new TpmError('ERR_TPM_COMMAND', 'tpm: activation challenge before the first evidence');
    const userWithAuth = (this.ek.public.attributes & TPMA_OBJECT.userWithAuth) !== 0;
    const recovered = await this.tpm.activateCredential(this.ak.handle, this.ek.handle, credentialBlob, secret, userWithAuth);
    return encodeEvidence2(recovered);
  }

  private async firstEvidence(nonce: Buffer, payload: Buffer): Promise<Buffer> {
    const { pcrSelection } = parseChallenge1(payload);
    const selection = parsePcrSelectionSpec(pcrSelection);
    const which = EK_TEMPLATES.find((t) => t.name === (this.opts.ek ?? 'rsa2048'))!;
    const ekCertificate = await this.tpm.nvRead(which.nvIndex);
    this.ek ??= await this.loadEk(which);
    this.ak = await this.tpm.createPrimary(TPM_RH.OWNER, this.opts.akTemplate ?? akTemplate(this.opts.ak ?? 'ecc'));
    // Measure before reading and quoting, so the quote covers the measurement.
    const appLog = this.opts.measure ? (await measureAgent(this.tpm, this.opts.measure)).log : undefined;
    const pcrs = await this.tpm.pcrRead(selection);
    const quote = await this.tpm.quote(this.ak.handle, nonce, selection);
    const certify = this.residentKey ? await this.tpm.certify(this.residentKey.handle, this.ak.handle, nonce) : undefined;
    return encodeEvidence1({
      ekPublic: marshalPublic(this.ek.public),
      ekCertificate,
      ekIntermediates: [...(this.opts.ekIntermediates ?? [])],
      akPublic: marshalPublic(this.ak.public),
      attest: quote.attest,
      signature: quote.signature,
      pcrs,
      ...(appLog ? { appLog } : {}),
      ...(this.opts.eventLog ? { eventLog: this.opts.eventLog } : {}),
      ...(certify && this.residentKey ? { certify: { public: this.residentKey.public.bytes, attest: certify.attest, signature: certify.signature } } : {}),
    });
  }

  /**
   * The EK: the persistent copy at its TCG handle when it is an instance of the template (most
   * TPMs keep one; recreating an RSA EK costs a key generation), else recreated from the template.
   */
  private async loadEk(which: (typeof EK_TEMPLATES)[number]): Promise<{ handle: number; public: TpmPublic; persistent: boolean }> {
    const persisted = this.opts.recreateEk
      ? undefined
      : await this.tpm.readPublic(which.persistentHandle).catch((e: unknown) => {
          if (e instanceof TpmError && e.code === 'ERR_TPM_COMMAND') return undefined; // no such handle
          throw e;
        });
    if (persisted && isInstanceOf(persisted.public, which.template)) return { handle: which.persistentHandle, public: persisted.public, persistent: true };
    return { ...(await this.tpm.createPrimary(TPM_RH.ENDORSEMENT, which.template)), persistent: false };
  }

  /**
   * Ends the handshake answered so far and readies another on this connection: its AK is flushed
   * (the next first evidence recreates it, the same key: a primary), the EK and the resident key
   * stay loaded, so a handshake needs no more object slots than the first did.
   */
  async restart(): Promise<void> {
    if (this.ak) await this.tpm.flush(this.ak.handle);
    this.ak = undefined;
    this.rounds = 0;
  }

  /** Flushes the transient EK, AK and resident key (never a persistent EK). */
  async close(): Promise<void> {
    const ek = this.ek && !this.ek.persistent ? this.ek.handle : undefined;
    for (const h of [this.ak?.handle, ek, this.residentKey?.handle]) if (h !== undefined) await this.tpm.flush(h).catch(() => undefined);
    this.ak = this.ek = this.residentKey = undefined;
  }
}
