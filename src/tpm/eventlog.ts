/**
 * TCG event logs in the crypto-agile format (TCG PC Client Platform Firmware Profile 2.0,
 * §10.2; all integers little-endian): a TCG_PCClientPCREvent carrying the Spec ID Event03
 * header, then TCG_PCR_EVENT2 records with one digest per active bank. Used for the firmware
 * log and for the sidecar's own log of the agent code it measures. UNTRUSTED input.
 */
import { AttestationError } from '../errors.js';
import { HASHES } from './constants.js';

export const EV_NO_ACTION = 0x00000003;
export const EV_IPL = 0x0000000d;
/** Event data prefix the sidecar uses for agent code measurements. */
export const AGENT_CODE_EVENT = 'writ:agent-code:';

/** Bounds: events per log, bytes of one event's data, digests per event. */
export const MAX_EVENTS = 20_000;
export const MAX_EVENT_DATA = 64 * 1024;
const MAX_DIGESTS = 8;

export interface LogEvent {
  readonly pcr: number;
  readonly type: number;
  /** Digest per TPM hash algorithm. */
  readonly digests: ReadonlyMap<number, Buffer>;
  readonly data: Buffer;
}

const fail = (msg: string) => new AttestationError('ERR_EVIDENCE_INVALID', `tpm: event log: ${msg}`);

class LeReader {
  off = 0;
  constructor(private readonly b: Buffer) {}
  need(n: number): void {
    if (this.off + n > this.b.length) throw fail('truncated');
  }
  u8(): number {
    this.need(1);
    return this.b[this.off++]!;
  }
  u16(): number {
    this.need(2);
    const v = this.b.readUInt16LE(this.off);
    this.off += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.b.readUInt32LE(this.off);
    this.off += 4;
    return v;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const v = this.b.subarray(this.off, this.off + n);
    this.off += n;
    return v;
  }
  get done(): boolean {
    return this.off === this.b.length;
  }
}

const SPEC_ID = Buffer.from('Spec ID Event03\0', 'latin1');

/** Parses a crypto-agile log; returns its digest sizes and events (the header excluded). */
export function parseEventLog(buf: Buffer): { algorithms: Map<number, number>; events: LogEvent[] } {
  const r = new LeReader(buf);
  // Header: TCG_PCClientPCREvent (SHA-1 format) whose data is the TCG_EfiSpecIDEvent.
  const pcr0 = r.u32();
  const type0 = r.u32();
  r.bytes(20);
  const size0 = r.u32();
  if (pcr0 !== 0 || type0 !== EV_NO_ACTION || size0 > 1024) throw fail('first event is not the Spec ID header');
  const spec = new LeReader(r.bytes(size0));
  if (!spec.bytes(16).equals(SPEC_ID)) throw fail('not a crypto-agile log (no "Spec ID Event03")');
  spec.u32(); // platformClass
  spec.u8(); // specVersionMinor
  const major = spec.u8();
  spec.u8(); // errata
  spec.u8(); // uintnSize
  if (major !== 2) throw fail(`spec version ${major} is not 2`);
  const n = spec.u32();
  if (n === 0 || n > MAX_DIGESTS) throw fail(`${n} algorithms in the header`);
  const algorithms = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const alg = spec.u16();
    const size = spec.u16();
    if (HASHES.has(alg) && HASHES.get(alg)!.size !== size) throw fail(`digest size ${size} for algorithm 0x${alg.toString(16)}`);
    if (size === 0 || size > 64) throw fail('bad digest size');
    algorithms.set(alg, size);
  }
  const vendor = spec.u8();
  spec.bytes(vendor);
  if (!spec.done) throw fail('trailing bytes in the Spec ID event');

  const events: LogEvent[] = [];
  while (!r.done) {
    if (events.length >= MAX_EVENTS) throw fail(`more than ${MAX_EVENTS} events`);
    const pcr = r.u32();
    const type = r.u32();
    const count = r.u32();
    if (count > MAX_DIGESTS) throw fail(`${count} digests in one event`);
    const digests = new Map<number, Buffer>();
    for (let i = 0; i < count; i++) {
      const alg = r.u16();
      const size = algorithms.get(alg);
      if (size === undefined) throw fail(`digest of algorithm 0x${alg.toString(16)} not declared in the header`);
      if (digests.has(alg)) throw fail('duplicate digest algorithm in one event');
      digests.set(alg, Buffer.from(r.bytes(size)));
    }
    const dataSize = r.u32();
    if (dataSize > MAX_EVENT_DATA) throw fail(`event data of ${dataSize} bytes`);
    events.push({ pcr, type, digests, data: Buffer.from(r.bytes(dataSize)) });
  }
  return { algorithms, events };
}

/** Serialises a crypto-agile log (header for `algorithms`, then the events). */
export function encodeEventLog(algorithms: ReadonlyMap<number, number>, events: readonly LogEvent[]): Buffer {
  const parts: Buffer[] = [];
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    return b;
  };
  const u16 = (v: number) => {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(v);
    return b;
  };
  const spec = Buffer.concat([
    SPEC_ID,
    u32(0),
    Buffer.from([0, 2, 0, 2]),
    u32(algorithms.size),
    ...[...algorithms].flatMap(([a, s]) => [u16(a), u16(s)]),
    Buffer.from([0]),
  ]);
  parts.push(u32(0), u32(EV_NO_ACTION), Buffer.alloc(20), u32(spec.length), spec);
  for (const e of events) {
    parts.push(u32(e.pcr), u32(e.type), u32(e.digests.size));
    for (const [a, d] of e.digests) parts.push(u16(a), d);
    parts.push(u32(e.data.length), e.data);
  }
  return Buffer.concat(parts);
}
