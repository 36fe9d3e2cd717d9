/**
 * A key made under the SRK (`TpmAttestor.createResidentKey`, `writ agent keygen --tpm`) as a
 * "TSS2 PRIVATE KEY" PEM, the format OpenSSL's tpm2-openssl provider and openssl_tpm2_engine
 * load, so that other software (`openssl s_server`, a web server) signs with the same key inside
 * the same TPM:
 *
 *   TPMKey ::= SEQUENCE { type OBJECT IDENTIFIER (2.23.133.10.1.3, a loadable key),
 *     emptyAuth [0] EXPLICIT BOOLEAN, parent INTEGER, pubkey OCTET STRING (TPM2B_PUBLIC),
 *     privkey OCTET STRING (TPM2B_PRIVATE) }
 *
 * The parent is the owner hierarchy (0x40000001): the provider recreates the primary from the TCG
 * ECC P-256 SRK template, the template srkTemplate() (src/tpm/structures.ts) uses, so the same parent. The
 * PEM holds nothing secret: the private part is wrapped by that TPM's SRK and loads in it alone.
 */
import * as der from '../../der/der.js';
import { encodePem } from '../../der/pem.js';

const LOADABLE_KEY = '2.23.133.10.1.3';
const OWNER_HIERARCHY = Buffer.from([0x40, 0x00, 0x00, 0x01]);

const tpm2b = (b: Buffer): Buffer => {
  if (b.length > 0xffff) throw new RangeError('tpm: a TPM2B is at most 65535 bytes');
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
};

/** The PEM of a key whose TPMT_PUBLIC and SRK-wrapped TPM2B_PRIVATE buffer are given. */
export function tss2PrivateKeyPem(blob: { readonly public: Buffer; readonly private: Buffer }): string {
  const key = der.seq(
    der.oid(LOADABLE_KEY),
    der.ctx(0, true, der.bool(true)),
    der.uint(OWNER_HIERARCHY),
    der.octets(tpm2b(blob.public)),
    der.octets(tpm2b(blob.private)),
  );
  return encodePem('TSS2 PRIVATE KEY', key);
}
