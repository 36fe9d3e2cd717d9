#!/usr/bin/python3
"""An independent relying party for the AMD SEV-SNP evidence embedded in a writ, written from
docs/writ-format.md (the binding digest, "Binding in AMD SEV-SNP evidence") and
src/attestation/sev-snp/README.md alone, with stock python3-cryptography. It does not check the
writ's own signature (verify_writ.py does); it re-verifies what the hardware signed:

- att.ev is SHA-256 = att.ev_sha256, a 1184-byte report then a canonical certificate table;
- the report signature (ECDSA P-384 SHA-384 over bytes 0x000..0x29F, r and s 72-byte
  little-endian) by the VCEK/VLEK of the table;
- VCEK/VLEK <- ASK/ASVK <- ARK, each RSASSA-PSS SHA-384 (MGF1 SHA-384, salt 48), the ARK
  self-signed and pinned by the SHA-256 of its DER, every certificate valid at AT;
- REPORT_DATA = B || 32 zero bytes, with B recomputed from the writ's claims;
- the measurement and chip id selectors of att.sel equal the report's.

usage: verify_snp.py WRIT_FILE AT_ISO8601 ARK_SHA256_HEX...
prints "ok <measurement hex>" on success; exits 1 with the reason otherwise.
"""
import base64
import datetime
import hashlib
import json
import struct
import sys

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

REPORT_SIZE = 0x4A0
GUIDS = {
    "63da758de6644564adc5f4b93be8accd": "vcek",
    "a8074bc2a25a483eaae639c045a0b8a1": "vlek",
    "4ab7b379bbac4fe4a02f05aef327c782": "ask",
    "c0b406a4a803495297433fb6014cd0ae": "ark",
}


def b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def field(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def binding(claims: dict) -> bytes:
    grants = claims["grants"]
    chain = hashlib.sha256(b"writ-grant-chain-v1\x00" + struct.pack(">I", len(grants)) + b"".join(field(g.encode("ascii")) for g in grants)).digest()
    pre = (
        b"writ-binding-v1\x00"
        + field(b64d(claims["cnf"]["jkt"]))
        + field(chain)
        + field(bytes.fromhex(claims["pol"]["snap"]))
        + field(claims["task"]["id"].encode("ascii"))
        + field(b64d(claims["att"]["nonce"]))
    )
    return hashlib.sha256(pre).digest()


def fail(msg: str) -> None:
    print(f"verify_snp: {msg}", file=sys.stderr)
    sys.exit(1)


def cert_table(data: bytes) -> dict:
    entries, off = [], 0
    while True:
        if off + 24 > len(data):
            fail("certificate table: no terminating entry")
        guid, o, n = data[off : off + 16].hex(), *struct.unpack("<II", data[off + 16 : off + 24])
        off += 24
        if o == 0 and n == 0 and guid == "0" * 32:
            break
        if guid not in GUIDS:
            fail(f"certificate table: unknown GUID {guid}")
        entries.append((GUIDS[guid], o, n))
    out, cursor = {}, off
    for kind, o, n in entries:
        if o != cursor or kind in out:
            fail("certificate table: not canonical")
        out[kind] = x509.load_der_x509_certificate(data[o : o + n])
        cursor += n
    if cursor != len(data):
        fail("certificate table: trailing bytes")
    return out


def pss_verify(child: x509.Certificate, issuer: x509.Certificate) -> None:
    try:
        issuer.public_key().verify(
            child.signature, child.tbs_certificate_bytes, padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48), hashes.SHA384()
        )
    except InvalidSignature:
        fail(f"{child.subject.rfc4514_string()} is not signed by {issuer.subject.rfc4514_string()}")


def main() -> int:
    writ_file, at_text, *pins = sys.argv[1:]
    # naive UTC, compared with the certificates' validity in UTC
    at = datetime.datetime.fromisoformat(at_text.replace("Z", "+00:00")).astimezone(datetime.timezone.utc).replace(tzinfo=None)
    claims = json.loads(b64d(open(writ_file).read().strip().split(".")[1]))
    att = claims["att"]
    if att["type"] != "sev_snp":
        fail(f"evidence type is {att['type']}")
    ev = b64d(att["ev"])
    if base64.urlsafe_b64encode(hashlib.sha256(ev).digest()).rstrip(b"=").decode() != att["ev_sha256"]:
        fail("att.ev does not match att.ev_sha256")
    report, certs = ev[:REPORT_SIZE], cert_table(ev[REPORT_SIZE:])
    signer = "vlek" if (struct.unpack("<I", report[0x48:0x4C])[0] >> 2) & 7 == 1 else "vcek"
    leaf, ask, ark = certs.get(signer), certs.get("ask"), certs.get("ark")
    if not (leaf and ask and ark):
        fail("the table lacks the leaf, the ASK or the ARK")
    # The chain, to a pinned ARK.
    if hashlib.sha256(ark.public_bytes(Encoding.DER)).hexdigest() not in pins:
        fail("the ARK is not pinned")
    if ark.issuer != ark.subject or ask.issuer != ark.subject or leaf.issuer != ask.subject:
        fail("names do not chain")
    pss_verify(ark, ark)
    pss_verify(ask, ark)
    pss_verify(leaf, ask)
    for c in (leaf, ask, ark):
        # cryptography >= 42 has the *_utc forms (and deprecates the naive ones)
        nb = c.not_valid_before_utc.replace(tzinfo=None) if hasattr(c, "not_valid_before_utc") else c.not_valid_before
        na = c.not_valid_after_utc.replace(tzinfo=None) if hasattr(c, "not_valid_after_utc") else c.not_valid_after
        if not (nb <= at <= na):
            fail(f"{c.subject.rfc4514_string()} is not valid at {at_text}")
    # The report signature.
    r = int.from_bytes(report[0x2A0 : 0x2A0 + 72], "little")
    s = int.from_bytes(report[0x2E8 : 0x2E8 + 72], "little")
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        fail("the leaf key is not P-384")
    try:
        key.verify(encode_dss_signature(r, s), report[:0x2A0], ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        fail("the report signature does not verify")
    # The binding.
    B = binding(claims)
    if b64d(att["bind"]) != B:
        fail("att.bind is not the binding digest recomputed from the writ")
    if report[0x50:0x90] != B + bytes(32):
        fail("REPORT_DATA is not B followed by 32 zero bytes")
    measurement = report[0x90:0xC0].hex()
    if f"sev_snp:measurement:{measurement}" not in att["sel"]:
        fail("the measurement selector differs from the report")
    if signer == "vcek" and f"sev_snp:chip_id:{report[0x1A0:0x1E0].hex()}" not in att["sel"]:
        fail("the chip id selector differs from the report")
    print(f"ok {measurement}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
