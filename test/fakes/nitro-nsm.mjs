// A fake NSM helper for `writ agent attest --evidence nitro --nitro-command`, run as
//   node nitro-nsm.mjs CONFIG.json HEX
// It checks that the nonce on stdin is the one on argv, then prints an attestation document in
// the genuine format (test/helpers/nitro-doc.ts builds the pieces): CONFIG holds the test leaf
// key (PKCS#8 PEM) and the encoded payload entries before and after `timestamp`; the document
// gets the current time and `nonce` = the 32 bytes of HEX, is signed ES384 (raw r‖s) over the
// COSE Sig_structure, and is printed raw or, with "base64": true, as base64. With "replay": FILE
// it prints that file instead (a document from another handshake); with "record": FILE it also
// writes what it printed there. "fail": TEXT makes it exit 3 with TEXT on stderr.
import { createPrivateKey, sign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';

const [configFile, hex] = process.argv.slice(2);
const config = JSON.parse(readFileSync(configFile, 'utf8'));
const stdin = readFileSync(0, 'utf8');
if (stdin !== `${hex}\n`) {
  process.stderr.write('stdin does not carry the nonce of argv\n');
  process.exit(4);
}
if (config.fail) {
  process.stderr.write(`${config.fail}\n`);
  process.exit(3);
}

const head = (major, n) => {
  const m = major << 5;
  if (n < 24) return Buffer.from([m | n]);
  if (n <= 0xff) return Buffer.from([m | 24, n]);
  if (n <= 0xffff) return Buffer.from([m | 25, n >> 8, n & 0xff]);
  const b = Buffer.alloc(5);
  b[0] = m | 26;
  b.writeUInt32BE(n, 1);
  return b;
};
const bstr = (b) => Buffer.concat([head(2, b.length), b]);
const tstr = (s) => {
  const b = Buffer.from(s, 'utf8');
  return Buffer.concat([head(3, b.length), b]);
};

let doc;
if (config.replay) doc = readFileSync(config.replay);
else {
  const ts = Buffer.alloc(9);
  ts[0] = 0x1b;
  ts.writeBigUInt64BE(BigInt(Date.now() + (config.clockOffsetMs ?? 0)), 1);
  const payload = Buffer.concat([
    Buffer.from(config.head, 'hex'),
    tstr('timestamp'),
    ts,
    Buffer.from(config.tail, 'hex'),
    tstr('nonce'),
    bstr(Buffer.from(hex, 'hex')),
  ]);
  const prot = Buffer.from([0xa1, 0x01, 0x38, 0x22]);
  const toBeSigned = Buffer.concat([Buffer.from([0x84]), tstr('Signature1'), bstr(prot), bstr(Buffer.alloc(0)), bstr(payload)]);
  const sig = sign('sha384', toBeSigned, { key: createPrivateKey(config.key), dsaEncoding: 'ieee-p1363' });
  doc = Buffer.concat([Buffer.from([0x84]), bstr(prot), Buffer.from([0xa0]), bstr(payload), bstr(sig)]);
}
if (config.record) writeFileSync(config.record, doc);
process.stdout.write(config.base64 ? `${doc.toString('base64')}\n` : doc);
