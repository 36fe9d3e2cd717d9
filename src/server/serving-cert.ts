/**
 * The issuer's own serving certificate (`spiffe://<td>/writ/server` plus the configured DNS and
 * IP names), minted by its signing CA for a key that never leaves this process, renewed at half
 * its life and whenever the CA rotates; new connections use the new one at once.
 */
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { encodePem } from '../der/pem.js';
import type { Clock } from '../clock.js';
import type { CaManager } from '../ca/manager.js';
import { spiffeIdFromParts } from '../spiffe/id.js';
import type { RotatingServerCredentials } from './tls.js';

/** The issuer's own SPIFFE ID path (reserved: entries cannot use /writ/...). */
export const SERVER_ID_PATH = '/writ/server';

export class ServingCertificate {
  private readonly key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  private notAfter = 0;
  private issuedAt = 0;

  constructor(
    private readonly deps: {
      ca: CaManager;
      clock: Clock;
      /** Where each new certificate goes (the gRPC credentials, the HTTPS listener). */
      tls: Pick<RotatingServerCredentials, 'update'>;
      trustDomain: string;
      ttlMs: number;
      names: { dns: readonly string[]; ips: readonly string[] };
    },
  ) {}

  async renew(): Promise<void> {
    const { ca, clock, tls, trustDomain, ttlMs, names } = this.deps;
    const now = clock.now().getTime();
    const svid = await ca.x509Minter().mint({
      spiffeId: spiffeIdFromParts(trustDomain, SERVER_ID_PATH),
      spki: createPublicKey(this.key.privateKey).export({ type: 'spki', format: 'der' }),
      notBefore: new Date(now - 10_000),
      notAfter: new Date(now + ttlMs),
      dnsNames: names.dns,
      ipAddresses: names.ips,
    });
    tls.update({
      cert: svid.chain.map((c) => encodePem('CERTIFICATE', c)).join(''),
      key: this.key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    });
    this.notAfter = svid.notAfter.getTime();
    this.issuedAt = now;
  }

  /** Renews at half-life, or at once when `force` (the CA rotated). */
  async renewIfDue(force: boolean): Promise<void> {
    const half = this.issuedAt + (this.notAfter - this.issuedAt) / 2;
    if (force || this.deps.clock.now().getTime() >= half) await this.renew();
  }
}
