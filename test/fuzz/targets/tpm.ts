/** Targets: TPM 2.0 structures (src/tpm/structures.ts), evidence messages (src/tpm/evidence.ts), event logs (src/tpm/eventlog.ts), quotes. */
import { TPM_ALG, TPM_ST } from '../../../src/tpm/constants.js';
import { EK_TEMPLATES } from '../../../src/tpm/ek-templates.js';
import { encodeEventLog, EV_IPL, EV_NO_ACTION, parseEventLog, AGENT_CODE_EVENT } from '../../../src/tpm/eventlog.js';
import {
  encodeChallenge1,
  encodeChallenge2,
  encodeEvidence1,
  encodeEvidence2,
  parseChallenge1,
  parseChallenge2,
  parseEvidence1,
  parseEvidence2,
} from '../../../src/tpm/evidence.js';
import { TpmReader, TpmWriter } from '../../../src/tpm/marshal.js';
import {
  formatPcrSelection,
  marshalPcrSelection,
  marshalPublic,
  objectName,
  parseAttest,
  parsePcrSelectionSpec,
  parsePublic,
  parsePublic2b,
  parseSignature,
  publicKeyOf,
  readPcrSelection,
  residentKeyTemplate,
  samePcrSelection,
  srkTemplate,
  type PublicTemplate,
} from '../../../src/tpm/structures.js';
import { checkAk, verifyCertify, verifyQuote } from '../../../src/attestation/tpm/quote.js';
import { OracleError, type FuzzTarget } from '../engine/contract.js';
import { embeddedBase64Mutator, jsonMutator } from '../engine/mutators.js';
import { b64, ecKey, frame, stable, unb64, unframe } from '../fixtures.js';
import { akFor, attestBy, pcrBytes, PCR_VALUES, QUOTE_NONCE, SEL, soft, tpmSign } from './common.js';
import { createPublicKey } from 'node:crypto';
import { chain } from '../fixtures.js';

const tpm2b = (b: Buffer) => new TpmWriter().tpm2b(b).done();

function publicSeeds(): Buffer[] {
  const out = [akFor('ecc').pub.bytes, akFor('ecc384').pub.bytes, akFor('rsa').pub.bytes, marshalPublic(srkTemplate()), marshalPublic(residentKeyTemplate())];
  for (const t of EK_TEMPLATES) out.push(marshalPublic(t.template));
  const jwk = createPublicKey(ecKey('tpm resident')).export({ format: 'jwk' });
  out.push(marshalPublic({ ...residentKeyTemplate(), x: Buffer.from(jwk.x!, 'base64url'), y: Buffer.from(jwk.y!, 'base64url') } as PublicTemplate));
  return [...out, ...out.map(tpm2b)];
}

export const tpmPublicTarget: FuzzTarget = {
  name: 'tpm-public',
  parsers: 'src/tpm/structures.ts: parsePublic, parsePublic2b, publicKeyOf, objectName; src/attestation/tpm/quote.ts: checkAk',
  contract: 'returns the TPMT_PUBLIC (and its key and Name) or throws a WritError (ERR_EVIDENCE_INVALID)',
  maxLen: 4096,
  sources: ['src/tpm/structures.ts', 'src/tpm/marshal.ts'],
  setup: () => ({
    seeds: publicSeeds(),
    run(data) {
      for (const parse of [parsePublic, parsePublic2b]) {
        const p = soft(() => parse(data));
        if (!p) continue;
        objectName(p);
        soft(() => checkAk(p));
        soft(() => publicKeyOf(p));
      }
      return undefined;
    },
  }),
};

export const tpmAttestTarget: FuzzTarget = {
  name: 'tpm-attest',
  parsers: 'src/tpm/structures.ts: parseAttest (TPMS_ATTEST of quotes and certifications, with their TPML_PCR_SELECTION)',
  contract: 'returns the TPMS_ATTEST or throws a WritError (ERR_EVIDENCE_INVALID)',
  maxLen: 4096,
  sources: ['src/tpm/structures.ts', 'src/tpm/marshal.ts'],
  setup: () => ({
    seeds: [attestBy(akFor('ecc')), attestBy(akFor('rsa')), attestBy(akFor('ecc'), { certified: parsePublic(publicSeeds()[5]!) })],
    dictionary: [Buffer.from([0x80, 0x18]), Buffer.from([0x80, 0x17]), Buffer.from([0, 0, 0, 1, 0, 0x0b, 3, 0xff, 0xff, 0xff])],
    run(data) {
      parseAttest(data);
      return undefined;
    },
  }),
};

