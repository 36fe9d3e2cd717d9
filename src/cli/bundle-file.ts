/**
 * The issuer's trust bundle as the agent-side verbs need it (`writ agent attest`, `writ grant
 * create`): PEM, the X.509 authorities the issuer's serving certificate chains to. A SPIFFE
 * bundle (JWKS) given instead is named as such; so is a file with no certificate in it.
 */
import { readInputFile } from '../config/files.js';

export function readPemBundle(file: string, flag = '--bundle'): string {
  const text = readInputFile(file, flag).toString('utf8');
  if (text.includes('-----BEGIN CERTIFICATE-----')) return text;
  const kind = text.trimStart().startsWith('{') ? 'is JSON (a SPIFFE bundle as JWKS?)' : 'holds no PEM certificate';
  throw new Error(`${flag}: ${file} ${kind}; this verb needs the issuer's trust bundle as PEM (the server's bundle.pem, or \`writ bundle show\`)`);
}
