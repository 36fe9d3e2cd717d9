/**
 * TPM 2.0 marshalling (Part 1 §18; big-endian; TPM2B = u16 size ‖ bytes) with a strict,
 * bounded reader. UNTRUSTED input (responses, evidence) is read only through TpmReader.
 */
import { AttestationError } from '../errors.js';

/** A malformed TPM structure: for a verifier, invalid evidence. */
const TpmFormatError = (message: string) => new AttestationError('ERR_EVIDENCE_INVALID', message);

export class TpmWriter {
  private readonly parts: Buffer[] = [];
  u8(v: number): this {
    this.parts.push(Buffer.from([v & 0xff]));
    return this;
  }
  u16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v);
    this.parts.push(b);
    return this;
  }
  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0);
    this.parts.push(b);
    return this;
  }
  i32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    this.parts.push(b);
    return this;
  }
  bytes(b: Uint8Array): this {
    this.parts.push(Buffer.from(b));
    return this;
  }
  /** TPM2B: u16 size, then the bytes. */
  tpm2b(b: Uint8Array): this {
    if (b.length > 0xffff) throw new RangeError('TPM2B larger than 65535 bytes');
    return this.u16(b.length).bytes(b);
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** A bounded big-endian reader; every read past the end is a typed error. */
export class TpmReader {
  private off = 0;
  constructor(
    readonly buf: Buffer,
    private readonly what: string,
  ) {}
  get offset(): number {
    return this.off;
  }
  get remaining(): number {
    return this.buf.length - this.off;
  }
  private need(n: number, field: string): void {
    if (this.off + n > this.buf.length) throw TpmFormatError(`tpm: ${this.what}: truncated at ${field}`);
  }
  u8(field: string): number {
    this.need(1, field);
    return this.buf[this.off++]!;
  }
  u16(field: string): number {
    this.need(2, field);
    const v = this.buf.readUInt16BE(this.off);
    this.off += 2;
    return v;
  }
  u32(field: string): number {
    this.need(4, field);
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }
  u64(field: string): bigint {
    this.need(8, field);
    const v = this.buf.readBigUInt64BE(this.off);
    this.off += 8;
    return v;
  }
  bytes(n: number, field: string): Buffer {
    this.need(n, field);
    const v = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return v;
  }
  /** TPM2B with an upper bound on its size. */
  tpm2b(field: string, max: number): Buffer {
    const n = this.u16(field);
    if (n > max) throw TpmFormatError(`tpm: ${this.what}: ${field} of ${n} bytes exceeds ${max}`);
    return this.bytes(n, field);
  }
  /** Fails unless every byte was consumed. */
  end(): void {
    if (this.off !== this.buf.length) throw TpmFormatError(`tpm: ${this.what}: ${this.buf.length - this.off} trailing bytes`);
  }
}