export const tpmSignatureTarget: FuzzTarget = {
  name: 'tpm-signature',
  parsers: 'src/tpm/structures.ts: parseSignature (TPMT_SIGNATURE)',
  contract: 'returns the TPMT_SIGNATURE or throws a WritError (ERR_EVIDENCE_INVALID)',
  maxLen: 2048,
  sources: ['src/tpm/structures.ts'],
  setup: () => ({
    seeds: [tpmSign(akFor('ecc'), Buffer.from('m')), tpmSign(akFor('ecc384'), Buffer.from('m')), tpmSign(akFor('rsa'), Buffer.from('m'))],
    run(data) {
      parseSignature(data);
      return undefined;
    },
  }),
};

export const tpmPcrSelectionTarget: FuzzTarget = {
  name: 'tpm-pcr-selection',
  parsers: 'src/tpm/structures.ts: readPcrSelection (TPML_PCR_SELECTION); parsePcrSelectionSpec (the text an agent reads from a challenge)',
  contract: 'returns the selection or throws a WritError (ERR_EVIDENCE_INVALID); an accepted spec formats back to the same selection',
  maxLen: 1024,
  sources: ['src/tpm/structures.ts'],
  setup: () => ({
    seeds: [
      marshalPcrSelection(SEL),
      marshalPcrSelection([
        { hash: TPM_ALG.SHA1, pcrs: [0, 23] },
        { hash: TPM_ALG.SHA384, pcrs: [7] },
      ]),
      Buffer.from('sha256:0,1,2,3,7'),
      Buffer.from('sha1:0+sha256:0,1,2,3,4,5,6,7+sha384:23'),
    ],
    dictionary: ['sha1', 'sha256', 'sha384', 'sha512', ':', ',', '+', '23', '24'].map((s) => Buffer.from(s)),
    run(data) {
      soft(() => {
        const r = new TpmReader(data, 'TPML_PCR_SELECTION');
        readPcrSelection(r);
        r.end();
      });
      const sel = parsePcrSelectionSpec(data.toString('utf8'));
      if (!samePcrSelection(parsePcrSelectionSpec(formatPcrSelection(sel)), sel))
        throw new OracleError('tpm: an accepted PCR selection spec does not format back to itself');
      return undefined;
    },
  }),
};

function eventLogSeeds(): Buffer[] {
  const algs = new Map([
    [TPM_ALG.SHA256, 32],
    [TPM_ALG.SHA1, 20],
  ]);
  const ev = (pcr: number, type: number, data: string) => ({
    pcr,
    type,
    digests: new Map([
      [TPM_ALG.SHA256, Buffer.alloc(32, pcr)],
      [TPM_ALG.SHA1, Buffer.alloc(20, pcr)],
    ]),
    data: Buffer.from(data),
  });
  return [
    encodeEventLog(algs, [ev(0, EV_NO_ACTION, 'StartupLocality\0\x03'), ev(4, EV_IPL, 'a'), ev(7, EV_IPL, 'bb')]),
    encodeEventLog(new Map([[TPM_ALG.SHA256, 32]]), [
      { pcr: 23, type: EV_IPL, digests: new Map([[TPM_ALG.SHA256, Buffer.alloc(32, 9)]]), data: Buffer.from(`${AGENT_CODE_EVENT}sha256:${'ab'.repeat(32)}`) },
    ]),
    encodeEventLog(new Map([[TPM_ALG.SHA384, 48]]), []),
  ];
}

export const eventLogTarget: FuzzTarget = {
  name: 'eventlog',
  parsers: 'src/tpm/eventlog.ts: parseEventLog (TCG crypto-agile log)',
  contract: 'returns the events or throws a WritError (ERR_EVIDENCE_INVALID)',
  maxLen: 64 * 1024,
  sources: ['src/tpm/eventlog.ts'],
  setup: () => ({
    seeds: eventLogSeeds(),
    dictionary: [Buffer.from('Spec ID Event03\0', 'latin1'), Buffer.from('0b002000', 'hex'), Buffer.from('04001400', 'hex'), Buffer.from('03000000', 'hex')],
    run(data) {
      parseEventLog(data);
      return undefined;
    },
  }),
};

