/**
 * The `nitro` plug-in's pieces without a server: `attestation.nitro` settings and their
 * problems, the issuer verifier's window and chain cache, the relying party's re-verifier, and
 * `writ enclave check --type nitro` on the genuine vectors (raw and base64) as the index says.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NitroEvidenceError } from '../../src/attestation/nitro/errors.js';
import { nitroReverifier, nitroVerifier, parseNitroSettings, type NitroSettings } from '../../src/attestation/nitro/plugin.js';
import { MAX_NSM_OUTPUT_BYTES, nitroProducer, runNsmCommand } from '../../src/attestation/nitro/producer.js';
import { AWS_NITRO_ROOT_G1_SHA256, DEFAULT_NITRO_ANCHORS, sha256Hex } from '../../src/attestation/nitro/roots.js';
import { NitroChainCache, verifyNitroDocument } from '../../src/attestation/nitro/verify.js';
import { Section } from '../../src/config/section.js';
import { runCli } from '../helpers/cli.js';
import { nitroDocument, nitroPki } from '../helpers/nitro-doc.js';
import { HAVE_SHARED, SHARED } from '../helpers/shared.js';
import { tmpDir } from '../helpers/tmp.js';
import type { AgentPublicKey } from '../../src/svid/public-key.js';

const pem = (der: Buffer) => `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`;

function settings(raw: Record<string, unknown>): { s: NitroSettings; problems: string[] } {
  const problems: string[] = [];
  return { s: parseNitroSettings(Section.of('attestation.nitro', raw, problems)), problems };
}

describe('attestation.nitro settings', () => {
  it('defaults: the shipped AWS root, debug refused, 5 minutes back and 1 minute ahead', () => {
    const { s, problems } = settings({});
    expect(problems).toEqual([]);
    expect(s.anchors.map(sha256Hex)).toEqual([AWS_NITRO_ROOT_G1_SHA256]);
    expect(s).toMatchObject({ allowDebug: false, maxAgeMs: 300_000, maxClockSkewMs: 60_000, rootFiles: [] });
  });

  it('roots replace the shipped root; root_sha256 pins them; every problem is reported', () => {
    const dir = tmpDir();
    const at = new Date();
    const pki = nitroPki(at);
    writeFileSync(join(dir, 'root.pem'), pem(pki.root.der));
    writeFileSync(join(dir, 'chain.pem'), pem(pki.intermediates[0]!.der) + pem(pki.root.der));
    const fp = sha256Hex(pki.root.der);
    const ok = settings({ roots: [join(dir, 'root.pem')], root_sha256: [fp.toUpperCase().replace(/(..)(?!$)/g, '$1:')], allow_debug: true, max_age: '30s' });
    expect(ok.problems).toEqual([]);
    expect(ok.s.anchors).toEqual([pki.root.der]);
    expect(ok.s).toMatchObject({ allowDebug: true, maxAgeMs: 30_000 });
    // A DER file is read as one certificate; the shipped root's own fingerprint as the pin passes.
    writeFileSync(join(dir, 'root.der'), pki.root.der);
    expect(settings({ roots: [join(dir, 'root.der')] }).s.anchors).toEqual([pki.root.der]);
    expect(settings({ root_sha256: [AWS_NITRO_ROOT_G1_SHA256] }).problems).toEqual([]);
    const bad = settings({
      roots: [join(dir, 'chain.pem'), join(dir, 'missing.pem')],
      root_sha256: ['abc'],
      allow_debug: 'yes',
      max_age: 'soon',
      colour: 'red',
    });
    const text = bad.problems.join('\n');
    expect(text).toContain('unknown key attestation.nitro.colour');
    expect(text).toMatch(/attestation\.nitro\.roots: .*chain\.pem: certificate [0-9a-f]{64} is not self-signed/);
    expect(text).toMatch(/^attestation\.nitro\.roots: cannot read .*missing\.pem: no such file$/m);
    expect(text).toContain('attestation.nitro.root_sha256: "abc" is not a SHA-256 fingerprint');
    expect(text).toContain('attestation.nitro.allow_debug must be true or false');
    expect(text).toMatch(/attestation\.nitro\.max_age: invalid duration/);
    // A pin the shipped root does not match.
    expect(settings({ root_sha256: [fp] }).problems).toEqual([
      `attestation.nitro.roots: root ${AWS_NITRO_ROOT_G1_SHA256} is not one of attestation.nitro.root_sha256`,
    ]);
  });
});

describe('the issuer verifier and the relying party re-verifier', () => {
  const now = new Date();
  const pki = nitroPki(now);
  const B = Buffer.alloc(32, 0x5b);
  const s: NitroSettings = { anchors: [pki.root.der], rootFiles: [], allowDebug: false, maxAgeMs: 300_000, maxClockSkewMs: 60_000 };
  const agentKey = {} as AgentPublicKey;
  const handshake = async (doc: Buffer, at = now) => (await nitroVerifier(s).begin({ nonce: B, agentKey, now: at })).respond(doc);

  it('attests a fresh document over the nonce: selectors, platform, the evidence embedded', async () => {
    const doc = nitroDocument({ pki, timestamp: now.getTime() - 1000, nonce: B });
    const step = await handshake(doc);
    expect(step.kind).toBe('attested');
    if (step.kind !== 'attested') return;
    expect(step.result.platform).toBe('nitro:module_id:i-0123456789abcdef0-enc0123456789abcdef');
    expect(step.result.publicEvidence).toEqual(doc);
    expect(step.result.selectors).toHaveLength(10);
  });

  it('applies the timestamp window around its clock', async () => {
    for (const [offset, ok] of [
      [-300_000, true],
      [-300_001, false],
      [60_000, true],
      [60_001, false],
    ] as const) {
      const doc = nitroDocument({ pki, timestamp: now.getTime() + offset, nonce: B });
      if (ok) expect((await handshake(doc)).kind).toBe('attested');
      else await expect(handshake(doc)).rejects.toMatchObject({ reason: 'timestamp', code: 'ERR_EVIDENCE_INVALID' });
    }
  });

  it('caches a verified chain for its validity only', () => {
    const cache = new NitroChainCache();
    const doc = nitroDocument({ pki, timestamp: now.getTime(), nonce: B });
    const o = { anchors: [pki.root.der], at: now, allowDebug: false, chainCache: cache };
    expect(verifyNitroDocument(doc, o).rootSha256).toBe(sha256Hex(pki.root.der));
    expect(cache.lookup(verifyNitroDocument(doc, o).document, now)).toBe(sha256Hex(pki.root.der));
    // Past the leaf's notAfter (2 hours) the cache does not answer and the chain fails again.
    const later = new Date(now.getTime() + 3 * 3600_000);
    expect(cache.lookup(verifyNitroDocument(doc, o).document, later)).toBeUndefined();
    expect(() => verifyNitroDocument(doc, { ...o, at: later })).toThrow(NitroEvidenceError);
  });

  it('re-verifies at the document timestamp, not after the relying party clock, with its own debug policy', () => {
    const doc = nitroDocument({ pki, timestamp: now.getTime(), nonce: B });
    const rv = nitroReverifier({ anchors: [pki.root.der], allowDebug: false });
    const ctx = { binding: B, agentJkt: 'x', at: new Date(now.getTime() + 5 * 3600_000) };
    // Five hours later the leaf has expired, yet it was valid when it signed the document.
    expect(rv.reverify(doc, ctx).selectors).toHaveLength(10);
    expect(rv.reverify(doc, ctx).checked).toContain('nitro: not a debug enclave (PCR0 is not all zero)');
    expect(() => rv.reverify(doc, { ...ctx, binding: Buffer.alloc(32) })).toThrow(/nonce is not the binding digest/);
    expect(() => rv.reverify(doc, { ...ctx, at: new Date(now.getTime() - 61_000) })).toThrow(/is in the future/);
    expect(() => nitroReverifier({ anchors: DEFAULT_NITRO_ANCHORS, allowDebug: false }).reverify(doc, ctx)).toThrow(/is not a pinned root/);
  });
});

describe('the NSM command the agent runs', () => {
  const node = (code: string) => [process.execPath, ['-e', code]] as const;
  const nonce = Buffer.alloc(32, 0xab);

  it('gets the nonce as hex on argv and stdin, and its output back', async () => {
    const [cmd, args] = node("let i='';process.stdin.on('data',d=>i+=d).on('end',()=>process.stdout.write(JSON.stringify([process.argv.at(-1),i])))");
    const out = await runNsmCommand(cmd, args, nonce, 10_000);
    expect(JSON.parse(out.toString())).toEqual([nonce.toString('hex'), `${nonce.toString('hex')}\n`]);
  });

  it('bounds its output, its time, and reports its failure', async () => {
    const [big, bigArgs] = node(`process.stdout.write(Buffer.alloc(${MAX_NSM_OUTPUT_BYTES + 1}, 65))`);
    await expect(runNsmCommand(big, bigArgs, nonce, 10_000)).rejects.toThrow(`printed more than ${MAX_NSM_OUTPUT_BYTES} bytes`);
    const [slow, slowArgs] = node('setTimeout(() => {}, 10000)');
    await expect(runNsmCommand(slow, slowArgs, nonce, 300)).rejects.toThrow(/did not finish within 300 ms/);
    const [failing, failingArgs] = node("process.stderr.write('no /dev/nsm here\\nmore'); process.exit(7)");
    await expect(runNsmCommand(failing, failingArgs, nonce, 10_000)).rejects.toThrow(/exited with code 7: no \/dev\/nsm here$/);
  });

  it('the producer refuses output that is not a document, before sending anything', async () => {
    const session = await nitroProducer.open({ 'nitro-command': process.execPath, 'nitro-arg': ['-e', "process.stdout.write('hello')"] });
    await expect(session.respond({ nonce, payload: Buffer.alloc(0) })).rejects.toMatchObject({ reason: 'malformed' });
    await expect(nitroProducer.open({ 'nitro-command': 'x', 'nitro-timeout': 'soon' })).rejects.toThrow(/--nitro-timeout: invalid duration/);
  });
});

describe.skipIf(!HAVE_SHARED)('writ enclave check --type nitro on the genuine vectors', () => {
  const v = (rel: string) => join(SHARED, 'vectors', rel);
  const check = (...args: string[]) => runCli(['enclave', 'check', '--type', 'nitro', ...args]);

  it('sample-attestation-doc at its instant: valid with --allow-debug, refused as debug without', async () => {
    const base = ['--evidence', v('nitro/sample-attestation-doc.cbor'), '--at', '2024-11-14T23:46:27.382Z'];
    const dbg = await check(...base, '--allow-debug');
    expect(dbg.err).toBe('');
    expect(dbg.code).toBe(0);
    expect(dbg.out).toContain(
      `ok        certificate chain leaf → cabundle (4) → a pinned root, valid at 2024-11-14T23:46:27.382Z: root SHA-256 ${AWS_NITRO_ROOT_G1_SHA256}\n`,
    );
    expect(dbg.out).toContain('ok        debug enclave (PCR0 all zero) allowed by --allow-debug: PCR0 is all zero\n');
    expect(dbg.out).toContain('unchecked nonce: the document has none\n');
    const strict = await check(...base);
    expect(strict.code).toBe(1);
    expect(strict.out).toContain('FAILED    not a debug enclave (PCR0 is not all zero): PCR0 is all zero: the enclave runs in debug mode');
    // Three hours later the leaf has expired.
    const late = await check('--evidence', v('nitro/sample-attestation-doc.cbor'), '--at', '2024-11-15T02:46:27Z', '--allow-debug');
    expect(late.code).toBe(1);
    expect(late.out).toMatch(/FAILED {4}certificate chain .*current time is after notAfter/);
  });

  it('the evervault GA document as base64 is read like the raw one; JSON output carries the fields', async () => {
    const raw = await check(
      '--evidence',
      v('enclave/nitro/evervault_valid-attestation-doc.decoded-cose.bin'),
      '--at',
      '2023-09-18T15:03:31Z',
      '--allow-debug',
      '--json',
    );
    const b64 = await check('--evidence', v('enclave/nitro/evervault_valid-attestation-doc-base64'), '--at', '2023-09-18T15:03:31Z', '--allow-debug', '--json');
    expect(raw.code).toBe(0);
    expect(b64.out).toBe(raw.out);
    const j = JSON.parse(raw.out) as { valid: boolean; moduleId: string; pcrs: Record<string, string>; cabundleSha256: string[] };
    expect(j.valid).toBe(true);
    expect(j.moduleId).toBe('i-0918f6c55e3b61d89-enc018aa8b8e2285d13');
    expect(Object.keys(j.pcrs)).toHaveLength(16);
    expect(j.cabundleSha256[0]).toBe(AWS_NITRO_ROOT_G1_SHA256);
  });

  it('a production enclave (evervault beta non-debug) passes without --allow-debug; a corrupted copy fails its signature', async () => {
    const file = v('enclave/nitro/evervault_beta_non-debug-cert-containing-attestation-document-18-1-23.extracted-cose.bin');
    const ok = await check('--evidence', file, '--at', '2023-01-18T13:07:20Z', '--nitro-max-age', '1m', '--roots', v('enclave/roots/aws_nitro_root_g1.pem'));
    expect(ok.err).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.out).toContain('ok        not a debug enclave (PCR0 is not all zero)\n');
    expect(ok.out).toMatch(/selector nitro:pcr:0:d265a83f[0-9a-f]+19af\n/);
    const dir = tmpDir();
    const { readFileSync } = await import('node:fs');
    const bytes = Buffer.from(readFileSync(file));
    bytes[200] = bytes[200]! ^ 1;
    writeFileSync(join(dir, 'bad.cbor'), bytes);
    const bad = await check('--evidence', join(dir, 'bad.cbor'), '--at', '2023-01-18T13:07:20Z');
    expect(bad.code).toBe(1);
    expect(bad.out).toContain(
      'FAILED    ES384 signature by the leaf certificate over the exact Sig_structure: attestation(nitro): the COSE_Sign1 signature does not verify',
    );
    writeFileSync(join(dir, 'junk'), 'not a document');
    const junk = await check('--evidence', join(dir, 'junk'));
    expect(junk.code).toBe(1);
    expect(junk.out).toMatch(/^FAILED {4}COSE_Sign1 \(ES384\) attestation document parsed strictly: .*does not decode to a COSE_Sign1 document\n$/);
    writeFileSync(join(dir, 'junk'), 'not a document!');
    expect((await check('--evidence', join(dir, 'junk'))).out).toMatch(/neither a COSE_Sign1 document nor base64 of one\n$/);
  });

  it('refuses the options a Nitro document has no use for, and roots that are not a root', async () => {
    const base = ['--evidence', v('nitro/sample-attestation-doc.cbor')];
    for (const o of [['--collateral', '/tmp'], ['--certs', '/tmp/x'], ['--require-tcb']]) {
      const r = await check(...base, ...o);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/carries its certificates and has no TCB collateral/);
    }
    expect((await check(...base, '--roots', v('enclave/roots/amd_milan_ask_ark.pem'))).err).toMatch(/--roots: .*not self-signed/);
    expect((await check(...base, '--report-data', 'xyz')).err).toMatch(/--report-data must be/);
    expect((await check(...base, '--at', 'yesterday')).err).toMatch(/--at must be an ISO 8601 instant/);
  });
});
