/**
 * Strict parsing of Intel TDX quotes, versions 4 and 5 (Intel TDX DCAP Quote Generation Library
 * and Quote Verification Library API, appendix "Quote Format"; the same offsets as go-tdx-guest
 * `abi`). UNTRUSTED input: every length is checked against the bytes that are there and against
 * named bounds, every nested size must add up exactly, and nothing is read past the quote.
 *
 * ```
 * v4: header(48) ‖ TD report body(584)                      ‖ u32 sigLen ‖ signature data
 * v5: header(48) ‖ u16 bodyType ‖ u32 bodySize ‖ body(584|648) ‖ u32 sigLen ‖ signature data
 * signature data: quoteSig(64, r‖s) ‖ attestationKey(64, x‖y) ‖ certification data
 * certification data: u16 type(6) ‖ u32 size ‖ QE report(384) ‖ QE report sig(64) ‖
 *                     u16 authSize ‖ auth data ‖ u16 type(5) ‖ u32 size ‖ PCK chain (PEM)
 * ```
 * Integers are little-endian. The quote signature covers every byte before `sigLen`. Real quotes
 * arrive zero-padded to a fixed buffer: zero bytes after the quote are accepted, anything else
 * is refused.
 */
import { TdxError } from './errors.js';

/** Largest quote buffer accepted, padding included: the kernel's configfs-tsm outblob limit. */
export const MAX_TDX_QUOTE_BYTES = 32 * 1024;
/** Largest QE authentication data (Intel's QE writes 32 bytes). */
export const MAX_QE_AUTH_DATA_BYTES = 1024;
/** Largest PCK certificate chain (three PEM certificates are about 3.7 KB). */
export const MAX_PCK_CHAIN_BYTES = 16 * 1024;

export const QUOTE_HEADER_BYTES = 48;
export const TD_REPORT_BODY_V10_BYTES = 584;
export const TD_REPORT_BODY_V15_BYTES = 648;
export const QE_REPORT_BYTES = 384;
/** Attestation key type 2: ECDSA-256 with P-256. */
export const ATTESTATION_KEY_TYPE_ECDSA_P256 = 2;
/** TEE type of TDX in the quote header. */
export const TEE_TYPE_TDX = 0x81;
/** Intel's QE vendor ID. */
export const INTEL_QE_VENDOR_ID = Buffer.from('939a7233f79c4ca9940a0db3957f0607', 'hex');
/** Body types of a v5 quote: 2 = TDX 1.0 report, 3 = TDX 1.5 report (1 is SGX, refused here). */
export const BODY_TYPE_TDX10 = 2;
export const BODY_TYPE_TDX15 = 3;
/** Certification data types (Intel PCK cert chain = 5, QE report certification data = 6). */
export const CERT_DATA_PCK_CHAIN = 5;
export const CERT_DATA_QE_REPORT = 6;

/** The TD report body (TDX 1.0 fields; `teeTcbSvn2` and `mrServiceTd` only in TDX 1.5 bodies). */
export interface TdReportBody {
  readonly teeTcbSvn: Buffer;
  readonly mrSeam: Buffer;
  readonly mrSignerSeam: Buffer;
  readonly seamAttributes: Buffer;
  readonly tdAttributes: Buffer;
  readonly xfam: Buffer;
  readonly mrTd: Buffer;
  readonly mrConfigId: Buffer;
  readonly mrOwner: Buffer;
  readonly mrOwnerConfig: Buffer;
  readonly rtmr: readonly [Buffer, Buffer, Buffer, Buffer];
  readonly reportData: Buffer;
  readonly teeTcbSvn2?: Buffer;
  readonly mrServiceTd?: Buffer;
}

/** The QE's SGX report body (SGX `sgx_report_body_t`, 384 bytes). */
export interface QeReport {
  readonly raw: Buffer;
  readonly cpuSvn: Buffer;
  readonly miscSelect: number;
  readonly attributes: Buffer;
  readonly mrEnclave: Buffer;
  readonly mrSigner: Buffer;
  readonly isvProdId: number;
  readonly isvSvn: number;
  readonly reportData: Buffer;
}

