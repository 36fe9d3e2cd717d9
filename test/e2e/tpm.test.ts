import { createHash, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../helpers/shared.js';

const run = promisify(execFile);
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attest, GrpcCallError } from '../../src/agent/attest-client.js';
import { TpmAttestor } from '../../src/attestation/tpm/attestor.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { HAVE_SWTPM, startSwtpm, type Swtpm } from '../helpers/swtpm.js';
import { TPM_ALG, TPM_RH } from '../../src/tpm/constants.js';
import { akTemplate, objectName, parsePublic } from '../../src/tpm/structures.js';
import { verifyQuote } from '../../src/attestation/tpm/quote.js';
import { parseEvidence1 } from '../../src/tpm/evidence.js';
import { WritError } from '../../src/errors.js';
import { startServer } from '../helpers/server.js';

type Started = Awaited<ReturnType<typeof startServer>>;

describe.skipIf(!HAVE_SWTPM)('TPM attestation end to end (swtpm)', () => {
  let tpmA: Swtpm;
  let tpmB: Swtpm;
  let s: Started;
  let ekHashA: string;

  beforeAll(async () => {
    [tpmA, tpmB] = await Promise.all([startSwtpm(), startSwtpm()]);
    s = await startServer({
      attestation: { tpm: { manufacturer_roots: [tpmA.rootPem], intermediates: [tpmA.intermediatePem], pcr_selection: 'sha256:0,1,2,3,7' } },
    });
    const t = await tpmA.open();
    const cert = new X509Certificate(await t.nvRead(0x01c00002));
    await t.close();
    ekHashA = createHash('sha256')
      .update(cert.publicKey.export({ type: 'spki', format: 'der' }))
      .digest('hex');
    await adminClients(s.adminSocket).admin.createEntry({
      entry: {
        spiffeId: 'spiffe://example.org/agent/tpm-a',
        selectors: [
          { type: 'tpm', value: `ek_hash:${ekHashA}` },
          { type: 'tpm', value: 'model:swtpm' },
        ],
      },
    });
  }, 60_000);

  afterAll(async () => {
    await s?.stop();
    await Promise.all([tpmA?.stop(), tpmB?.stop()]);
  });

  const agentKey = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;

  async function attestWith(tpm: Swtpm, opts: ConstructorParameters<typeof TpmAttestor>[1] = {}) {
    const t = await tpm.open();
    const attestor = new TpmAttestor(t, opts);
    try {
      const res = await attest({ server: s.address, bundlePem: s.bundlePem, evidenceType: 'tpm', key: agentKey(), respond: (c) => attestor.respond(c) });
      return { res, rounds: attestor.rounds };
    } finally {
      await attestor.close();
      await t.close();
    }
  }

  it('activates the AK on first contact, then quotes without re-activation', async () => {
    const first = await attestWith(tpmA);
    expect(first.res.spiffeId).toBe('spiffe://example.org/agent/tpm-a');
    expect(first.rounds).toBe(2);
    const second = await attestWith(tpmA);
    expect(second.res.spiffeId).toBe('spiffe://example.org/agent/tpm-a');
    expect(second.rounds).toBe(1);
    const rec = await s.server.store.getTpmRecord(ekHashA);
    expect(rec).toBeDefined();
  });

  it('the EK recreated from the TCG template is the persistent one the sidecar uses by default', async () => {
    const ekPublic = async (recreateEk: boolean) => {
      const t = await tpmA.open();
      const a = new TpmAttestor(t, { recreateEk });
      try {
        return parseEvidence1(await a.respond({ nonce: Buffer.alloc(32), payload: Buffer.from('{"pcr_selection":"sha256:0"}') })).ekPublic;
      } finally {
        await a.close();
        await t.close();
      }
    };
    expect((await ekPublic(true)).equals(await ekPublic(false))).toBe(true);
    expect((await attestWith(tpmA, { recreateEk: true })).res.spiffeId).toBe('spiffe://example.org/agent/tpm-a');
  });

  it('a changed AK (RSA instead of ECC) is activated again', async () => {
    const r = await attestWith(tpmA, { ak: 'rsa' });
    expect(r.rounds).toBe(2);
    const back = await attestWith(tpmA, { ak: 'ecc' });
    expect(back.rounds).toBe(2);
  });

  it('works with the ECC P-384 EK too (a separate EK, so a separate identity)', async () => {
    const t = await tpmA.open();
    const cert = new X509Certificate(await t.nvRead(0x01c00016));
    await t.close();
    const eccHash = createHash('sha256')
      .update(cert.publicKey.export({ type: 'spki', format: 'der' }))
      .digest('hex');
    const before = await attestWith(tpmA, { ek: 'ecc384' }).catch((e) => e);
    expect((before as GrpcCallError).details).toMatch(/no registration entry matches/);
    await adminClients(s.adminSocket).admin.createEntry({
      entry: { spiffeId: 'spiffe://example.org/agent/tpm-a-ecc', selectors: [{ type: 'tpm', value: `ek_hash:${eccHash}` }] },
    });
    const r = await attestWith(tpmA, { ek: 'ecc384' });
    expect(r.res.spiffeId).toBe('spiffe://example.org/agent/tpm-a-ecc');
    expect(r.rounds).toBe(2);
  });

  it('`writ agent attest --tpm` does the same from the command line, measuring an agent binary', async () => {
    const out = join(tpmA.dir, 'cli-out');
    const r = await run(join(REPO_ROOT, 'bin', 'writ'), [
      'agent',
      'attest',
      '--server',
      s.address,
      '--bundle',
      s.server.bundlePemPath,
      '--tpm',
      tpmA.spec,
      '--out',
      out,
      '--measure',
      join(REPO_ROOT, 'package.json'),
      '--measure-log',
      join(tpmA.dir, 'cli-pcr23.log'),
    ]);
    expect(r.stdout.trim()).toBe('spiffe://example.org/agent/tpm-a');
    expect(existsSync(join(out, 'svid.pem'))).toBe(true);
    const hw = await run(join(REPO_ROOT, 'bin', 'writ'), [
      'agent',
      'attest',
      '--server',
      s.address,
      '--bundle',
      s.server.bundlePemPath,
      '--tpm',
      tpmA.spec,
      '--tpm-key',
      '--out',
      join(tpmA.dir, 'cli-hw'),
    ]);
    expect(hw.stdout.trim()).toBe('spiffe://example.org/agent/tpm-a');
    expect(existsSync(join(tpmA.dir, 'cli-hw', 'svid.key'))).toBe(false);
    expect(Object.keys(JSON.parse(readFileSync(join(tpmA.dir, 'cli-hw', 'svid.key.tpm'), 'utf8')))).toEqual(['parent', 'public', 'private']);
    const bad = await run(join(REPO_ROOT, 'bin', 'writ'), [
      'agent',
      'attest',
      '--server',
      s.address,
      '--bundle',
      s.server.bundlePemPath,
      '--tpm',
      'swtpm:host=127.0.0.1,port=1',
      '--out',
      out,
    ]).catch((e) => e);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^writ: tpm: cannot connect to swtpm at 127.0.0.1:1/);
  });

  it('refuses a TPM whose EK chains to no trusted root', async () => {
    const err = await attestWith(tpmB).catch((e) => e);
    expect(err).toBeInstanceOf(GrpcCallError);
    expect((err as GrpcCallError).writCode).toBe('ERR_EVIDENCE_INVALID');
    expect((err as GrpcCallError).details).toMatch(/^attestation failed: evidence rejected \(the server log has the reason under request id [0-9a-f]{12}\)$/);
  });
});

