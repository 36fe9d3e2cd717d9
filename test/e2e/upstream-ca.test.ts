import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodePem } from '../../src/der/pem.js';
import { attest } from '../../src/agent/attest-client.js';
import { adminClients } from '../../src/cli/admin-client.js';
import { BundleSet, parseSpiffeBundle } from '../../src/spiffe/bundle.js';
import { verifyX509Svid } from '../../src/svid/x509-svid.js';
import { makeCert } from '../helpers/testca.js';
import { startServer } from '../helpers/server.js';

const dir = mkdtempSync(join(tmpdir(), 'writ-up-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('upstream CA loaded from files', () => {
  it('signs its intermediate with the upstream key and publishes the upstream roots', async () => {
    const root = makeCert({ subjectCn: 'corp root', ca: true, uris: ['spiffe://example.org'], notAfter: new Date(Date.now() + 30 * 86400_000) });
    const upstream = makeCert({ subjectCn: 'corp issuing', ca: true, pathLen: 1, issuer: root, notAfter: new Date(Date.now() + 20 * 86400_000) });
    writeFileSync(join(dir, 'up.pem'), encodePem('CERTIFICATE', upstream.der) + encodePem('CERTIFICATE', root.der));
    writeFileSync(join(dir, 'up.key'), upstream.key.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(dir, 'roots.pem'), encodePem('CERTIFICATE', root.der));
    const s = await startServer({ ca: { upstream: { cert_file: join(dir, 'up.pem'), key_file: join(dir, 'up.key'), bundle_file: join(dir, 'roots.pem') } } });
    try {
      expect(s.bundlePem).toBe(encodePem('CERTIFICATE', root.der));
      const t = await adminClients(s.adminSocket).admin.createJoinToken({ spiffeId: 'spiffe://example.org/agent/u' });
      const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const res = await attest({
        server: s.address,
        bundlePem: s.bundlePem,
        evidenceType: 'join_token',
        key: key.privateKey,
        respond: () => Buffer.from(t.token),
      });
      // leaf, writ's intermediate, the upstream issuing CA (the root is not sent).
      expect(res.svidChain.length).toBe(3);
      expect(res.svidChain[2]!.equals(upstream.der)).toBe(true);
      const bundles = new BundleSet([parseSpiffeBundle('example.org', res.bundleJwks)]);
      expect(verifyX509Svid(res.svidChain, bundles, new Date()).id.uri).toBe('spiffe://example.org/agent/u');
    } finally {
      await s.stop();
    }
  });

  it('refuses an upstream key that does not match the upstream certificate', async () => {
    const root = makeCert({ subjectCn: 'r', ca: true });
    writeFileSync(join(dir, 'm.pem'), encodePem('CERTIFICATE', root.der));
    writeFileSync(join(dir, 'm.key'), generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    await expect(
      startServer({ ca: { upstream: { cert_file: join(dir, 'm.pem'), key_file: join(dir, 'm.key'), bundle_file: join(dir, 'm.pem') } } }),
    ).rejects.toThrow(/upstream key does not match/);
  });
});
