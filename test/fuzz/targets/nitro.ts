/** Target: AWS Nitro attestation documents (src/attestation/nitro/: CBOR, COSE_Sign1, fields, signature, chain, policy). */
import { parseNitroDocument } from '../../../src/attestation/nitro/document.js';
import { DEFAULT_NITRO_ANCHORS } from '../../../src/attestation/nitro/roots.js';
import { verifyNitroDocument } from '../../../src/attestation/nitro/verify.js';
import type { FuzzTarget } from '../engine/contract.js';
import { nitroDocument, nitroPki } from '../../helpers/nitro-doc.js';
import { vectorFiles } from './common.js';

const isCose = (b: Buffer) => b.length > 0 && (b[0] === 0x84 || b[0] === 0xd2);

export const nitroDocumentTarget: FuzzTarget = {
  name: 'nitro-document',
  signed: true,
  parsers:
    'src/attestation/nitro/document.ts parseNitroDocument (cbor.ts decodeCbor), then verify.ts verifyNitroDocument to the AWS root and a test root at the document timestamp, debug allowed',
  contract: 'accepts only the genuine and test-made documents, byte for byte (tag 18 or not); else throws a WritError (ERR_EVIDENCE_INVALID)',
  maxLen: 20 * 1024,
  sources: ['src/attestation/nitro/document.ts', 'src/attestation/nitro/cbor.ts', 'src/attestation/nitro/verify.ts'],
  setup: () => {
    const at = new Date('2026-01-01T00:00:00Z');
    const pki = nitroPki(at);
    const made = [
      nitroDocument({ pki, timestamp: at.getTime(), nonce: Buffer.alloc(32, 1) }),
      nitroDocument({ pki, timestamp: at.getTime(), nonce: Buffer.alloc(32, 2), userData: Buffer.from('u'), indefinite: true, tagged: true }),
      nitroDocument({ pki, timestamp: at.getTime(), omitAbsent: true }),
    ];
    const genuine = [
      ...vectorFiles('nitro', (n) => n.endsWith('.cbor')),
      ...vectorFiles('enclave/nitro', (n) => n.endsWith('.bin') || n.endsWith('-bytes')),
    ].filter(isCose);
    const seeds = [...genuine, ...made];
    const untagged = (b: Buffer) => (b[0] === 0xd2 ? b.subarray(1) : b);
    const valid = new Set(seeds.map((s) => untagged(s).toString('hex')));
    const anchors = [...DEFAULT_NITRO_ANCHORS, pki.root.der];
    return {
      seeds,
      dictionary: [Buffer.from('a1013822', 'hex'), Buffer.from('d2', 'hex'), Buffer.from('bf', 'hex'), Buffer.from('ff', 'hex'), Buffer.from('f6', 'hex')],
      isValid: (data) => valid.has(untagged(data).toString('hex')),
      run(data) {
        const { document } = parseNitroDocument(data);
        verifyNitroDocument(data, { anchors, at: new Date(document.timestamp), allowDebug: true });
        return 'accepted';
      },
    };
  },
};
