/**
 * Renewal under short TTLs, through the Workload API: every rotation reaches every one of 200
 * open streams and none sees an expired SVID; an issuer outage leaves the sidecar serving what it
 * holds until it expires, then refusing; the issuer's return brings it back without a restart.
 */
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { adminClients } from '../../src/cli/admin-client.js';
import { joinTokenProducer } from '../../src/attestation/join-token/plugin.js';
import { renewingSource } from '../../src/sidecar/identity-source.js';
import { parseCertificate, splitDerChain } from '../../src/x509/certificate.js';
import { hsmSource, securityHeader, startHsmIssuer, startSidecar, unary, workloadClient, type HsmIssuer, type WorkloadClient } from '../helpers/sidecar.js';

const ID = 'spiffe://example.org/agent/renew';

interface X509Message {
  svids: Array<{ x509_svid: Buffer }>;
}

const leafOf = (m: X509Message) => parseCertificate(splitDerChain(m.svids[0]!.x509_svid)[0]!);

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function setup(ttl: number): Promise<{ issuer: HsmIssuer; sc: Awaited<ReturnType<typeof startSidecar>> }> {
  const issuer = await startHsmIssuer();
  cleanup.push(() => issuer.stop());
  await issuer.entry(ID, ttl, 60);
  const sc = await startSidecar(hsmSource({ address: issuer.s.address, bundlePem: issuer.s.bundlePem, deviceKey: issuer.deviceKey }), {
    jwtAudiences: ['https://rp.example'],
  });
  cleanup.push(() => sc.close());
  await sc.sidecar.ready();
  return { issuer, sc };
}