export interface TdxQuote {
  readonly version: 4 | 5;
  /** 2 (TDX 1.0) or 3 (TDX 1.5); a v4 quote always carries a TDX 1.0 body. */
  readonly bodyType: 2 | 3;
  readonly header: {
    readonly attestationKeyType: number;
    readonly teeType: number;
    readonly qeSvn: number;
    readonly pceSvn: number;
    readonly qeVendorId: Buffer;
    readonly userData: Buffer;
  };
  readonly body: TdReportBody;
  /** The bytes the attestation key signed: header through body. */
  readonly signed: Buffer;
  /** ECDSA P-256 r‖s, 64 bytes. */
  readonly signature: Buffer;
  /** The attestation key as raw x‖y, 64 bytes. */
  readonly attestationKey: Buffer;
  readonly qeReport: QeReport;
  /** ECDSA P-256 r‖s by the PCK key over `qeReport.raw`. */
  readonly qeReportSignature: Buffer;
  readonly qeAuthData: Buffer;
  /** The PCK certificate chain exactly as embedded (PEM text, possibly NUL-terminated). */
  readonly pckChainPem: Buffer;
  /** Length of the quote itself; the rest of the input was zero padding. */
  readonly length: number;
}

const bad = (msg: string): never => {
  throw new TdxError('format', `quote: ${msg}`);
};

/** A bounds-checked little-endian cursor. */
class Cursor {
  off = 0;
  constructor(
    private readonly b: Buffer,
    private readonly limit: number,
  ) {}
  bytes(n: number, what: string): Buffer {
    if (n < 0 || this.off + n > this.limit) bad(`truncated in ${what}`);
    const out = this.b.subarray(this.off, this.off + n);
    this.off += n;
    return out;
  }
  u16(what: string): number {
    return this.bytes(2, what).readUInt16LE(0);
  }
  u32(what: string): number {
    return this.bytes(4, what).readUInt32LE(0);
  }
}

function parseBody(b: Buffer, type: 2 | 3): TdReportBody {
  const f = (off: number, n: number) => b.subarray(off, off + n);
  return {
    teeTcbSvn: f(0, 16),
    mrSeam: f(16, 48),
    mrSignerSeam: f(64, 48),
    seamAttributes: f(112, 8),
    tdAttributes: f(120, 8),
    xfam: f(128, 8),
    mrTd: f(136, 48),
    mrConfigId: f(184, 48),
    mrOwner: f(232, 48),
    mrOwnerConfig: f(280, 48),
    rtmr: [f(328, 48), f(376, 48), f(424, 48), f(472, 48)],
    reportData: f(520, 64),
    ...(type === BODY_TYPE_TDX15 ? { teeTcbSvn2: f(584, 16), mrServiceTd: f(600, 48) } : {}),
  };
}

/** Parses the 384-byte SGX report body of the quoting enclave. */
export function parseQeReport(raw: Buffer): QeReport {
  if (raw.length !== QE_REPORT_BYTES) bad(`QE report must be ${QE_REPORT_BYTES} bytes`);
  return {
    raw,
    cpuSvn: raw.subarray(0, 16),
    miscSelect: raw.readUInt32LE(16),
    attributes: raw.subarray(48, 64),
    mrEnclave: raw.subarray(64, 96),
    mrSigner: raw.subarray(128, 160),
    isvProdId: raw.readUInt16LE(256),
    isvSvn: raw.readUInt16LE(258),
    reportData: raw.subarray(320, 384),
  };
}

/**
 * Parses a TDX quote v4 or v5 with ECDSA P-256 attestation key and QE report certification data
 * (type 6 around type 5). Copies the input, so the result does not alias a caller's buffer.
 */
