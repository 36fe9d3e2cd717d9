/**
 * The HTTP GET used for OIDC discovery and JWKS (src/principal/oidc.ts `httpFetch`), against
 * real HTTP servers on loopback that misbehave: endless bodies, a Content-Length of 400 MiB, a
 * gzip bomb whose Content-Length is small, redirects. The body is streamed and cut at
 * MAX_DOCUMENT_BYTES: the fetch rejects quickly and the server sees the connection closed.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_DOCUMENT_BYTES, httpFetch } from '../../src/principal/oidc.js';

const CHUNK = Buffer.alloc(64 * 1024, 0x20);

interface Served {
  url: string;
  /** Body bytes the server managed to hand to its socket. */
  written: number;
  /** Resolves when the server sees the response's connection closed. */
  closed: Promise<void>;
  requests: string[];
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse, s: Served) => void): Promise<Served> {
  let markClosed!: () => void;
  const s: Served = { url: '', written: 0, closed: new Promise<void>((r) => (markClosed = r)), requests: [] };
  const server = createServer((req, res) => {
    s.requests.push(req.url ?? '');
    res.on('close', markClosed);
    handler(req, res, s);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  s.url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
  return s;
}

/** Writes CHUNK every `everyMs` until the connection closes (an endless body at a bounded rate). */
function trickle(res: ServerResponse, s: Served, everyMs: number): void {
  const t = setInterval(() => {
    if (res.destroyed || res.writableEnded) return clearInterval(t);
    res.write(CHUNK, (err) => {
      if (!err) s.written += CHUNK.length;
    });
  }, everyMs);
  res.on('close', () => clearInterval(t));
}

const timed = async (p: Promise<unknown>): Promise<{ ms: number; error: Error | undefined }> => {
  const start = performance.now();
  try {
    await p;
    return { ms: performance.now() - start, error: undefined };
  } catch (e) {
    return { ms: performance.now() - start, error: e as Error };
  }
};
const within = (p: Promise<void>, ms: number) => Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

describe('principal: httpFetch streams and bounds the body', () => {
  it('an endless body without Content-Length is cut just past the limit, quickly, and the connection closed', async () => {
    const s = await serve((_q, res, s) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      trickle(res, s, 5);
    });
    const r = await timed(httpFetch(`${s.url}/jwks`));
    expect(r.error?.message).toBe(`GET ${s.url}/jwks: larger than ${MAX_DOCUMENT_BYTES} bytes`);
    expect(r.ms).toBeLessThan(2000);
    expect(await within(s.closed, 2000)).toBe(true);
    expect(s.written).toBeLessThan(16 * MAX_DOCUMENT_BYTES);
  });

  it('a Content-Length of 400 MiB is refused before the body is read', async () => {
    const s = await serve((_q, res, s) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(400 * 1024 * 1024) });
      trickle(res, s, 50);
    });
    const r = await timed(httpFetch(`${s.url}/.well-known/openid-configuration`));
    expect(r.error?.message).toBe(`GET ${s.url}/.well-known/openid-configuration: Content-Length 419430400 is larger than ${MAX_DOCUMENT_BYTES} bytes`);
    expect(r.ms).toBeLessThan(1000);
    expect(await within(s.closed, 2000)).toBe(true);
    expect(s.written).toBeLessThanOrEqual(2 * CHUNK.length);
  });

  it('a gzip bomb with a small Content-Length is cut by what it decompresses to, not trusted by its header', async () => {
    // 24 gzip members of 8 MiB each (RFC 1952 §2.2 allows several): 192 MiB from ~190 KiB.
    const member = gzipSync(Buffer.alloc(8 * 1024 * 1024, 0x20), { level: 9 });
    const bomb = Buffer.concat(Array.from({ length: 24 }, () => member));
    expect(bomb.length).toBeLessThan(MAX_DOCUMENT_BYTES);
    const s = await serve((_q, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': String(bomb.length) });
      res.end(bomb);
    });
    const r = await timed(httpFetch(`${s.url}/jwks`));
    expect(r.error?.message).toBe(`GET ${s.url}/jwks: larger than ${MAX_DOCUMENT_BYTES} bytes`);
    expect(r.ms).toBeLessThan(500);
  });

  it('a body of exactly the limit is accepted; one byte more is not', async () => {
    const doc = (n: number) => `"${'a'.repeat(n - 2)}"`;
    for (const [n, chunked] of [
      [MAX_DOCUMENT_BYTES, false],
      [MAX_DOCUMENT_BYTES, true],
      [MAX_DOCUMENT_BYTES + 1, false],
      [MAX_DOCUMENT_BYTES + 1, true],
    ] as const) {
      const s = await serve((_q, res) => {
        res.writeHead(200, chunked ? {} : { 'content-length': String(n) });
        const body = Buffer.from(doc(n));
        if (chunked) {
          res.write(body.subarray(0, 1000));
          res.end(body.subarray(1000));
        } else res.end(body);
      });
      const r = await timed(httpFetch(s.url));
      if (n === MAX_DOCUMENT_BYTES) expect(r.error, `${n} chunked=${chunked}`).toBeUndefined();
      else expect(r.error?.message, `${n} chunked=${chunked}`).toMatch(/larger than 262144 bytes$/);
    }
  });

  it('returns the document text, multi-byte UTF-8 split across chunks intact', async () => {
    const body = Buffer.from(JSON.stringify({ issuer: 'https://idp.example.com/é', n: 'ü'.repeat(5000) }));
    const s = await serve((_q, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(body.subarray(0, 28)); // inside the two bytes of é
      setTimeout(() => res.end(body.subarray(28)), 10);
    });
    expect(await httpFetch(s.url)).toBe(body.toString('utf8'));
  });

  it('refuses a body that is not UTF-8 rather than guessing', async () => {
    const s = await serve((_q, res) => res.end(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d])));
    await expect(httpFetch(s.url)).rejects.toThrow(/not UTF-8/);
  });

  it('does not follow redirects (the target is never asked)', async () => {
    const target = await serve((_q, res) => res.end('{"keys":[]}'));
    const s = await serve((_q, res) => {
      res.writeHead(302, { location: `${target.url}/jwks` });
      res.end();
    });
    await expect(httpFetch(`${s.url}/jwks`)).rejects.toThrow();
    expect(target.requests).toEqual([]);
  });

  it('refuses an HTTP error status without reading its body', async () => {
    const s = await serve((_q, res, s) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      trickle(res, s, 5);
    });
    const r = await timed(httpFetch(s.url));
    expect(r.error?.message).toBe(`GET ${s.url}: HTTP 500`);
    expect(await within(s.closed, 2000)).toBe(true);
  });
});