describe('sidecar renewal', () => {
  it('delivers every rotation to each of 200 concurrent streams, never an expired SVID', async () => {
    const { sc } = await setup(4);
    const clients: WorkloadClient[] = Array.from({ length: 10 }, () => workloadClient(sc.path));
    cleanup.push(() => {
      for (const c of clients) c.close();
    });
    const ROTATIONS = 2;
    // What the sidecar publishes, from its own state: the serving SVID's serial at every change.
    const published: string[] = [];
    const publish = (st: ReturnType<typeof sc.sidecar.current>) => {
      if (st.state !== 'serving') return;
      const serial = parseCertificate(st.identity.svidChain[0]!).serial.toString('hex');
      if (published.at(-1) !== serial) published.push(serial);
    };
    publish(sc.sidecar.current());
    const unsubscribe = sc.sidecar.subscribe(publish);
    cleanup.push(unsubscribe);
    const seen: Array<Array<{ serial: string; notAfter: number; at: number }>> = [];
    const calls: grpc.ClientReadableStream<X509Message>[] = [];
    const allDone = Promise.all(
      Array.from(
        { length: 200 },
        (_, i) =>
          new Promise<void>((resolve, reject) => {
            const mine: Array<{ serial: string; notAfter: number; at: number }> = [];
            seen.push(mine);
            const call = clients[i % clients.length].FetchX509SVID({}, securityHeader()) as grpc.ClientReadableStream<X509Message>;
            calls.push(call);
            call.on('data', (m: X509Message) => {
              const leaf = leafOf(m);
              mine.push({ serial: leaf.serial.toString('hex'), notAfter: leaf.notAfter.getTime(), at: Date.now() });
              if (mine.length === ROTATIONS + 1) resolve();
            });
            call.on('error', (e: grpc.ServiceError) => {
              if (e.code !== grpc.status.CANCELLED) reject(e);
            });
          }),
      ),
    );
    await allDone;
    // Every stream has seen its first SVID and two rotations. Each must also have seen whatever
    // was published up to now: wait for the last serial to reach every stream, then stop.
    const upTo = published.length;
    const last = published[upTo - 1]!;
    await expect.poll(() => seen.filter((s) => !s.some((x) => x.serial === last)).length, { timeout: 10_000 }).toBe(0);
    for (const c of calls) c.cancel();
    unsubscribe();
    expect(upTo).toBeGreaterThanOrEqual(ROTATIONS + 1);
    for (const [i, s] of seen.entries()) {
      // From its first message on, the stream saw every serial the sidecar published, in order, each once.
      const from = published.indexOf(s[0]!.serial);
      expect(from, `stream ${i}'s first SVID was never published`).toBeGreaterThanOrEqual(0);
      expect(
        s.slice(0, upTo - from).map((x) => x.serial),
        `stream ${i}`,
      ).toEqual(published.slice(from, upTo));
      // None was expired when it arrived.
      for (const x of s) expect(x.at).toBeLessThan(x.notAfter);
    }
    expect(sc.sidecar.renewals).toBeGreaterThanOrEqual(ROTATIONS);
  }, 120_000);

  it('keeps serving through an outage until the SVID expires, then refuses; recovers when the issuer returns', async () => {
    const { issuer, sc } = await setup(4);
    const client = workloadClient(sc.path);
    cleanup.push(() => client.close());
    const call = client.FetchX509SVID({}, securityHeader()) as grpc.ClientReadableStream<X509Message>;
    const messages: X509Message[] = [];
    const ended = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    call.on('data', (m: X509Message) => messages.push(m));
    await new Promise<void>((r) => {
      const check = () => (messages.length ? r() : setImmediate(check));
      check();
    });
    const failuresBefore = sc.sidecar.failures;
    await issuer.halt();

    // While the SVID is valid: still served (the JWT-SVID from the cache too).
    const jwt = await unary<unknown, { svids: unknown[] }>(client, 'FetchJWTSVID', { audience: ['https://rp.example'] });
    expect(jwt.svids).toHaveLength(1);

    // At expiry the stream ends with PERMISSION_DENIED (no longer entitled), after notAfter.
    const e = await ended;
    const lastNotAfter = leafOf(messages[messages.length - 1]!).notAfter.getTime();
    expect(e.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(e.details).toContain('expired');
    expect(Date.now()).toBeGreaterThanOrEqual(lastNotAfter);
    expect(sc.sidecar.failures).toBeGreaterThan(failuresBefore);
    expect(sc.sidecar.current().state).toBe('expired');
    const refused = await unary(client, 'FetchJWTSVID', { audience: ['https://rp.example'] }).then(
      () => undefined,
      (x: grpc.ServiceError) => x,
    );
    expect(refused?.code).toBe(grpc.status.PERMISSION_DENIED);

    // The issuer comes back: the sidecar recovers by itself (its retry loop), streams work again.
    await issuer.restart();
    const back = await sc.sidecar.ready();
    expect(back.notAfter).toBeGreaterThan(Date.now());
    const again = client.FetchX509SVID({}, securityHeader()) as grpc.ClientReadableStream<X509Message>;
    const m = await new Promise<X509Message>((resolve, reject) => {
      again.on('data', resolve);
      again.on('error', reject);
    });
    again.on('error', () => {});
    again.cancel();
    expect(leafOf(m).notAfter.getTime()).toBe(back.notAfter);
    expect(leafOf(m).notAfter.getTime()).toBeGreaterThan(lastNotAfter);
  }, 120_000);

  it('renews a join-token identity by its SVID: rotations arrive, a new audience is served, the token is never shown again', async () => {
    const issuer = await startHsmIssuer();
    cleanup.push(() => issuer.stop());
    const admin = adminClients(issuer.s.adminSocket).admin;
    const tok = await admin.createJoinToken({ ttl: 600 });
    await admin.createEntry({ entry: { spiffeId: ID, selectors: [{ type: 'join_token', value: tok.id }], x509SvidTtl: 4, jwtSvidTtl: 60 } });
    const logs: string[] = [];
    const sc = await startSidecar(
      renewingSource(
        { server: issuer.s.address, bundlePem: issuer.s.bundlePem, producer: joinTokenProducer, values: { 'join-token': tok.token }, timeoutMs: 10_000 },
        Date.now,
      ),
      { log: (l) => logs.push(l) },
    );
    cleanup.push(() => sc.close());
    await sc.sidecar.ready();
    const client = workloadClient(sc.path);
    cleanup.push(() => client.close());
    const call = client.FetchX509SVID({}, securityHeader()) as grpc.ClientReadableStream<X509Message>;
    call.on('error', () => {});
    const serials: string[] = [];
    await new Promise<void>((resolve) => {
      call.on('data', (m: X509Message) => {
        serials.push(leafOf(m).serial.toString('hex'));
        if (serials.length === 3) resolve();
      });
    });
    call.cancel();
    expect(new Set(serials).size).toBe(3);
    const jwt = await unary<unknown, { svids: Array<{ spiffe_id: string }> }>(client, 'FetchJWTSVID', { audience: ['https://new.example'] });
    expect(jwt.svids[0]!.spiffe_id).toBe(ID);
    expect(sc.sidecar.renewals).toBeGreaterThanOrEqual(3);
    expect(sc.sidecar.failures).toBe(0);
    expect(logs.join('\n')).not.toContain('fresh evidence');
  }, 120_000);
});
