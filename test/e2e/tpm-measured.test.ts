/** Measured boot and measured agent code, against a real swtpm. */
import { createHash, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { parseCertificate } from '../../src/x509/certificate.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attest, GrpcCallError } from '../../src/agent/attest-client.js';
import { TpmAttestor, type TpmAttestorOptions } from '../../src/attestation/tpm/attestor.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { TPM_ALG } from '../../src/tpm/constants.js';
import { encodeEventLog, parseEventLog, EV_IPL, EV_NO_ACTION } from '../../src/tpm/eventlog.js';
import { encodeEvidence1, parseEvidence1 } from '../../src/tpm/evidence.js';
import { HAVE_SWTPM, startSwtpm, type Swtpm } from '../helpers/swtpm.js';
import { startServer } from '../helpers/server.js';

type Started = Awaited<ReturnType<typeof startServer>>;

const key = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;

describe.skipIf(!HAVE_SWTPM)('measured boot and measured agent code (swtpm)', () => {
  let T: Swtpm;
  let s: Started;
  let agentPath: string;
  let agentDigest: string;

  beforeAll(async () => {
    T = await startSwtpm();
    s = await startServer({
      attestation: { tpm: { manufacturer_roots: [T.rootPem], intermediates: [T.intermediatePem], pcr_selection: 'sha256:0,1,2,3,4,7,23' } },
    });
    agentPath = join(T.dir, 'agent-bin');
    writeFileSync(agentPath, 'pretend this is the agent executable\n');
    agentDigest = createHash('sha256').update(readFileSync(agentPath)).digest('hex');
    await adminClients(s.adminSocket).admin.createEntry({
      entry: {
        spiffeId: 'spiffe://example.org/agent/measured',
        selectors: [
          { type: 'tpm', value: 'model:swtpm' },
          { type: 'tpm', value: `agent_code:sha256:${agentDigest}` },
        ],
      },
    });
    await adminClients(s.adminSocket).admin.createEntry({
      entry: { spiffeId: 'spiffe://example.org/agent/unmeasured', selectors: [{ type: 'tpm', value: 'model:swtpm' }] },
    });
  }, 60_000);
  afterAll(async () => {
    await s?.stop();
    await T?.stop();
  });

  async function run(opts: TpmAttestorOptions, mutate?: (ev: Buffer) => Buffer): Promise<string | GrpcCallError> {
    const tpm = await T.open();
    const a = new TpmAttestor(tpm, opts);
    try {
      const r = await attest({
        server: s.address,
        bundlePem: s.bundlePem,
        evidenceType: 'tpm',
        key: key(),
        respond: async (c) => {
          const first = a.rounds === 0;
          const out = await a.respond(c);
          return first && mutate ? mutate(out) : out;
        },
      });
      return r.spiffeId;
    } catch (e) {
      if (e instanceof GrpcCallError) return e;
      throw e;
    } finally {
      await a.close();
      await tpm.close();
    }
  }

  it('the agent code digest measured into PCR 23 becomes a selector, and selects the more specific entry', async () => {
    const logFile = join(T.dir, 'pcr23.log');
    expect(await run({ measure: { path: agentPath, logFile } })).toBe('spiffe://example.org/agent/measured');
    // Again: the log grows and still replays to the PCR.
    expect(await run({ measure: { path: agentPath, logFile } })).toBe('spiffe://example.org/agent/measured');
    expect(parseEventLog(readFileSync(logFile)).events.length).toBe(2);
    // Without a measurement the agent only gets the less specific identity.
    expect(await run({})).toBe('spiffe://example.org/agent/unmeasured');
  });

  it('an agent log that claims other code than was extended is refused', async () => {
    const logFile = join(T.dir, 'pcr23-b.log');
    const r = await run({ measure: { path: agentPath, logFile } }, (ev) => {
      const e = parseEvidence1(ev);
      const { events } = parseEventLog(e.appLog!);
      const last = events[events.length - 1]!;
      const forged = { ...last, digests: new Map([[TPM_ALG.SHA256, Buffer.alloc(32, 0x42)]]) };
      return encodeEvidence1({ ...e, appLog: encodeEventLog(new Map([[TPM_ALG.SHA256, 32]]), [...events.slice(0, -1), forged]) });
    });
    expect(r).toBeInstanceOf(GrpcCallError);
    expect((r as GrpcCallError).writCode).toBe('ERR_EVIDENCE_INVALID');
  });

  it('an agent log with events outside the agent PCR is refused', async () => {
    const logFile = join(T.dir, 'pcr23-c.log');
    const r = await run({ measure: { path: agentPath, logFile } }, (ev) => {
      const e = parseEvidence1(ev);
      const { events } = parseEventLog(e.appLog!);
      const extra = { pcr: 4, type: EV_IPL, digests: new Map([[TPM_ALG.SHA256, Buffer.alloc(32, 1)]]), data: Buffer.from('x') };
      return encodeEvidence1({ ...e, appLog: encodeEventLog(new Map([[TPM_ALG.SHA256, 32]]), [...events, extra]) });
    });
    expect(r).toBeInstanceOf(GrpcCallError);
  });

  it('a firmware event log is replayed against the quoted PCRs; a tampered one is refused', async () => {
    // Play firmware: extend PCR 4 with two boot events and keep their log (H-CRTM locality 0 on PCR 0).
    const tpm = await T.open();
    const d1 = createHash('sha256').update('bootloader').digest();
    const d2 = createHash('sha256').update('kernel').digest();
    await tpm.pcrExtend(4, TPM_ALG.SHA256, d1);
    await tpm.pcrExtend(4, TPM_ALG.SHA256, d2);
    await tpm.close();
    const algs = new Map([[TPM_ALG.SHA256, 32]]);
    const events = [
      {
        pcr: 0,
        type: EV_NO_ACTION,
        digests: new Map([[TPM_ALG.SHA256, Buffer.alloc(32)]]),
        data: Buffer.concat([Buffer.from('StartupLocality\0', 'latin1'), Buffer.from([0])]),
      },
      { pcr: 4, type: EV_IPL, digests: new Map([[TPM_ALG.SHA256, d1]]), data: Buffer.from('bootloader') },
      { pcr: 4, type: EV_IPL, digests: new Map([[TPM_ALG.SHA256, d2]]), data: Buffer.from('kernel') },
      // An event in an unquoted PCR (9) is not trusted and not replayed.
      { pcr: 9, type: EV_IPL, digests: new Map([[TPM_ALG.SHA256, Buffer.alloc(32, 9)]]), data: Buffer.from('ignored') },
    ];
    expect(await run({ eventLog: encodeEventLog(algs, events) })).toBe('spiffe://example.org/agent/unmeasured');
    const tampered = [...events];
    tampered[2] = { ...events[2]!, digests: new Map([[TPM_ALG.SHA256, createHash('sha256').update('evil kernel').digest()]]) };
    const r = await run({ eventLog: encodeEventLog(algs, tampered) });
    expect(r).toBeInstanceOf(GrpcCallError);
    const dropped = await run({
      eventLog: encodeEventLog(
        algs,
        events.filter((_, i) => i !== 1),
      ),
    });
    expect(dropped).toBeInstanceOf(GrpcCallError);
  });
});

describe.skipIf(!HAVE_SWTPM)('TPM-resident agent keys (TPM2_Certify)', () => {
  let T: Swtpm;
  let s: Started;
  beforeAll(async () => {
    T = await startSwtpm();
    s = await startServer({ attestation: { tpm: { manufacturer_roots: [T.rootPem], intermediates: [T.intermediatePem], pcr_selection: 'sha256:0,1,2,3,7' } } });
    await adminClients(s.adminSocket).admin.createEntry({
      entry: {
        spiffeId: 'spiffe://example.org/agent/hw-key',
        selectors: [
          { type: 'tpm', value: 'model:swtpm' },
          { type: 'tpm', value: 'key:resident' },
        ],
      },
    });
    await adminClients(s.adminSocket).admin.createEntry({
      entry: { spiffeId: 'spiffe://example.org/agent/sw-key', selectors: [{ type: 'tpm', value: 'model:swtpm' }] },
    });
  }, 60_000);
  afterAll(async () => {
    await s?.stop();
    await T?.stop();
  });

  async function go(mutate?: (ev: Buffer, spki: Buffer) => { ev: Buffer; hello?: KeyObject }) {
    const tpm = await T.open();
    const a = new TpmAttestor(tpm);
    try {
      const k = await a.createResidentKey();
      // The hello names the resident key (signing its key proof inside the TPM), or another key the agent holds.
      const other = mutate?.(Buffer.alloc(0), k.spki).hello;
      const r = await attest({
        server: s.address,
        bundlePem: s.bundlePem,
        evidenceType: 'tpm',
        key: other ?? a.residentSigner(),
        respond: async (c) => {
          const first = a.rounds === 0;
          const out = await a.respond(c);
          return first && mutate ? mutate(out, k.spki).ev : out;
        },
      });
      return { r, spki: k.spki };
    } catch (e) {
      if (e instanceof GrpcCallError) return { err: e };
      throw e;
    } finally {
      await a.close();
      await tpm.close();
    }
  }

  it('a certified TPM-resident key gets an SVID that says so', async () => {
    const { r, spki } = await go();
    expect(r!.spiffeId).toBe('spiffe://example.org/agent/hw-key');
    const leaf = parseCertificate(r!.svidChain[0]!);
    expect(leaf.keyResidency).toBe('tpm');
    expect(leaf.spki.equals(spki!)).toBe(true);
    // openssl shows it as a non-critical extension it does not know
    const text = execFileSync('openssl', ['x509', '-inform', 'DER', '-noout', '-text'], { input: r!.svidChain[0]! }).toString();
    expect(text).toMatch(/2\.25\.319231028764455267678575191352458191242:\s*\n\s*\.\.tpm/);
    expect(new X509Certificate(r!.svidChain[0]!).subjectAltName).toBe('URI:spiffe://example.org/agent/hw-key');
  });

  it('a software key gets the software identity and no residency claim', async () => {
    const tpm = await T.open();
    const a = new TpmAttestor(tpm);
    try {
      const r = await attest({ server: s.address, bundlePem: s.bundlePem, evidenceType: 'tpm', key: key(), respond: (c) => a.respond(c) });
      expect(r.spiffeId).toBe('spiffe://example.org/agent/sw-key');
      expect(parseCertificate(r.svidChain[0]!).keyResidency).toBeUndefined();
    } finally {
      await a.close();
      await tpm.close();
    }
  });

  it('certify evidence for one key with another key in the hello is refused', async () => {
    const res = await go((ev) => ({ ev, hello: key() }));
    expect(res.err?.writCode).toBe('ERR_EVIDENCE_INVALID');
  });

  it('a tampered certify attest is refused', async () => {
    const res = await go((ev) => {
      if (ev.length === 0) return { ev };
      const e = parseEvidence1(ev);
      const attest = Buffer.from(e.certify!.attest);
      attest[attest.length - 1]! ^= 1;
      return { ev: encodeEvidence1({ ...e, certify: { ...e.certify!, attest } }) };
    });
    expect(res.err?.writCode).toBe('ERR_EVIDENCE_INVALID');
  });
});
