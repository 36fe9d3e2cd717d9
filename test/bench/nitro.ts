/**
 * `make bench`, Nitro evidence: the issuer's verification of one attestation document (genuine
 * format, test PKI made here: root → regional → zonal → instance → leaf, P-384) with its chain
 * cache warm, as a ratio to the raw signature floor measured in the same run (one ECDSA P-384
 * verification, p1363, over the same Sig_structure bytes); and cold (no cache: the document's
 * signature plus the four certificate signatures of its chain), against the same floor.
 */
import { X509Certificate, randomBytes, verify } from 'node:crypto';
import { parseNitroDocument } from '../../src/attestation/nitro/document.js';
import { NitroChainCache, verifyNitroDocument } from '../../src/attestation/nitro/verify.js';
import { nitroDocument, nitroPki } from '../helpers/nitro-doc.js';

type Record = (name: string, value: number, unit: string, floor?: number) => void;
const RUN_MS = Number(process.env.BENCH_MS ?? 1000);

/** ops/s of one timed run of a synchronous op. */
function once(fn: () => unknown): number {
  let n = 0;
  const start = performance.now();
  while (performance.now() - start < RUN_MS) {
    for (let i = 0; i < 10; i++) fn();
    n += 10;
  }
  return n / ((performance.now() - start) / 1000);
}

/** Best of five runs of each op, the runs interleaved so that a loaded machine slows all alike. */
function rates(fns: ReadonlyArray<() => unknown>): number[] {
  for (const fn of fns) for (let i = 0; i < 50; i++) fn();
  const best = fns.map(() => 0);
  for (let r = 0; r < 5; r++) for (const [i, fn] of fns.entries()) best[i] = Math.max(best[i]!, once(fn));
  return best;
}

export async function nitroBench(record: Record): Promise<void> {
  const now = new Date();
  const pki = nitroPki(now);
  const nonce = randomBytes(32);
  const doc = nitroDocument({ pki, timestamp: now.getTime(), nonce, userData: randomBytes(32) });
  const cose = parseNitroDocument(doc);
  const leafKey = new X509Certificate(cose.document.certificate).publicKey;
  const cache = new NitroChainCache();
  const o = {
    anchors: [pki.root.der],
    at: now,
    allowDebug: false,
    nonce,
    timestampWindow: { notBefore: now.getTime() - 300_000, notAfter: now.getTime() + 60_000 },
  };
  const [floor, warm, cold] = rates([
    () => verify('sha384', cose.toBeSigned, { key: leafKey, dsaEncoding: 'ieee-p1363' }, cose.signature),
    () => verifyNitroDocument(doc, { ...o, chainCache: cache }),
    () => verifyNitroDocument(doc, o),
  ]);
  record('nitro_document_verify_warm', warm!, `ops/s (${doc.length} B document, chain and leaf key cached)`, floor);
  record('nitro_document_verify_cold', cold!, 'ops/s (no cache: 1 + 4 P-384 verifications)', floor);
}