describe.skipIf(!HAVE_SWTPM)('TPM structures from a real swtpm, mutated', () => {
  it('every single-bit flip of a real quote (attest and signature) is rejected with a typed error', async () => {
    const T = await startSwtpm();
    try {
      const tpm = await T.open();
      const ak = await tpm.createPrimary(TPM_RH.OWNER, akTemplate('ecc'));
      const sel = [{ hash: TPM_ALG.SHA256, pcrs: [0, 1, 2, 3, 7] }];
      const nonce = Buffer.alloc(32, 5);
      const q = await tpm.quote(ak.handle, nonce, sel);
      const values = await tpm.pcrRead(sel);
      await tpm.flush(ak.handle);
      await tpm.shutdown();
      await tpm.close();
      expect(verifyQuote(ak.public, q.attest, q.signature, nonce, sel, values).attest.type).toBe(0x8018);
      let rejected = 0;
      // objectAttributes (bytes 4..7 of the AK) carry authorization bits (userWithAuth, noDA, ...)
      // that do not change what a quote proves; offline they cannot be pinned, online the Name
      // binds them: every flip there changes the Name the credential activation is bound to.
      const ATTRS = [4, 5, 6, 7];
      for (const i of ATTRS) {
        for (let bit = 1; bit < 256; bit <<= 1) {
          const m = Buffer.from(ak.public.bytes);
          m[i]! ^= bit;
          try {
            expect(objectName(parsePublic(m)).equals(objectName(ak.public))).toBe(false);
          } catch (e) {
            expect(e).toBeInstanceOf(WritError);
          }
        }
      }
      let skipped = 0;
      for (const [name, buf] of [
        ['attest', q.attest],
        ['signature', q.signature],
        ['ak', ak.public.bytes],
      ] as const) {
        for (let i = 0; i < buf.length; i++) {
          if (name === 'ak' && ATTRS.includes(i)) {
            skipped += 2;
            continue;
          }
          for (const bit of [0x01, 0x80]) {
            const m = Buffer.from(buf);
            m[i]! ^= bit;
            try {
              const akPub = name === 'ak' ? parsePublic(m) : ak.public;
              verifyQuote(akPub, name === 'attest' ? m : q.attest, name === 'signature' ? m : q.signature, nonce, sel, values);
            } catch (e) {
              expect(e, `${name}[${i}]^${bit}`).toBeInstanceOf(WritError);
              rejected++;
              continue;
            }
            throw new Error(`flip of ${name}[${i}]^${bit} was accepted`);
          }
        }
      }
      expect(rejected + skipped).toBe((q.attest.length + q.signature.length + ak.public.bytes.length) * 2);
      expect(skipped).toBe(8);
    } finally {
      await T.stop();
    }
  });
});
