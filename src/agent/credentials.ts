/**
 * The files `writ agent attest` leaves for the agent: the SVID chain, its key (when made here),
 * the bundle (PEM and SPIFFE JWKS), JWT-SVIDs and the writ. Each is written atomically; secrets
 * are 0600 and the directory 0700.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../config/files.js';
import { encodePem } from '../der/pem.js';
import type { AttestedAgent } from './attest-once.js';

export function writeCredentials(out: string, a: AttestedAgent): string[] {
  mkdirSync(out, { recursive: true, mode: 0o700 });
  const written: string[] = [];
  const put = (name: string, text: string, mode: number) => {
    writeFileAtomic(join(out, name), text, mode);
    written.push(name);
  };
  for (const f of a.keyFiles) put(f.name, f.text, 0o600);
  if (a.newKeyPem) put('svid.key', a.newKeyPem, 0o600);
  const o = a.outcome;
  if (o.writ) put('writ.jws', `${o.writ}\n`, 0o600);
  put('svid.pem', o.svidChain.map((c) => encodePem('CERTIFICATE', c)).join(''), 0o644);
  put('bundle.pem', o.bundlePem, 0o644);
  put('bundle.jwks', o.bundleJwks, 0o644);
  if (o.jwtSvids.length) put('jwt-svid.txt', `${o.jwtSvids.map((j) => j.token).join('\n')}\n`, 0o600);
  return written;
}
