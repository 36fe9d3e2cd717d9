/**
 * Interoperability with tools we did not write (tpm2-tools on the same swtpm): their evidence
 * passes our checker, our quotes pass tpm2_checkquote, and credentials made by one side are
 * activated by the other.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TPMA_OBJECT, TPM_ALG, TPM_RH } from '../../src/tpm/constants.js';
import { TpmWriter } from '../../src/tpm/marshal.js';
import { akTemplate, marshalPublic, objectName, type PublicTemplate } from '../../src/tpm/structures.js';
import { EK_TEMPLATES } from '../../src/tpm/ek-templates.js';
import { encodeEventLog } from '../../src/tpm/eventlog.js';
import { makeCredential } from '../../src/attestation/tpm/credential.js';
import { readPublicFile } from '../../src/attestation/tpm/check-quote.js';
import { HAVE_SWTPM, HAVE_TPM2_TOOLS, startSwtpm, type Swtpm } from '../helpers/swtpm.js';
import { REPO_ROOT } from '../helpers/shared.js';

const run = promisify(execFile);
const WRIT = join(REPO_ROOT, 'bin', 'writ');
const SEL = 'sha256:0,1,2,3,7';

describe.skipIf(!HAVE_SWTPM || !HAVE_TPM2_TOOLS)('TPM interoperability with tpm2-tools (swtpm)', () => {
  let T: Swtpm;
  const tools = async (cmd: string, ...args: string[]) => {
    const r = await run(cmd, args, { cwd: T.dir, env: { ...process.env, TPM2TOOLS_TCTI: T.spec } });
    await run('tpm2_flushcontext', ['-t'], { cwd: T.dir, env: { ...process.env, TPM2TOOLS_TCTI: T.spec } });
    return r;
  };
  const f = (n: string) => join(T.dir, n);
  const writeTmp = (n: string, b: Buffer) => {
    writeFileSync(f(n), b);
    return f(n);
  };

  beforeAll(async () => {
    T = await startSwtpm();
    expect(existsSync(WRIT.replace('bin/writ', 'dist/src/cli/main.js'))).toBe(true);
  }, 60_000);
  afterAll(async () => {
    await T?.stop();
  });

  it('evidence made by tpm2_createek/tpm2_createak/tpm2_quote passes `writ tpm check-quote` (EK chain included)', async () => {
    await tools('tpm2_createek', '-c', 'ek.ctx', '-G', 'rsa', '-u', 'ek.pub');
    await tools('tpm2_createak', '-C', 'ek.ctx', '-c', 'ak.ctx', '-G', 'ecc', '-g', 'sha256', '-s', 'ecdsa', '-u', 'ak.pub', '-n', 'ak.name');
    await tools('tpm2_quote', '-c', 'ak.ctx', '-l', SEL, '-q', 'c0ffee00c0ffee00', '-m', 'quote.msg', '-s', 'quote.sig', '-g', 'sha256');
    await tools('tpm2_pcrread', SEL, '-o', 'pcrs.bin');
    await tools('tpm2_nvread', '0x1c00002', '-C', '0x1c00002', '-o', 'ek.der');
    const args = [
      'tpm',
      'check-quote',
      '--ak-pub',
      f('ak.pub'),
      '--attest',
      f('quote.msg'),
      '--sig',
      f('quote.sig'),
      '--pcrs',
      f('pcrs.bin'),
      '--pcr-selection',
      SEL,
    ];
    const ok = await run(WRIT, [
      ...args,
      '--nonce',
      'c0ffee00c0ffee00',
      '--ek-cert',
      f('ek.der'),
      '--ek-pub',
      f('ek.pub'),
      '--roots',
      T.rootPem,
      '--intermediates',
      T.intermediatePem,
    ]);
    expect(ok.stdout).toContain('ok       extraData equals the nonce');
    expect(ok.stdout).toContain('ok       EK certificate chains to a given root');
    expect(ok.stdout).toContain('unchecked AK-to-EK binding');
    const bad = await run(WRIT, [...args, '--nonce', 'c0ffee00c0ffee01']).catch((e) => e);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('writ: attestation(tpm): quote nonce mismatch\n');
    // An event log that replays to the quoted PCRs passes; one that does not is refused.
    const pcrs = readFileSync(f('pcrs.bin'));
    const algs = new Map([[TPM_ALG.SHA256, 32]]);
    const zeroLog = encodeEventLog(algs, []);
    const withLog = await run(WRIT, [...args, '--nonce', 'c0ffee00c0ffee00', '--eventlog', writeTmp('empty.log', zeroLog)]);
    expect(withLog.stdout).toContain('ok       event log replays');
    const liar = encodeEventLog(algs, [{ pcr: 7, type: 0xd, digests: new Map([[TPM_ALG.SHA256, Buffer.alloc(32, 7)]]), data: Buffer.from('x') }]);
    const lied = await run(WRIT, [...args, '--nonce', 'c0ffee00c0ffee00', '--eventlog', writeTmp('liar.log', liar)]).catch((e) => e);
    expect(pcrs.subarray(4 * 32).equals(Buffer.alloc(32))).toBe(true); // swtpm: PCR 7 is still zero
    expect(lied.code).toBe(1);
    expect(lied.stderr).toBe('writ: attestation(tpm): event log replay does not match quoted PCR sha256:7\n');
    // And the tool's own checker agrees on the genuine quote.
    await tools('tpm2_checkquote', '-u', 'ak.pub', '-m', 'quote.msg', '-s', 'quote.sig', '-f', 'pcrs.bin', '-l', SEL, '-g', 'sha256', '-q', 'c0ffee00c0ffee00');
  });

  it('a quote made by our TypeScript client passes tpm2_checkquote', async () => {
    const tpm = await T.open();
    const ak = await tpm.createPrimary(TPM_RH.OWNER, akTemplate('ecc'));
    const nonce = randomBytes(16);
    const sel = [{ hash: TPM_ALG.SHA256, pcrs: [0, 1, 2, 3, 7] }];
    const q = await tpm.quote(ak.handle, nonce, sel);
    const values = (await tpm.pcrRead(sel)).get(TPM_ALG.SHA256)!;
    await tpm.flush(ak.handle);
    await tpm.close();
    writeFileSync(f('our-ak.pub'), new TpmWriter().tpm2b(marshalPublic(ak.public)).done());
    writeFileSync(f('our-quote.msg'), q.attest);
    writeFileSync(f('our-quote.sig'), q.signature);
    writeFileSync(f('our-pcrs.bin'), Buffer.concat([0, 1, 2, 3, 7].map((p) => values.get(p)!)));
    const r = await tools(
      'tpm2_checkquote',
      '-u',
      'our-ak.pub',
      '-m',
      'our-quote.msg',
      '-s',
      'our-quote.sig',
      '-f',
      'our-pcrs.bin',
      '-l',
      SEL,
      '-g',
      'sha256',
      '-q',
      nonce.toString('hex'),
    );
    expect(r.stdout).toContain('pcrs:');
    const wrong = await tools(
      'tpm2_checkquote',
      '-u',
      'our-ak.pub',
      '-m',
      'our-quote.msg',
      '-s',
      'our-quote.sig',
      '-f',
      'our-pcrs.bin',
      '-l',
      SEL,
      '-g',
      'sha256',
      '-q',
      randomBytes(16).toString('hex'),
    ).catch((e) => e);
    expect(wrong.code).not.toBe(0);
  });

  it('a non-restricted signing key: tpm2_checkquote accepts its "quote", writ refuses it', async () => {
    const tpm = await T.open();
    const tpl = { ...akTemplate('ecc'), attributes: akTemplate('ecc').attributes & ~TPMA_OBJECT.restricted } as PublicTemplate;
    const key = await tpm.createPrimary(TPM_RH.OWNER, tpl);
    const nonce = randomBytes(16);
    const sel = [{ hash: TPM_ALG.SHA256, pcrs: [0, 1, 2, 3, 7] }];
    const q = await tpm.quote(key.handle, nonce, sel);
    const values = (await tpm.pcrRead(sel)).get(TPM_ALG.SHA256)!;
    await tpm.flush(key.handle);
    await tpm.close();
    writeFileSync(f('nr.pub'), new TpmWriter().tpm2b(marshalPublic(key.public)).done());
    writeFileSync(f('nr.msg'), q.attest);
    writeFileSync(f('nr.sig'), q.signature);
    writeFileSync(f('nr.pcrs'), Buffer.concat([0, 1, 2, 3, 7].map((p) => values.get(p)!)));
    await tools('tpm2_checkquote', '-u', 'nr.pub', '-m', 'nr.msg', '-s', 'nr.sig', '-f', 'nr.pcrs', '-l', SEL, '-g', 'sha256', '-q', nonce.toString('hex'));
    const ours = await run(WRIT, [
      'tpm',
      'check-quote',
      '--ak-pub',
      f('nr.pub'),
      '--attest',
      f('nr.msg'),
      '--sig',
      f('nr.sig'),
      '--pcrs',
      f('nr.pcrs'),
      '--pcr-selection',
      SEL,
      '--nonce',
      nonce.toString('hex'),
    ]).catch((e) => e);
    expect(ours.code).toBe(1);
    expect(ours.stderr).toBe('writ: attestation(tpm): AK lacks required attributes: restricted\n');
  });

  it('our MakeCredential output is activated by tpm2_activatecredential', async () => {
    await tools('tpm2_createek', '-c', 'ek2.ctx', '-G', 'rsa', '-u', 'ek2.pub');
    await tools('tpm2_createak', '-C', 'ek2.ctx', '-c', 'ak2.ctx', '-G', 'ecc', '-g', 'sha256', '-s', 'ecdsa', '-u', 'ak2.pub', '-n', 'ak2.name');
    const ek = readPublicFile(readFileSync(f('ek2.pub')));
    const akName = objectName(readPublicFile(readFileSync(f('ak2.pub'))));
    expect(akName.equals(readFileSync(f('ak2.name')))).toBe(true);
    const secret = randomBytes(32);
    const cred = makeCredential(ek, akName, secret);
    // tpm2-tools credential file: magic 0xBADCC0DE, version 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET.
    writeFileSync(f('cred.bin'), new TpmWriter().u32(0xbadcc0de).u32(1).tpm2b(cred.credentialBlob).tpm2b(cred.secret).done());
    const env = { ...process.env, TPM2TOOLS_TCTI: T.spec };
    await run('tpm2_startauthsession', ['--policy-session', '-S', 'session.ctx'], { cwd: T.dir, env });
    await run('tpm2_policysecret', ['-S', 'session.ctx', '-c', 'e'], { cwd: T.dir, env });
    await run('tpm2_activatecredential', ['-c', 'ak2.ctx', '-C', 'ek2.ctx', '-i', 'cred.bin', '-o', 'recovered.bin', '-P', 'session:session.ctx'], {
      cwd: T.dir,
      env,
    });
    await run('tpm2_flushcontext', ['-t'], { cwd: T.dir, env }).catch(() => undefined);
    await run('tpm2_flushcontext', ['-s'], { cwd: T.dir, env }).catch(() => undefined);
    expect(readFileSync(f('recovered.bin')).equals(secret)).toBe(true);
  });

  it('tpm2_makecredential output is activated by our TypeScript client', async () => {
    const tpm = await T.open();
    const ek = await tpm.createPrimary(TPM_RH.ENDORSEMENT, EK_TEMPLATES[0]!.template);
    const ak = await tpm.createPrimary(TPM_RH.OWNER, akTemplate('rsa'));
    await tpm.close();
    writeFileSync(f('ek3.pub'), new TpmWriter().tpm2b(marshalPublic(ek.public)).done());
    writeFileSync(f('ak3.name'), objectName(ak.public));
    const secret = randomBytes(24);
    writeFileSync(f('secret.bin'), secret);
    await run('tpm2_makecredential', ['-T', 'none', '-u', 'ek3.pub', '-s', 'secret.bin', '-n', ak.name.toString('hex'), '-o', 'cred3.bin', '-G', 'rsa'], {
      cwd: T.dir,
    }).catch(async () =>
      run('tpm2_makecredential', ['-T', 'none', '-e', 'ek3.pub', '-s', 'secret.bin', '-n', ak.name.toString('hex'), '-o', 'cred3.bin'], { cwd: T.dir }),
    );
    const file = readFileSync(f('cred3.bin'));
    expect(file.readUInt32BE(0)).toBe(0xbadcc0de);
    const blobLen = file.readUInt16BE(8);
    const blob = file.subarray(10, 10 + blobLen);
    const encSecret = file.subarray(12 + blobLen, 12 + blobLen + file.readUInt16BE(10 + blobLen));
    const t2 = await T.open();
    try {
      const got = await t2.activateCredential(ak.handle, ek.handle, Buffer.from(blob), Buffer.from(encSecret));
      expect(got.equals(secret)).toBe(true);
    } finally {
      await t2.flush(ak.handle);
      await t2.flush(ek.handle);
      await t2.close();
    }
  });
});
