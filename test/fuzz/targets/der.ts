/** Targets: the DER reader and decoders (src/der/der.ts), PEM (src/der/pem.ts). */
import { createPublicKey } from 'node:crypto';
import {
  children,
  decodeBitString,
  decodeBoolean,
  decodeOid,
  decodeSmallInt,
  decodeTime,
  integerBytes,
  parseOne,
  readTlv,
  SeqReader,
  TAG,
  type Tlv,
} from '../../../src/der/der.js';
import { decodePem, encodePem } from '../../../src/der/pem.js';
import { OracleError, type FuzzTarget } from '../engine/contract.js';
import { derMutator, pemMutator } from '../engine/mutators.js';
import { chain, csr, ecKey, rsaKey, spkiOf } from '../fixtures.js';
import { soft, vectorCertificates, vectorFiles } from './common.js';

function derSeeds(): Buffer[] {
  const c = chain('example.org');
  const c384 = chain('example.org', 'P-384');
  return [
    ...vectorCertificates(),
    c.root.der,
    c.intermediate.der,
    c.leaf.der,
    c384.leaf.der,
    spkiOf(ecKey('der spki')),
    spkiOf(rsaKey()),
    csr(ecKey('der csr')),
    csr(rsaKey()),
    rsaKey().export({ type: 'pkcs8', format: 'der' }),
    createPublicKey(rsaKey()).export({ type: 'pkcs1', format: 'der' }),
  ];
}

/** The decoder of every node: each either decodes or refuses with a WritError. */
function walk(t: Tlv, depth: number): void {
  // The decoder for the node's tag (a mismatched tag is refused on its first line).
  if (t.tag === TAG.OID) soft(() => decodeOid(t));
  else if (t.tag === TAG.BOOLEAN) soft(() => decodeBoolean(t));
  else if (t.tag === TAG.INTEGER) {
    soft(() => integerBytes(t));
    soft(() => decodeSmallInt(t));
  } else if (t.tag === TAG.BIT_STRING) soft(() => decodeBitString(t));
  else if (t.tag === TAG.UTC_TIME || t.tag === TAG.GENERALIZED_TIME) soft(() => decodeTime(t));
  if (t.tag & 0x20) {
    const kids = soft(() => children(t, depth));
    for (const k of kids ?? []) walk(k, depth + 1);
    if (t.tag === TAG.SEQUENCE) {
      soft(() => {
        const r = new SeqReader(t, 'fuzz');
        for (let tag = r.peekTag(); tag !== undefined; tag = r.peekTag()) {
          if (r.optional(TAG.NULL)) continue;
          r.next(tag, 'element');
        }
        r.end('fuzz');
      });
    }
    return;
  }
  // Encapsulated DER, as in extnValue and subjectPublicKey.
  const inner = t.tag === TAG.OCTET_STRING ? t.value : t.tag === TAG.BIT_STRING && t.value[0] === 0 ? t.value.subarray(1) : undefined;
  if (inner && inner.length > 0 && depth < 40) {
    const e = soft(() => parseOne(inner));
    if (e) walk(e, depth + 1);
  }
}

export const derTarget: FuzzTarget = {
  name: 'der',
  parsers: 'src/der/der.ts: parseOne, readTlv, children, SeqReader, decodeOid/Boolean/SmallInt/BitString/Time, integerBytes',
  contract: 'returns a TLV tree or throws a WritError (ERR_DER_MALFORMED); every decoder on every node likewise',
  maxLen: 16 * 1024,
  sources: ['src/der/der.ts'],
  setup: () => ({
    seeds: derSeeds(),
    mutators: [derMutator, derMutator],
    run(data) {
      soft(() => readTlv(data, 0));
      walk(parseOne(data), 0);
      return undefined;
    },
  }),
};

export const pemTarget: FuzzTarget = {
  name: 'pem',
  parsers: 'src/der/pem.ts: decodePem',
  contract: 'returns the blocks or throws a WritError (ERR_PEM_MALFORMED); each block re-encoded with encodePem decodes to itself',
  maxLen: 32 * 1024,
  sources: ['src/der/pem.ts'],
  setup: () => ({
    seeds: [...vectorFiles('spiffe', (n) => n.endsWith('.pem') || n === 'not-pem'), ...vectorFiles('enclave/roots')],
    mutators: [pemMutator],
    run(data) {
      const blocks = decodePem(data.toString('utf8'));
      for (const b of blocks) {
        const again = decodePem(encodePem(b.label, b.der));
        if (again.length !== 1 || again[0]!.label !== b.label || !again[0]!.der.equals(b.der))
          throw new OracleError(`pem: block ${b.label} does not round-trip`);
      }
      return undefined;
    },
  }),
};
