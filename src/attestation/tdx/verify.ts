/**
 * Verification of a TDX quote (Intel DCAP ECDSA quote verification, without the QVL): the quote
 * signature by the attestation key over header ‖ body, the QE report signed by the PCK key, the
 * QE report data binding the attestation key and QE auth data, the PCK chain to a pinned Intel
 * SGX root, then platform policy (debug TDs refused unless allowed; the TCB status from Intel
 * collateral, or refused as "not evaluated" unless the operator accepts that) and the report
 * data the caller expects. Every check made is listed in the result, in the order made.
 */
import { createHash, createPublicKey, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import { BoundedCache } from '../../cache/bounded.js';
import type { Selector } from '../../registration/entry.js';
import { TdxError } from './errors.js';
import { verifyPckChain, verifyPckChainCached, type PckChainCache, type PckInfo } from './pck.js';
import { parseTdxQuote, type TdxQuote } from './quote.js';

/** TD attribute bit 0 (TUD.DEBUG): the host can read and change the TD's memory and state. */
export const TD_ATTRIBUTE_DEBUG = 1n << 0n;
/** TD attribute bit 28: SEPT #VE disabled (reported, not enforced here). */
export const TD_ATTRIBUTE_SEPT_VE_DISABLE = 1n << 28n;

export const TDX_TYPE = 'tdx';

/** The TCB status the collateral evaluation gave, or why there is none. */
export type TcbVerdict =
  | { readonly evaluated: true; readonly status: string; readonly advisories: readonly string[] }
  | { readonly evaluated: false; readonly why: string };

/** Evaluates the platform's TCB from Intel collateral (collateral.ts); absent when none was supplied. */
export type TcbEvaluator = (q: TdxQuote, pck: PckInfo, at: Date) => TcbVerdict;

export interface TdxPolicy {
  /** Accept TDs with the DEBUG attribute (never in production). */
  readonly allowDebug: boolean;
  /** Accept a quote whose TCB could not be evaluated (no collateral supplied). */
  readonly allowUnevaluatedTcb: boolean;
  /** TCB statuses accepted when evaluated (default: UpToDate). */
  readonly acceptedTcbStatuses: readonly string[];
}

export const DEFAULT_ACCEPTED_TCB_STATUSES: readonly string[] = ['UpToDate'];

export interface VerifyTdxOptions {
  /** Trust anchors (DER), recognised by key: the Intel SGX Root CA by default. */
  readonly anchors: readonly Buffer[];
  readonly at: Date;
  readonly policy: TdxPolicy;
  /** When given, the 64 report data bytes must equal it exactly. */
  readonly reportData?: Buffer;
  readonly tcb?: TcbEvaluator;
  /** Verified PCK chains to reuse (warm verifiers); the same anchors every call. */
  readonly pckCache?: PckChainCache;
  /** Checks are appended here as they pass, so a caller sees how far a refused quote got. */
  readonly progress?: string[];
}

export interface VerifiedTdxQuote {
  readonly quote: TdxQuote;
  readonly pck: PckInfo;
  readonly debug: boolean;
  readonly tcb: TcbVerdict;
  readonly selectors: readonly Selector[];
  /** The PPID selector: names the platform the quote came from. */
  readonly platform: string;
  /** Every check passed, in order. */
  readonly checks: readonly string[];
}

/**
 * Attestation keys imported before, by their raw bytes: importing a key costs more than verifying
 * with it, and a QE keeps its key across quotes. A pure function of the bytes, so sharing it
 * between verifiers is safe; bounded, so a flood of fresh keys only evicts.
 */
const AK_CACHE = new BoundedCache<string, KeyObject>(4096);

/** A P-256 public key from raw x‖y (the quote's attestation key). */
export function p256FromRaw(xy: Buffer): KeyObject {
  const id = xy.toString('hex');
  const hit = AK_CACHE.get(id);
  if (hit) return hit;
  let key: KeyObject;
  try {
    key = createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: xy.subarray(0, 32).toString('base64url'), y: xy.subarray(32, 64).toString('base64url') },
      format: 'jwk',
    });
  } catch {
    throw new TdxError('signature', 'the attestation key is not a point on P-256');
  }
  AK_CACHE.set(id, key);
  return key;
}

function es256(data: Buffer, key: KeyObject, rs: Buffer): boolean {
  try {
    return verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, rs);
  } catch {
    return false;
  }
}

const hex = (b: Buffer) => b.toString('hex');

