/**
 * A TPM 2.0 command client in TypeScript (Part 3 commands), used by the sidecar. No tpm2-tss:
 * commands are marshalled here and sent as raw bytes over a TpmTransport. Password sessions for
 * objects with empty auth; a policy session with PolicySecret(endorsement) for the EK.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { AttestationError, TpmError } from '../errors.js';
import { HASHES, TPM_ALG, TPM_CC, TPM_RC, TPM_RH, TPM_SE, TPM_ST, TPM_SU } from './constants.js';
import { TpmReader, TpmWriter } from './marshal.js';
import {
  marshalPcrSelection,
  marshalPublic,
  parsePublic,
  parseSignature,
  type PcrSelection,
  type PublicTemplate,
  type TpmPublic,
  type TpmSignature,
} from './structures.js';
import { openTransport, type TpmTransport } from './transport.js';

/** Retries of a command that answered with a transient code (RETRY, YIELDED, TESTING, ...). */
export const MAX_RETRIES = 10;
/** Largest NV read chunk (below every TPM's TPM_PT_NV_BUFFER_MAX). */
const NV_CHUNK = 512;

const ccName = new Map<number, string>(Object.entries(TPM_CC).map(([k, v]) => [v as number, k]));

/** A readable name for a TPM response code (Part 2 §6.6). */
export function describeRc(rc: number): string {
  if (rc === TPM_RC.LOCKOUT) return 'TPM_RC_LOCKOUT: the TPM is in dictionary-attack lockout; wait or reset the lockout (tpm2_dictionarylockout -c)';
  if (rc === TPM_RC.INITIALIZE) return 'TPM_RC_INITIALIZE: the TPM needs TPM2_Startup';
  if (rc & 0x80) {
    const n = (rc >> 8) & 0xf;
    const where = rc & 0x40 ? `parameter ${n}` : n & 0x8 ? `session ${n & 7}` : `handle ${n}`;
    const names: Record<number, string> = {
      0x01: 'ASYMMETRIC',
      0x02: 'ATTRIBUTES',
      0x03: 'HASH',
      0x04: 'VALUE',
      0x0b: 'HANDLE',
      0x0e: 'AUTH_FAIL',
      0x15: 'SIZE',
      0x18: 'SCHEME',
      0x1a: 'SIGNATURE',
      0x1d: 'POLICY_FAIL',
      0x1f: 'INTEGRITY',
      0x22: 'BAD_AUTH',
    };
    const code = rc & 0x3f;
    return `TPM_RC_${names[code] ?? `0x${code.toString(16)}`} (${where})`;
  }
  return `0x${rc.toString(16)}`;
}

const TRANSIENT = new Set<number>([TPM_RC.RETRY, TPM_RC.YIELDED, TPM_RC.TESTING, TPM_RC.NV_RATE, TPM_RC.CANCELED]);

/** An authorization for one handle in a command. */
type Auth = { kind: 'password' } | { kind: 'policy'; session: number };
const PASSWORD: Auth = { kind: 'password' };

function authArea(auths: readonly Auth[]): Buffer {
  const w = new TpmWriter();
  for (const a of auths) {
    // sessionHandle, nonceCaller (empty), attributes (continueSession for passwords), hmac (empty)
    if (a.kind === 'password') w.u32(TPM_RH.PW).u16(0).u8(0x01).u16(0);
    else w.u32(a.session).u16(0).u8(0x00).u16(0);
  }
  const body = w.done();
  return new TpmWriter().u32(body.length).bytes(body).done();
}

export interface Quote {
  /** TPMS_ATTEST bytes (the TPM2B contents). */
  readonly attest: Buffer;
  /** TPMT_SIGNATURE bytes. */
  readonly signature: Buffer;
}

export class Tpm {
  /** Wraps a transport (tests give a scripted one; `open` is the usual way in). */
  constructor(private readonly transport: TpmTransport) {}

  /** Opens `/dev/tpmrm0` or `swtpm:host=H,port=N`. */
  static async open(spec: string): Promise<Tpm> {
    return new Tpm(await openTransport(spec));
  }