export function parseTdxQuote(input: Uint8Array): TdxQuote {
  if (input.length > MAX_TDX_QUOTE_BYTES) bad(`larger than ${MAX_TDX_QUOTE_BYTES} bytes`);
  const b = Buffer.from(input);
  const c = new Cursor(b, b.length);
  const version = c.u16('header');
  if (version !== 4 && version !== 5) bad(`version ${version} is not 4 or 5`);
  const attestationKeyType = c.u16('header');
  if (attestationKeyType !== ATTESTATION_KEY_TYPE_ECDSA_P256) bad(`attestation key type ${attestationKeyType} is not 2 (ECDSA P-256)`);
  const teeType = c.u32('header');
  if (teeType !== TEE_TYPE_TDX) bad(`TEE type 0x${teeType.toString(16)} is not TDX (0x81)`);
  const qeSvn = c.u16('header');
  const pceSvn = c.u16('header');
  const qeVendorId = c.bytes(16, 'header');
  if (!qeVendorId.equals(INTEL_QE_VENDOR_ID)) bad(`QE vendor ${qeVendorId.toString('hex')} is not Intel's`);
  const userData = c.bytes(20, 'header');

  let bodyType: 2 | 3 = BODY_TYPE_TDX10;
  let bodySize = TD_REPORT_BODY_V10_BYTES;
  if (version === 5) {
    const t = c.u16('body descriptor');
    const size = c.u32('body descriptor');
    if (t === BODY_TYPE_TDX10) bodySize = TD_REPORT_BODY_V10_BYTES;
    else if (t === BODY_TYPE_TDX15) bodySize = TD_REPORT_BODY_V15_BYTES;
    else bad(`body type ${t} is not a TD report (2 or 3)`);
    if (size !== bodySize) bad(`body type ${t} must be ${bodySize} bytes, not ${size}`);
    bodyType = t as 2 | 3;
  }
  const body = parseBody(c.bytes(bodySize, 'TD report body'), bodyType);
  const signed = b.subarray(0, c.off);

  const sigLen = c.u32('signature data length');
  const sigEnd = c.off + sigLen;
  if (sigEnd > b.length) bad(`signature data length ${sigLen} runs past the input`);
  const s = new Cursor(b, sigEnd);
  s.off = c.off;
  const signature = s.bytes(64, 'quote signature');
  const attestationKey = s.bytes(64, 'attestation key');
  const certType = s.u16('certification data');
  if (certType !== CERT_DATA_QE_REPORT) bad(`certification data type ${certType} is not 6 (QE report certification data)`);
  const certSize = s.u32('certification data');
  if (s.off + certSize !== sigEnd) bad(`certification data size ${certSize} does not fill the signature data`);
  const qeRaw = s.bytes(QE_REPORT_BYTES, 'QE report');
  const qeReportSignature = s.bytes(64, 'QE report signature');
  const authSize = s.u16('QE auth data');
  if (authSize > MAX_QE_AUTH_DATA_BYTES) bad(`QE auth data larger than ${MAX_QE_AUTH_DATA_BYTES} bytes`);
  const qeAuthData = s.bytes(authSize, 'QE auth data');
  const innerType = s.u16('PCK certification data');
  if (innerType !== CERT_DATA_PCK_CHAIN) bad(`inner certification data type ${innerType} is not 5 (PCK certificate chain)`);
  const innerSize = s.u32('PCK certification data');
  if (innerSize > MAX_PCK_CHAIN_BYTES) bad(`PCK certificate chain larger than ${MAX_PCK_CHAIN_BYTES} bytes`);
  if (s.off + innerSize !== sigEnd) bad(`PCK certificate chain size ${innerSize} does not fill the certification data`);
  const pckChainPem = s.bytes(innerSize, 'PCK certificate chain');

  for (let i = sigEnd; i < b.length; i++) if (b[i] !== 0) bad(`byte ${i} after the ${sigEnd}-byte quote is not zero padding`);
  return {
    version: version as 4 | 5,
    bodyType,
    header: { attestationKeyType, teeType, qeSvn, pceSvn, qeVendorId, userData },
    body,
    signed,
    signature,
    attestationKey,
    qeReport: parseQeReport(qeRaw),
    qeReportSignature,
    qeAuthData,
    pckChainPem,
    length: sigEnd,
  };
}