/** The selectors a verified quote proves (documented in README.md). */
export function tdxSelectors(q: TdxQuote, pck: PckInfo, tcb: TcbVerdict): Selector[] {
  const s = (value: string): Selector => ({ type: TDX_TYPE, value });
  const b = q.body;
  return [
    s(`mrtd:${hex(b.mrTd)}`),
    ...b.rtmr.map((r, i) => s(`rtmr:${i}:${hex(r)}`)),
    s(`mrconfigid:${hex(b.mrConfigId)}`),
    s(`mrowner:${hex(b.mrOwner)}`),
    s(`mrownerconfig:${hex(b.mrOwnerConfig)}`),
    s(`mrseam:${hex(b.mrSeam)}`),
    s(`mrsignerseam:${hex(b.mrSignerSeam)}`),
    s(`td_attributes:${hex(b.tdAttributes)}`),
    s(`xfam:${hex(b.xfam)}`),
    s(`fmspc:${hex(pck.fmspc)}`),
    s(`ppid:${hex(pck.ppid)}`),
    ...(tcb.evaluated ? [s(`tcb_status:${tcb.status}`)] : []),
  ];
}

/** Parses and verifies `raw` (a quote, possibly zero-padded); throws TdxError with the failed check. */
export function verifyTdxQuote(raw: Uint8Array, o: VerifyTdxOptions): VerifiedTdxQuote {
  const q = parseTdxQuote(raw);
  const checks = o.progress ?? [];
  checks.push(
    `quote v${q.version} parsed strictly (${q.length} bytes${raw.length > q.length ? `, ${raw.length - q.length} bytes of zero padding` : ''}): ECDSA P-256, TDX, Intel QE, body type ${q.bodyType} (TDX ${q.bodyType === 3 ? '1.5' : '1.0'})`,
  );
  const ak = p256FromRaw(q.attestationKey);
  if (!es256(q.signed, ak, q.signature)) throw new TdxError('signature', 'the quote signature does not verify with the attestation key');
  checks.push('quote signature by the attestation key over header and TD report body');

  const pck = o.pckCache ? verifyPckChainCached(q.pckChainPem, o.anchors, o.at, o.pckCache) : verifyPckChain(q.pckChainPem, o.anchors, o.at);
  checks.push(`PCK certificate chain (${pck.caName}) to the pinned Intel SGX root ${pck.anchorSha256.slice(0, 16)}…, valid at ${o.at.toISOString()}`);

  if (!es256(q.qeReport.raw, pck.key, q.qeReportSignature)) throw new TdxError('signature', 'the QE report signature does not verify with the PCK key');
  checks.push('QE report signature by the PCK key');

  const expected = createHash('sha256').update(q.attestationKey).update(q.qeAuthData).digest();
  const rd = q.qeReport.reportData;
  if (!timingSafeEqual(rd.subarray(0, 32), expected) || rd.subarray(32).some((x) => x !== 0))
    throw new TdxError('qe', 'the QE report data is not SHA-256(attestation key ‖ QE auth data) followed by zeros');
  checks.push('QE report data binds the attestation key: SHA-256(attestation key ‖ QE auth data) ‖ 32 zero bytes');

  const attrs = q.body.tdAttributes.readBigUInt64LE(0);
  const debug = (attrs & TD_ATTRIBUTE_DEBUG) !== 0n;
  if (debug && !o.policy.allowDebug) throw new TdxError('policy', 'the TD is a debug TD (TD attribute DEBUG set); refused unless debug is allowed');
  checks.push(debug ? 'TD attribute DEBUG is set: accepted because debug TDs are allowed' : 'TD attribute DEBUG is clear');

  const tcb: TcbVerdict = o.tcb ? o.tcb(q, pck, o.at) : { evaluated: false, why: 'no Intel collateral (TCB info, QE identity, CRLs) was supplied' };
  if (tcb.evaluated) {
    if (!o.policy.acceptedTcbStatuses.includes(tcb.status))
      throw new TdxError('policy', `TCB status ${tcb.status} is not accepted (accepted: ${o.policy.acceptedTcbStatuses.join(', ')})`);
    checks.push(`TCB status ${tcb.status}${tcb.advisories.length ? ` (advisories ${tcb.advisories.join(', ')})` : ''} from Intel collateral`);
  } else {
    if (!o.policy.allowUnevaluatedTcb) throw new TdxError('policy', `TCB not evaluated: ${tcb.why}; refused unless unevaluated TCBs are accepted`);
    checks.push(`TCB not evaluated (${tcb.why}): accepted because unevaluated TCBs are allowed`);
  }

  if (o.reportData) {
    if (o.reportData.length !== 64 || !timingSafeEqual(q.body.reportData, o.reportData))
      throw new TdxError('binding', 'the report data is not the expected value');
    checks.push('report data equals the expected value');
  }
  const selectors = tdxSelectors(q, pck, tcb);
  return { quote: q, pck, debug, tcb, selectors, platform: `${TDX_TYPE}:ppid:${hex(pck.ppid)}`, checks: [...checks] };
}

/** The report data a writ handshake puts in a TDX quote: the binding digest B, then 32 zero bytes. */
export function reportDataFor(binding: Buffer): Buffer {
  if (binding.length !== 32) throw new TdxError('binding', 'the binding digest must be 32 bytes');
  return Buffer.concat([binding, Buffer.alloc(32)]);
}
