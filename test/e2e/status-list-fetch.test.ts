/**
 * The relying party's status list fetcher against a real HTTPS server on loopback (certificates
 * from a test CA): only a 200 of application/statuslist+jwt, uncompressed, within the size
 * limit and the time limit, from a listener whose certificate chains to the given anchors and
 * carries the issuer's SPIFFE ID; redirects are refused, not followed.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePem } from '../../src/der/pem.js';
import { MAX_STATUS_LIST_TOKEN_BYTES } from '../../src/revocation/status-list.js';
import { httpsStatusListFetcher } from '../../src/revocation/status-list-source.js';
import { makeCert } from '../helpers/testca.js';

const SERVER_ID = 'spiffe://example.org/writ/server';

describe('status list fetcher', () => {
  const root = makeCert({ subjectCn: 'test root', ca: true, uris: ['spiffe://example.org'] });
  const leaf = makeCert({ subjectCn: 'listener', issuer: root, uris: [SERVER_ID] });
  const otherRoot = makeCert({ subjectCn: 'other root', ca: true });
  const ca = encodePem('CERTIFICATE', root.der);
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_q, r) => r.end();
  let server: Server;
  let base = '';
  const seen: IncomingMessage[] = [];

  beforeAll(async () => {
    server = createServer(
      { cert: encodePem('CERTIFICATE', leaf.der) + encodePem('CERTIFICATE', root.der), key: leaf.key.export({ type: 'pkcs8', format: 'pem' }) as string },
      (q, r) => {
        seen.push(q);
        handler(q, r);
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  const fetcher = (o: Partial<Parameters<typeof httpsStatusListFetcher>[0]> = {}) => httpsStatusListFetcher({ ca, spiffeId: SERVER_ID, timeoutMs: 1500, ...o });
  const serve = (status: number, headers: Record<string, string>, body: string | Buffer = '') => {
    handler = (_q, r) => {
      r.writeHead(status, headers);
      r.end(body);
    };
  };

  it('fetches a 200 application/statuslist+jwt, asking for that type and no compression', async () => {
    serve(200, { 'content-type': 'application/statuslist+jwt' }, 'a.b.c');
    expect(await fetcher()(`${base}/status/1`)).toBe('a.b.c');
    expect(seen.at(-1)!.headers).toMatchObject({ accept: 'application/statuslist+jwt', 'accept-encoding': 'identity' });
  });

  it.each([
    ['a redirect', () => serve(302, { location: 'https://169.254.169.254/' }), /HTTP 302 \(redirects are not followed\)/],
    ['an error status', () => serve(404, { 'content-type': 'text/plain' }, 'no'), /HTTP 404/],
    [
      'another content type',
      () => serve(200, { 'content-type': 'application/json' }, '{}'),
      /content type application\/json, not application\/statuslist\+jwt/,
    ],
    [
      'a compressed body',
      () => serve(200, { 'content-type': 'application/statuslist+jwt', 'content-encoding': 'gzip' }, 'x'),
      /content encoding gzip was not asked for/,
    ],
    [
      'a declared oversized body',
      () => serve(200, { 'content-type': 'application/statuslist+jwt', 'content-length': String(MAX_STATUS_LIST_TOKEN_BYTES + 1) }),
      /Content-Length \d+ is larger than/,
    ],
    [
      'an oversized streamed body',
      () => {
        handler = (_q, r) => {
          r.writeHead(200, { 'content-type': 'application/statuslist+jwt' });
          const chunk = Buffer.alloc(64 * 1024, 0x61);
          const pump = () => {
            while (r.write(chunk)) if (r.writableLength > 4 * MAX_STATUS_LIST_TOKEN_BYTES) return;
            r.once('drain', pump);
          };
          pump();
          r.on('error', () => {});
        };
      },
      /larger than 1048576 bytes/,
    ],
    [
      'an answer that never ends',
      () => {
        handler = (_q, r) => {
          r.writeHead(200, { 'content-type': 'application/statuslist+jwt' });
          r.write('a.');
        };
      },
      /no complete answer within 1500 ms/,
    ],
  ])('refuses %s', async (_n, arrange, why) => {
    arrange();
    await expect(fetcher()(`${base}/status/1`)).rejects.toMatchObject({ code: 'ERR_STATUS_LIST_INVALID', message: expect.stringMatching(why) });
  });

  it('refuses http, a listener with another SPIFFE ID, and one that does not chain to the anchors', async () => {
    serve(200, { 'content-type': 'application/statuslist+jwt' }, 'a.b.c');
    await expect(fetcher()(base.replace('https:', 'http:'))).rejects.toThrow(/is not an https URL/);
    await expect(fetcher({ spiffeId: 'spiffe://example.org/someone/else' })(`${base}/status/1`)).rejects.toThrow(
      /presented URI:spiffe:\/\/example.org\/writ\/server, not URI:spiffe:\/\/example.org\/someone\/else/,
    );
    await expect(fetcher({ ca: encodePem('CERTIFICATE', otherRoot.der) })(`${base}/status/1`)).rejects.toThrow(/self.signed|unable to (get|verify)/i);
  });
});