  /** Sends one command; retries transient response codes; returns the response handles and parameters. */
  async command(
    cc: number,
    handles: readonly number[],
    auths: readonly Auth[] | null,
    params: Buffer,
    responseHandles = 0,
  ): Promise<{ handles: number[]; params: TpmReader }> {
    const tag = auths ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS;
    const body = new TpmWriter();
    for (const h of handles) body.u32(h);
    if (auths) body.bytes(authArea(auths));
    body.bytes(params);
    const b = body.done();
    const cmd = new TpmWriter()
      .u16(tag)
      .u32(10 + b.length)
      .u32(cc)
      .bytes(b)
      .done();
    for (let attempt = 0; ; attempt++) {
      const res = await this.transport.transmit(cmd);
      const r = new TpmReader(res, `${ccName.get(cc) ?? cc} response`);
      let rc: number;
      try {
        r.u16('tag');
        r.u32('size');
        rc = r.u32('responseCode');
      } catch (e) {
        throw new TpmError('ERR_TPM_TRANSPORT', `tpm: malformed response header`, 0, { cause: e });
      }
      if (rc !== TPM_RC.SUCCESS) {
        if (TRANSIENT.has(rc) && attempt < MAX_RETRIES) {
          await sleep(20 * (attempt + 1));
          continue;
        }
        throw new TpmError('ERR_TPM_COMMAND', `tpm: ${ccName.get(cc) ?? `command 0x${cc.toString(16)}`} failed: ${describeRc(rc)}`, rc);
      }
      try {
        const outHandles: number[] = [];
        for (let i = 0; i < responseHandles; i++) outHandles.push(r.u32('handle'));
        if (auths) {
          const size = r.u32('parameterSize');
          return { handles: outHandles, params: new TpmReader(Buffer.from(r.bytes(size, 'parameters')), `${ccName.get(cc)} parameters`) };
        }
        return { handles: outHandles, params: new TpmReader(Buffer.from(r.bytes(r.remaining, 'parameters')), `${ccName.get(cc)} parameters`) };
      } catch (e) {
        if (e instanceof AttestationError) throw new TpmError('ERR_TPM_TRANSPORT', `tpm: malformed ${ccName.get(cc)} response: ${e.message}`, 0, { cause: e });
        throw e;
      }
    }
  }

  async startup(clear = true): Promise<void> {
    try {
      await this.command(TPM_CC.Startup, [], null, new TpmWriter().u16(clear ? TPM_SU.CLEAR : TPM_SU.STATE).done());
    } catch (e) {
      // TPM_RC_INITIALIZE after startup means "already started": fine.
      if (!(e instanceof TpmError && e.rc === TPM_RC.INITIALIZE)) throw e;
    }
  }

