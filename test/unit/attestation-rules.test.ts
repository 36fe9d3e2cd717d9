/**
 * The evidence-type-independent parts of src/attestation rule by rule: the agent's proof of
 * possession of the key its hello names (key-proof.ts), the verifier registry and the error
 * prefix it puts on every plug-in's refusals (registry.ts), and the catalog that makes the
 * issuer's verifiers and the relying party's re-verifiers from one set of settings (catalog.ts)
 * (`make mutate`, docs/testing.md).
 */
import { createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { EvidenceCatalog, attestationSection, parseEvidenceSettings } from '../../src/attestation/catalog.js';
import { KEY_PROOF_CONTEXT, MAX_KEY_PROOF_BYTES, keyProofMessage, signKeyProof, signKeyProofWith, verifyKeyProof } from '../../src/attestation/key-proof.js';
import type { EvidencePlugin } from '../../src/attestation/plugin.js';
import { VerifierRegistry } from '../../src/attestation/registry.js';
import type { AttestationContext, AttestationResult, EvidenceReverifier, EvidenceVerifier, VerifyStep } from '../../src/attestation/verifier.js';
import { Section } from '../../src/config/section.js';
import { AttestationError, FormatError, JwsError } from '../../src/errors.js';
import { keySigner } from '../../src/jose/jws.js';
import type { StoreTx } from '../../src/store/store.js';

function refusal(f: () => unknown): { code: string; message: string; cause?: unknown } {
  try {
    f();
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('accepted, but must be refused');
}
async function rejection(p: Promise<unknown>): Promise<{ code: string; message: string; cause?: unknown }> {
  try {
    await p;
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('accepted, but must be refused');
}
const proofErr = (message: string) => ({ code: 'ERR_KEY_PROOF_INVALID', message });

const keys = {
  p256: generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey,
  p384: generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey,
  rsa: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
};
const pub = (k: KeyObject) => createPublicKey(k);
const NONCE = Buffer.alloc(32, 0xab);

describe('key proofs: the agent holds the private key its hello names', () => {
  it('signs the context label, one zero byte and the nonce, nothing else', () => {
    expect(KEY_PROOF_CONTEXT).toBe('writ-key-proof-v1');
    expect(keyProofMessage(NONCE)).toEqual(Buffer.concat([Buffer.from('writ-key-proof-v1'), Buffer.from([0]), NONCE]));
    expect(keyProofMessage(new Uint8Array([1, 2]))).toEqual(Buffer.from('writ-key-proof-v1\u0000\u0001\u0002', 'latin1'));
  });

  it.each(Object.entries(keys))('%s: a proof made with the key verifies, in this process or through a signer', async (_n, k) => {
    expect(() => verifyKeyProof(pub(k), NONCE, signKeyProofWith(k, NONCE))).not.toThrow();
    expect(() => verifyKeyProof(pub(k), NONCE, signKeyProofWith(k, NONCE))).not.toThrow();
    const viaSigner = await signKeyProof(keySigner(k), NONCE);
    expect(() => verifyKeyProof(pub(k), NONCE, viaSigner)).not.toThrow();
  });

  it('uses the algorithm writ uses for the key type: ES256/ES384 over IEEE P1363, PS256 for RSA', () => {
    const es = signKeyProofWith(keys.p256, NONCE);
    expect(es).toHaveLength(64);
    const es384 = signKeyProofWith(keys.p384, NONCE);
    expect(es384).toHaveLength(96);
    // A DER-encoded ECDSA signature or PKCS#1 v1.5 over the same message is not a key proof.
    const der = sign('sha256', keyProofMessage(NONCE), keys.p256);
    expect(refusal(() => verifyKeyProof(pub(keys.p256), NONCE, der))).toMatchObject({ code: 'ERR_KEY_PROOF_INVALID' });
    const pkcs1 = sign('sha256', keyProofMessage(NONCE), keys.rsa);
    expect(refusal(() => verifyKeyProof(pub(keys.rsa), NONCE, pkcs1))).toMatchObject({ code: 'ERR_KEY_PROOF_INVALID' });
    const sha384 = sign('sha384', keyProofMessage(NONCE), { key: keys.p256, dsaEncoding: 'ieee-p1363' });
    expect(refusal(() => verifyKeyProof(pub(keys.p256), NONCE, sha384))).toMatchObject({ code: 'ERR_KEY_PROOF_INVALID' });
  });

  it('refuses a signer that would sign with another algorithm than writ uses for its key', async () => {
    await expect(signKeyProof(keySigner(keys.rsa, 'RS256'), NONCE)).rejects.toMatchObject(
      proofErr('attestation: key proofs are signed with PS256 for this key'),
    );
    await expect(signKeyProof(keySigner(keys.rsa, 'PS384'), NONCE)).rejects.toBeInstanceOf(AttestationError);
  });

  const doesNotVerify = proofErr('attestation: key_proof does not verify: the agent does not hold the private key its hello names');

  it('refuses a proof by another key, over another nonce, or over the bare nonce (no context)', () => {
    const proof = signKeyProofWith(keys.p256, NONCE);
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    expect(refusal(() => verifyKeyProof(pub(other), NONCE, proof))).toMatchObject(doesNotVerify);
    expect(refusal(() => verifyKeyProof(pub(keys.p256), Buffer.alloc(32, 0xac), proof))).toMatchObject(doesNotVerify);
    const bare = sign('sha256', NONCE, { key: keys.p256, dsaEncoding: 'ieee-p1363' });
    expect(refusal(() => verifyKeyProof(pub(keys.p256), NONCE, bare))).toMatchObject(doesNotVerify);
    const flipped = Buffer.from(proof);
    flipped[10]! ^= 1;
    expect(refusal(() => verifyKeyProof(pub(keys.p256), NONCE, flipped))).toMatchObject(doesNotVerify);
  });

  it('refuses a missing proof, and one longer than MAX_KEY_PROOF_BYTES (1024) before verifying', () => {
    expect(refusal(() => verifyKeyProof(pub(keys.p256), NONCE, new Uint8Array(0)))).toMatchObject(
      proofErr('attestation: the hello named a bare public key, so the first evidence must carry key_proof (a signature over the challenge)'),
    );
    expect(MAX_KEY_PROOF_BYTES).toBe(1024);
    expect(refusal(() => verifyKeyProof(pub(keys.p256), NONCE, Buffer.alloc(1025)))).toMatchObject(proofErr('attestation: key_proof larger than 1024 bytes'));
    expect(refusal(() => verifyKeyProof(pub(keys.p256), NONCE, Buffer.alloc(1024)))).toMatchObject(doesNotVerify);
  });
});

/** A verifier whose session does what the test tells it. */
function fakeVerifier(type: string, o: { begin?: () => void; respond?: (e: Buffer) => VerifyStep; commit?: () => void } = {}): EvidenceVerifier {
  return {
    type,
    maxEvidenceBytes: 77,
    maxRounds: 3,
    async begin() {
      o.begin?.();
      return {
        challenge: Buffer.from('first challenge'),
        async respond(e) {
          return o.respond
            ? o.respond(e)
            : { kind: 'attested', result: { selectors: [{ type, value: 'x' }], evidenceDigest: Buffer.alloc(32), commit: async () => o.commit?.() } };
        },
      };
    },
  };
}
const CTX = { nonce: NONCE, agentKey: {} as never, now: new Date(0) } satisfies AttestationContext;
const TX = {} as StoreTx;

describe('the verifier registry', () => {
  it('finds verifiers by type and lists the types sorted; a type registered twice is a programming error', () => {
    const r = new VerifierRegistry([fakeVerifier('zeta'), fakeVerifier('alpha')]);
    expect(r.types()).toEqual(['alpha', 'zeta']);
    expect(r.get('zeta')).toMatchObject({ type: 'zeta', maxEvidenceBytes: 77, maxRounds: 3 });
    expect(() => new VerifierRegistry([fakeVerifier('a'), fakeVerifier('a')])).toThrow('attestation: evidence type a registered twice');
  });

  it('refuses an unknown type, quoting at most 64 characters of it and naming the supported ones', () => {
    const r = new VerifierRegistry([fakeVerifier('tpm'), fakeVerifier('join_token')]);
    expect(refusal(() => r.get('nope'))).toMatchObject({
      code: 'ERR_EVIDENCE_TYPE_UNKNOWN',
      message: 'attestation: unknown evidence type "nope" (supported: join_token, tpm)',
    });
    expect(refusal(() => r.get('x'.repeat(100))).message).toBe(`attestation: unknown evidence type "${'x'.repeat(64)}" (supported: join_token, tpm)`);
    // Not a prototype lookup.
    expect(refusal(() => r.get('constructor')).code).toBe('ERR_EVIDENCE_TYPE_UNKNOWN');
  });

  it('passes challenges and results through unchanged', async () => {
    const step: VerifyStep = { kind: 'challenge', payload: Buffer.from('again') };
    const s = await new VerifierRegistry([fakeVerifier('t', { respond: () => step })]).get('t').begin(CTX);
    expect(s.challenge).toEqual(Buffer.from('first challenge'));
    expect(await s.respond(Buffer.alloc(0))).toBe(step);
    const bare: VerifyStep = { kind: 'attested', result: { selectors: [], evidenceDigest: Buffer.alloc(32) } };
    const s2 = await new VerifierRegistry([fakeVerifier('t', { respond: () => bare })]).get('t').begin(CTX);
    expect(await s2.respond(Buffer.alloc(0))).toBe(bare);
    const s3 = await new VerifierRegistry([fakeVerifier('t')]).get('t').begin(CTX);
    const r = (await s3.respond(Buffer.alloc(0))) as { result: AttestationResult };
    expect(r).toMatchObject({ kind: 'attested', result: { selectors: [{ type: 't', value: 'x' }], evidenceDigest: Buffer.alloc(32) } });
    await expect(r.result.commit!(TX, new Date(0))).resolves.toBeUndefined();
  });

  it('prefixes every refusal with the plug-in, in begin, respond and commit, keeping its code', async () => {
    const boom = (): never => {
      throw new AttestationError('ERR_JOIN_TOKEN_INVALID', 'token is not valid');
    };
    const get = (o: Parameters<typeof fakeVerifier>[1]) => new VerifierRegistry([fakeVerifier('join_token', o)]).get('join_token');
    const want = { code: 'ERR_JOIN_TOKEN_INVALID', message: 'attestation(join_token): token is not valid' };
    expect(await rejection(get({ begin: boom }).begin(CTX))).toMatchObject(want);
    expect(await rejection((await get({ respond: boom }).begin(CTX)).respond(Buffer.alloc(0)))).toMatchObject(want);
    const step = (await (await get({ commit: boom }).begin(CTX)).respond(Buffer.alloc(0))) as { result: AttestationResult };
    expect(await rejection(step.result.commit!(TX, new Date(0)))).toMatchObject(want);
  });

  it('does not prefix a message twice, and keeps other writ errors as they are but prefixed', async () => {
    const already = () => {
      throw new AttestationError('ERR_EVIDENCE_INVALID', 'attestation(tpm): quote nonce mismatch');
    };
    const s = await new VerifierRegistry([fakeVerifier('tpm', { respond: already })]).get('tpm').begin(CTX);
    expect(await rejection(s.respond(Buffer.alloc(0)))).toMatchObject({ code: 'ERR_EVIDENCE_INVALID', message: 'attestation(tpm): quote nonce mismatch' });
    const jws = () => {
      throw new JwsError('jws: bad');
    };
    const s2 = await new VerifierRegistry([fakeVerifier('tpm', { respond: jws })]).get('tpm').begin(CTX);
    const e = await rejection(s2.respond(Buffer.alloc(0)));
    expect(e).toBeInstanceOf(JwsError);
    expect(e).toMatchObject({ code: 'ERR_JWS_INVALID', message: 'attestation(tpm): jws: bad' });
  });

  it('turns anything that is not a writ error into ERR_EVIDENCE_INVALID with the cause', async () => {
    const original = new RangeError('index out of range');
    const s = await new VerifierRegistry([
      fakeVerifier('tpm', {
        respond: () => {
          throw original;
        },
      }),
    ])
      .get('tpm')
      .begin(CTX);
    const e = await rejection(s.respond(Buffer.alloc(0)));
    expect(e).toBeInstanceOf(AttestationError);
    expect(e).toMatchObject({ code: 'ERR_EVIDENCE_INVALID', message: 'attestation(tpm): index out of range' });
    expect(e.cause).toBe(original);
    const thrown = async (v: unknown) => {
      const s3 = await new VerifierRegistry([
        fakeVerifier('tpm', {
          begin: () => {
            throw v;
          },
        }),
      ])
        .get('tpm')
        .begin(CTX)
        .catch((x: unknown) => x);
      return s3 as { code: string; message: string };
    };
    expect(await thrown(undefined)).toMatchObject({ code: 'ERR_EVIDENCE_INVALID', message: 'attestation(tpm): verification failed' });
    expect(await thrown(null)).toMatchObject({ message: 'attestation(tpm): verification failed' });
    expect(await thrown(new FormatError('ERR_BUNDLE_INVALID', 'x'))).toMatchObject({ code: 'ERR_BUNDLE_INVALID', message: 'attestation(tpm): x' });
  });
});

/** An evidence type with a settings parser, a verifier and a relying-party side, recording what it is given. */
function plugin(type: string, seen: unknown[] = [], rp = true): EvidencePlugin<{ from: string; n: number }, string> {
  return {
    type,
    settings: (s) => {
      s.only(['n']);
      return { from: s.path, n: (s.raw.n as number) ?? 0 };
    },
    describe: (s) => `n=${s.n}`,
    verifier: (settings) => {
      seen.push(['verifier', settings]);
      return fakeVerifier(type);
    },
    ...(rp
      ? {
          relyingParty: {
            options: { [`${type}-roots`]: { type: 'string', value: 'FILE', help: 'roots' } },
            fromOptions: (v) => `options:${String(v[`${type}-roots`])}`,
            fromSettings: (s) => `settings:${s.n}`,
            reverifier: (trust): EvidenceReverifier => ({
              type,
              reverify: () => ({ selectors: [], checked: [trust], takenFromIssuer: [] }),
            }),
          },
        }
      : {}),
  } as EvidencePlugin<{ from: string; n: number }, string>;
}

describe('the evidence catalog', () => {
  it('parses attestation.<type> with each plug-in’s parser and reports unknown types with every other problem', () => {
    const problems: string[] = [];
    const s = Section.of('attestation', { a: { n: 1 }, b: { n: 2, junk: 1 }, c: {} }, problems);
    const settings = parseEvidenceSettings([plugin('a'), plugin('b')], s);
    expect([...settings.entries()]).toEqual([
      ['a', { from: 'attestation.a', n: 1 }],
      ['b', { from: 'attestation.b', n: 2 }],
    ]);
    expect(problems).toEqual(['unknown key attestation.c (evidence types: a, b)', 'unknown key attestation.b.junk']);
    const none: string[] = [];
    expect([...parseEvidenceSettings([plugin('a')], Section.of('attestation', undefined, none)).entries()]).toEqual([['a', { from: 'attestation.a', n: 0 }]]);
    expect(none).toEqual([]);
  });

  it('the attestation: key of the server configuration', () => {
    const section = attestationSection([plugin('a')]);
    expect(section.key).toBe('attestation');
    const problems: string[] = [];
    const parsed = section.parse(Section.of('', { attestation: { a: { n: 5 } } }, problems));
    expect(parsed.get('a')).toEqual({ from: 'attestation.a', n: 5 });
    expect(problems).toEqual([]);
  });

  it('gives the issuer’s verifiers and the relying party’s re-verifiers the same settings', () => {
    const seen: unknown[] = [];
    const c = new EvidenceCatalog(
      [plugin('a', seen), plugin('b', seen, false)],
      new Map([
        ['a', { from: 'x', n: 16 }],
        ['b', { from: 'y', n: 2 }],
      ]),
    );
    expect(c.types).toEqual(['a', 'b']);
    expect(c.verifiers({ store: TX }).types()).toEqual(['a', 'b']);
    expect(seen).toEqual([
      ['verifier', { from: 'x', n: 16 }],
      ['verifier', { from: 'y', n: 2 }],
    ]);
    const rv = c.reverifiersFromSettings();
    expect([...rv.keys()]).toEqual(['a']);
    expect(rv.get('a')!.reverify(Buffer.alloc(0), {} as never).checked).toEqual(['settings:16']);
    const ro = c.reverifiersFromOptions({ 'a-roots': 'f.pem' });
    expect([...ro.keys()]).toEqual(['a']);
    expect(ro.get('a')!.reverify(Buffer.alloc(0), {} as never).checked).toEqual(['options:f.pem']);
    expect(Object.keys(c.relyingPartyOptions())).toEqual(['a-roots']);
    expect(c.describe()).toEqual(['a: n=16', 'b: n=2']);
  });

  it('refuses a type registered twice, and a type whose settings were never parsed (no silent defaults)', () => {
    expect(() => new EvidenceCatalog([plugin('a'), plugin('a')])).toThrow('attestation: evidence type a registered twice');
    const c = new EvidenceCatalog([plugin('a')]);
    const msg = 'attestation: no settings were parsed for evidence type a';
    expect(() => c.verifiers({ store: TX })).toThrow(msg);
    expect(() => c.reverifiersFromSettings()).toThrow(msg);
    expect(() => c.describe()).toThrow(msg);
    // Settings parsed as undefined are still settings.
    const u = new EvidenceCatalog([{ ...plugin('a'), describe: undefined }], new Map([['a', undefined]]));
    expect(u.describe()).toEqual(['a']);
  });
});
