/** PEM (RFC 7468) encoding and strict decoding. UNTRUSTED input enters here. */
import { FormatError } from '../errors.js';

export interface PemBlock {
  readonly label: string;
  readonly der: Buffer;
}

/** Most PEM blocks we read from one input (a chain or a bundle). */
export const MAX_PEM_BLOCKS = 256;

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;

/** Decodes every PEM block; text outside blocks is ignored (RFC 7468 §2). */
export function decodePem(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  for (const m of text.matchAll(BLOCK)) {
    if (out.length >= MAX_PEM_BLOCKS) throw new FormatError('ERR_PEM_MALFORMED', `pem: more than ${MAX_PEM_BLOCKS} blocks`);
    const [, label, body, endLabel] = m;
    if (label !== endLabel) throw new FormatError('ERR_PEM_MALFORMED', `pem: BEGIN ${label} closed by END ${endLabel}`);
    const b64 = body!.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) {
      throw new FormatError('ERR_PEM_MALFORMED', `pem: ${label} block is not valid base64`);
    }
    out.push({ label: label!, der: Buffer.from(b64, 'base64') });
  }
  return out;
}

export function encodePem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
