/**
 * The Watch connector follows the issuer's CA: given a function, it asks for the bundle on every
 * (re)connect and rebuilds its TLS credentials when the PEM changed. Two real issuers of one
 * trust domain stand for the CA before and after a rotation: with the retired CA's bundle every
 * handshake fails (the watch only reports "disconnected"); once the function returns the bundle
 * the issuer now serves, the next reconnect verifies and syncs, with no restart. Also
 * LatestBundle, which feeds it in `writ agent run`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grpcWatchConnector } from '../../src/agent/revocation-client.js';
import { WatchRevocationSource } from '../../src/revocation/watch-source.js';
import { LatestBundle } from '../../src/sidecar/identity-source.js';
import type { SidecarIdentity } from '../../src/sidecar/state.js';
import { startServer } from '../helpers/server.js';

describe('grpcWatchConnector with a bundle function', () => {
  let now: Awaited<ReturnType<typeof startServer>>;
  let retired: Awaited<ReturnType<typeof startServer>>;
  beforeAll(async () => {
    now = await startServer({ revocation: { heartbeat: '100ms' } });
    retired = await startServer({ revocation: { heartbeat: '100ms' } });
  });
  afterAll(async () => {
    await now?.stop();
    await retired?.stop();
  });

  it('rebuilds the TLS credentials on reconnect when the bundle changed: the watch recovers from a CA it did not start with', async () => {
    expect(now.bundlePem).not.toBe(retired.bundlePem);
    let pem = retired.bundlePem;
    let asked = 0;
    const source = new WatchRevocationSource({
      addresses: [now.address],
      connector: grpcWatchConnector(() => {
        asked++;
        return pem;
      }),
      reconnectInitialMs: 20,
      reconnectMaxMs: 100,
    });
    const reasons: string[] = [];
    source.onConnection((e) => {
      if (e.type === 'disconnected') reasons.push(e.reason);
    });
    source.start();
    try {
      await expect(source.synced(700)).rejects.toThrow();
      expect(reasons.length).toBeGreaterThan(0);
      expect(asked).toBeGreaterThan(1);
      pem = now.bundlePem;
      await source.synced(5000);
      expect(source.status().synced).toBe(true);
    } finally {
      source.close();
    }
  });

  it('a fixed PEM is still checked at once', () => {
    expect(() => grpcWatchConnector('not a bundle')).toThrow();
  });
});

describe('LatestBundle', () => {
  it('the startup bundle until an identity is served, then the served one, kept through expiry and revocation', () => {
    const l = new LatestBundle('startup');
    expect(l.current()).toBe('startup');
    l.observe({ state: 'pending' });
    expect(l.current()).toBe('startup');
    const identity = { bundle: { pem: 'rotated' } } as unknown as SidecarIdentity;
    l.observe({ state: 'serving', identity });
    expect(l.current()).toBe('rotated');
    l.observe({ state: 'expired', reason: 'x' });
    expect(l.current()).toBe('rotated');
  });
});