export const tpmEvidenceTarget: FuzzTarget = {
  name: 'tpm-evidence',
  parsers:
    'src/tpm/evidence.ts: parseEvidence1, parseEvidence2, parseChallenge1 (then parsePcrSelectionSpec, as the agent does), parseChallenge2; the structures inside evidence 1',
  contract: 'returns the message or throws a WritError (ERR_EVIDENCE_INVALID)',
  maxLen: 96 * 1024,
  sources: ['src/tpm/evidence.ts', 'src/jose/strict-json.ts', 'src/jose/claims.ts'],
  setup: () => {
    const ak = akFor('ecc');
    const resident = parsePublic(publicSeeds()[7]!);
    const attest = attestBy(ak);
    const certifyAttest = attestBy(ak, { certified: resident });
    const ek = chain('tpm.example');
    const ev1 = encodeEvidence1({
      ekPublic: marshalPublic(EK_TEMPLATES[0]!.template),
      ekCertificate: ek.leaf.der,
      ekIntermediates: [ek.intermediate.der],
      akPublic: tpm2b(ak.pub.bytes),
      attest,
      signature: tpmSign(ak, attest),
      pcrs: PCR_VALUES as Map<number, Map<number, Buffer>>,
      eventLog: eventLogSeeds()[0]!,
      appLog: eventLogSeeds()[1]!,
      certify: { public: resident.bytes, attest: certifyAttest, signature: tpmSign(ak, certifyAttest) },
    });
    return {
      seeds: [ev1, encodeEvidence2(Buffer.alloc(32, 5)), encodeChallenge1('sha256:0,1,2,3,7'), encodeChallenge2(Buffer.alloc(70, 1), Buffer.alloc(256, 2))],
      mutators: [jsonMutator, jsonMutator, embeddedBase64Mutator, embeddedBase64Mutator],
      run(data) {
        soft(() => parseEvidence2(data));
        soft(() => parseChallenge2(data));
        soft(() => parsePcrSelectionSpec(parseChallenge1(data).pcrSelection));
        const e = parseEvidence1(data);
        // What the verifier does next with the binary members.
        soft(() => parsePublic2b(e.akPublic));
        soft(() => parsePublic(e.ekPublic));
        soft(() => parseAttest(e.attest));
        soft(() => parseSignature(e.signature));
        if (e.eventLog) soft(() => parseEventLog(e.eventLog!));
        if (e.appLog) soft(() => parseEventLog(e.appLog!));
        if (e.certify) soft(() => parseAttest(e.certify!.attest));
        return undefined;
      },
    };
  },
};

export const tpmQuoteTarget: FuzzTarget = {
  name: 'tpm-quote',
  signed: true,
  parsers:
    'src/attestation/tpm/quote.ts: verifyQuote with a fixed AK, nonce and PCR selection; input = u16-framed TPMS_ATTEST, TPMT_SIGNATURE, PCR values; and verifyCertify (framed key public, attest, signature)',
  contract: 'accepts only the valid quotes and certifications, byte for byte; else throws a WritError (ERR_EVIDENCE_INVALID)',
  maxLen: 8192,
  sources: ['src/attestation/tpm/quote.ts', 'src/tpm/structures.ts'],
  setup: () => {
    const aks = { ecc: akFor('ecc'), ecc384: akFor('ecc384'), rsa: akFor('rsa') };
    const resident = parsePublic(publicSeeds()[7]!);
    const byName: Record<string, (typeof aks)[keyof typeof aks]> = { 'ecc   ': aks.ecc, ecc384: aks.ecc384, 'rsa   ': aks.rsa };
    // A 6-byte name of the AK, then the framed fields.
    const signedInputs = stable('tpm-quote: quotes by the ecc, ecc384 and rsa AKs, and a certification', () => {
      const quotes = Object.entries(byName).map(([name, ak]) => {
        const attest = attestBy(ak);
        return Buffer.concat([Buffer.from(name, 'latin1'), frame([attest, tpmSign(ak, attest), pcrBytes()])]);
      });
      const certAttest = attestBy(aks.ecc, { certified: resident });
      return [...quotes, Buffer.concat([Buffer.from('certfy'), frame([resident.bytes, certAttest, tpmSign(aks.ecc, certAttest)])])].map(b64);
    }).map(unb64);
    const valid = new Set(signedInputs.map((b) => b.toString('hex')));
    return {
      seeds: signedInputs,
      isValid: (data) => valid.has(data.toString('hex')),
      run(data) {
        const which = data.subarray(0, 6).toString('latin1');
        if (which === 'certfy') {
          const f = unframe(data.subarray(6), 3);
          if (!f) return 'rejected';
          verifyCertify(aks.ecc.pub, parsePublic(f[0]!), f[1]!, f[2]!, QUOTE_NONCE);
          return 'accepted';
        }
        const ak = byName[which];
        const f = unframe(data.subarray(6), 3);
        if (!ak || !f) return 'rejected';
        const pcrs = f[2]!;
        if (pcrs.length !== 32 * SEL[0]!.pcrs.length) return 'rejected';
        const values = new Map([[TPM_ALG.SHA256, new Map(SEL[0]!.pcrs.map((p, i) => [p, pcrs.subarray(32 * i, 32 * i + 32)]))]]);
        const q = verifyQuote(ak.pub, f[0]!, f[1]!, QUOTE_NONCE, SEL, values);
        if (q.attest.type !== TPM_ST.ATTEST_QUOTE) throw new OracleError('tpm: verifyQuote returned a non-quote');
        return 'accepted';
      },
    };
  },
};
