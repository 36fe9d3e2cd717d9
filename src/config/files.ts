/** Certificates from an operator-supplied file: PEM (any number of CERTIFICATE blocks) or DER. */
import { readFileSync } from 'node:fs';
import { decodePem } from '../der/pem.js';

export function certificatesInFile(path: string): Buffer[] {
  const data = readFileSync(path);
  const text = data.toString('latin1');
  return text.includes('-----BEGIN')
    ? decodePem(text)
        .filter((b) => b.label === 'CERTIFICATE')
        .map((b) => b.der)
    : [data];
}