  /** TPM2_Shutdown(CLEAR): always before stopping a simulator, or the DA lockout counts it. */
  async shutdown(): Promise<void> {
    await this.command(TPM_CC.Shutdown, [], null, new TpmWriter().u16(TPM_SU.CLEAR).done());
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  async createPrimary(hierarchy: number, template: PublicTemplate): Promise<{ handle: number; public: TpmPublic; name: Buffer }> {
    const params = new TpmWriter()
      .tpm2b(new TpmWriter().tpm2b(Buffer.alloc(0)).tpm2b(Buffer.alloc(0)).done()) // inSensitive: empty auth, no data
      .tpm2b(marshalPublic(template))
      .tpm2b(Buffer.alloc(0)) // outsideInfo
      .u32(0) // creationPCR: none
      .done();
    const { handles, params: r } = await this.command(TPM_CC.CreatePrimary, [hierarchy], [PASSWORD], params, 1);
    const pub = parsePublic(Buffer.from(r.tpm2b('outPublic', 2048)));
    r.tpm2b('creationData', 4096);
    r.tpm2b('creationHash', 64);
    r.u16('creationTicket.tag');
    r.u32('creationTicket.hierarchy');
    r.tpm2b('creationTicket.digest', 64);
    const name = Buffer.from(r.tpm2b('name', 66));
    return { handle: handles[0]!, public: pub, name };
  }

  /** TPM2_Create under `parent` (empty auth); returns the private blob and public area. */
  async create(parent: number, template: PublicTemplate): Promise<{ private: Buffer; public: TpmPublic }> {
    const params = new TpmWriter()
      .tpm2b(new TpmWriter().tpm2b(Buffer.alloc(0)).tpm2b(Buffer.alloc(0)).done())
      .tpm2b(marshalPublic(template))
      .tpm2b(Buffer.alloc(0))
      .u32(0)
      .done();
    const { params: r } = await this.command(TPM_CC.Create, [parent], [PASSWORD], params);
    const priv = Buffer.from(r.tpm2b('outPrivate', 4096));
    const pub = parsePublic(Buffer.from(r.tpm2b('outPublic', 2048)));
    return { private: priv, public: pub };
  }

  /** TPM2_Load of a blob made by `create` under the same parent. */
  async load(parent: number, priv: Buffer, pub: TpmPublic): Promise<{ handle: number; name: Buffer }> {
    const params = new TpmWriter().tpm2b(priv).tpm2b(pub.bytes).done();
    const { handles, params: r } = await this.command(TPM_CC.Load, [parent], [PASSWORD], params, 1);
    return { handle: handles[0]!, name: Buffer.from(r.tpm2b('name', 66)) };
  }

  async readPublic(handle: number): Promise<{ public: TpmPublic; name: Buffer }> {
    const { params: r } = await this.command(TPM_CC.ReadPublic, [handle], null, Buffer.alloc(0));
    const pub = parsePublic(Buffer.from(r.tpm2b('outPublic', 2048)));
    const name = Buffer.from(r.tpm2b('name', 66));
    return { public: pub, name };
  }

  async flush(handle: number): Promise<void> {
    await this.command(TPM_CC.FlushContext, [], null, new TpmWriter().u32(handle).done());
  }

  /** Reads a whole NV index (e.g. the EK certificate). */
  async nvRead(index: number): Promise<Buffer> {
    const { params: pr } = await this.command(TPM_CC.NV_ReadPublic, [index], null, Buffer.alloc(0));
    const pub = new TpmReader(Buffer.from(pr.tpm2b('nvPublic', 1024)), 'TPMS_NV_PUBLIC');
    pub.u32('nvIndex');
    pub.u16('nameAlg');
    pub.u32('attributes');
    pub.tpm2b('authPolicy', 64);
    const size = pub.u16('dataSize');
    const out: Buffer[] = [];
    for (let off = 0; off < size; off += NV_CHUNK) {
      const n = Math.min(NV_CHUNK, size - off);
      const { params: r } = await this.command(TPM_CC.NV_Read, [index, index], [PASSWORD], new TpmWriter().u16(n).u16(off).done());
      out.push(Buffer.from(r.tpm2b('data', NV_CHUNK)));
    }
    return Buffer.concat(out);
  }

  /** Reads PCR values; returns them by bank and index. */
  async pcrRead(sel: readonly PcrSelection[]): Promise<Map<number, Map<number, Buffer>>> {
    const out = new Map<number, Map<number, Buffer>>();
    for (const bank of sel) {
      const values = new Map<number, Buffer>();
      let todo = [...bank.pcrs];
      while (todo.length) {
        const { params: r } = await this.command(TPM_CC.PCR_Read, [], null, marshalPcrSelection([{ hash: bank.hash, pcrs: todo }]));
        r.u32('pcrUpdateCounter');
        const count = r.u32('pcrSelectionOut.count');
        const got: number[] = [];
        for (let i = 0; i < count; i++) {
          r.u16('hash');
          const n = r.u8('sizeofSelect');
          const bits = r.bytes(n, 'bitmap');
          for (let p = 0; p < n * 8; p++) if (bits[p >> 3]! & (1 << (p & 7))) got.push(p);
        }
        const digests = r.u32('pcrValues.count');
        if (digests !== got.length || got.length === 0) throw new TpmError('ERR_TPM_COMMAND', 'tpm: PCR_Read returned no values (is the bank active?)');
        for (const p of got) values.set(p, Buffer.from(r.tpm2b('digest', 64)));
        todo = todo.filter((p) => !values.has(p));
      }
      out.set(bank.hash, values);
    }
    return out;
  }

  /** Extends a PCR in one bank with a digest of that bank's hash. */
  async pcrExtend(pcr: number, hash: number, digest: Buffer): Promise<void> {
    const size = HASHES.get(hash)?.size;
    if (digest.length !== size) throw new RangeError(`digest of ${digest.length} bytes for a ${size}-byte bank`);
    await this.command(TPM_CC.PCR_Extend, [pcr], [PASSWORD], new TpmWriter().u32(1).u16(hash).bytes(digest).done());
  }

  /** Resets a resettable PCR (16 and 23 at locality 0 on PC-client TPMs). */
  async pcrReset(pcr: number): Promise<void> {
    await this.command(TPM_CC.PCR_Reset, [pcr], [PASSWORD], Buffer.alloc(0));
  }

  /** TPM2_Quote with the key's own scheme over a PCR selection and caller-given qualifying data. */
  async quote(akHandle: number, qualifyingData: Buffer, sel: readonly PcrSelection[]): Promise<Quote> {
    const params = new TpmWriter().tpm2b(qualifyingData).u16(TPM_ALG.NULL).bytes(marshalPcrSelection(sel)).done();
    const { params: r } = await this.command(TPM_CC.Quote, [akHandle], [PASSWORD], params);
    const attest = Buffer.from(r.tpm2b('quoted', 2048));
    const signature = Buffer.from(r.bytes(r.remaining, 'signature'));
    return { attest, signature };
  }

  /** TPM2_Certify: `signHandle` (the AK) attests that `objectHandle` is loaded in this TPM. */
  async certify(objectHandle: number, akHandle: number, qualifyingData: Buffer): Promise<Quote> {
    const params = new TpmWriter().tpm2b(qualifyingData).u16(TPM_ALG.NULL).done();
    const { params: r } = await this.command(TPM_CC.Certify, [objectHandle, akHandle], [PASSWORD, PASSWORD], params);
    const attest = Buffer.from(r.tpm2b('certifyInfo', 2048));
    const signature = Buffer.from(r.bytes(r.remaining, 'signature'));
    return { attest, signature };
  }

  /**
   * TPM2_Sign with the key's own scheme over a digest the caller computed. The NULL hash-check
   * ticket is enough for an unrestricted signing key (TPM 2.0 Part 3 §20.2).
   */
  async sign(keyHandle: number, digest: Buffer): Promise<TpmSignature> {
    const params = new TpmWriter().tpm2b(digest).u16(TPM_ALG.NULL).u16(TPM_ST.HASHCHECK).u32(TPM_RH.NULL).u16(0).done();
    const { params: r } = await this.command(TPM_CC.Sign, [keyHandle], [PASSWORD], params);
    return parseSignature(Buffer.from(r.bytes(r.remaining, 'signature')));
  }

  /** A policy session that satisfies the TCG EK policy: PolicySecret(TPM_RH_ENDORSEMENT). */
  async ekPolicySession(): Promise<number> {
    const params = new TpmWriter().tpm2b(randomBytes(32)).tpm2b(Buffer.alloc(0)).u8(TPM_SE.POLICY).u16(TPM_ALG.NULL).u16(TPM_ALG.SHA256).done();
    const { handles } = await this.command(TPM_CC.StartAuthSession, [TPM_RH.NULL, TPM_RH.NULL], null, params, 1);
    const session = handles[0]!;
    try {
      const ps = new TpmWriter().tpm2b(Buffer.alloc(0)).tpm2b(Buffer.alloc(0)).tpm2b(Buffer.alloc(0)).i32(0).done();
      await this.command(TPM_CC.PolicySecret, [TPM_RH.ENDORSEMENT, session], [PASSWORD], ps);
    } catch (e) {
      await this.flush(session).catch(() => undefined);
      throw e;
    }
    return session;
  }

  /**
   * TPM2_ActivateCredential: recovers the secret the verifier bound to (EK, AK Name). The EK
   * is authorised by a fresh PolicySecret session, which the TPM flushes after use.
   */
  async activateCredential(akHandle: number, ekHandle: number, credentialBlob: Buffer, secret: Buffer, ekUserWithAuth = false): Promise<Buffer> {
    const params = new TpmWriter().tpm2b(credentialBlob).tpm2b(secret).done();
    // High-range EK templates set userWithAuth (empty password); the low-range ones need the policy.
    if (ekUserWithAuth) {
      const { params: r } = await this.command(TPM_CC.ActivateCredential, [akHandle, ekHandle], [PASSWORD, PASSWORD], params);
      return Buffer.from(r.tpm2b('certInfo', 64));
    }
    const session = await this.ekPolicySession();
    try {
      const { params: r } = await this.command(TPM_CC.ActivateCredential, [akHandle, ekHandle], [PASSWORD, { kind: 'policy', session }], params);
      return Buffer.from(r.tpm2b('certInfo', 64));
    } catch (e) {
      await this.flush(session).catch(() => undefined);
      throw e;
    }
  }

  /** LoadExternal of a public key (used only by tests: a "software AK" must be refused). */
  async loadExternalPublic(pub: PublicTemplate, hierarchy: number = TPM_RH.OWNER): Promise<number> {
    const params = new TpmWriter().u16(0).tpm2b(marshalPublic(pub)).u32(hierarchy).done();
    const { handles } = await this.command(TPM_CC.LoadExternal, [], null, params, 1);
    return handles[0]!;
  }
}
