#!/usr/bin/python3
"""An independent relying party for step-up grants, written from docs/writ-format.md
(§Step-up grants) alone, with Python's standard library and python3-cryptography: it checks
the issuer's signature with a writ key (`use` "writ") of the SPIFFE bundle JWKS, the grant's
members and times, and the embedded WebAuthn assertion: the approval request's RFC 8785 form
hashed into the challenge, client data, authenticator data, and the signature by the approver's
COSE credential key (whose SPKI form must be the one embedded).

usage: verify_approval.py BUNDLE_JWKS STEP_UP_FILE TRUST_DOMAIN_ID NOW [TASK_ID [AGENT_JKT]]
prints "approved by ISS#SUB: ACTION on RESOURCE" on success; exits 1 with the reason otherwise.
"""
import base64
import hashlib
import hmac
import json
import re
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

SKEW = 5
JWS_ALGS = {
    "ES256": ("ec", hashes.SHA256, "secp256r1", 32),
    "ES384": ("ec", hashes.SHA384, "secp384r1", 48),
    "ES512": ("ec", hashes.SHA512, "secp521r1", 66),
    "RS256": ("rsa", hashes.SHA256, None, None),
    "RS384": ("rsa", hashes.SHA384, None, None),
    "RS512": ("rsa", hashes.SHA512, None, None),
    "PS256": ("pss", hashes.SHA256, None, None),
    "PS384": ("pss", hashes.SHA384, None, None),
    "PS512": ("pss", hashes.SHA512, None, None),
}
CURVES = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}


class Refused(Exception):
    pass


def b64d(s: str) -> bytes:
    """Strict base64url: alphabet, no padding, canonical."""
    if not isinstance(s, str) or not re.fullmatch(r"[A-Za-z0-9_-]*", s):
        raise Refused("not base64url")
    b = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    if base64.urlsafe_b64encode(b).rstrip(b"=").decode() != s:
        raise Refused("non-canonical base64url")
    return b


def strict_json(text: str):
    def pairs(ps):
        d = {}
        for k, v in ps:
            if k in d:
                raise Refused(f"duplicate member {k!r}")
            d[k] = v
        return d

    return json.loads(text, object_pairs_hook=pairs)


def members(o, what, names):
    if not isinstance(o, dict):
        raise Refused(f"{what} is not an object")
    if set(o) != set(names):
        raise Refused(f"{what} has members {sorted(o)}, not exactly {sorted(names)}")
    return o


# --- RFC 8785 (JCS) for the values an approval request holds: objects, strings, integers, booleans.
def jcs(v) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        out = ['"']
        for ch in v:
            c = ord(ch)
            if ch == '"':
                out.append('\\"')
            elif ch == "\\":
                out.append("\\\\")
            elif ch in "\b\t\n\f\r":
                out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}[ch])
            elif c < 0x20:
                out.append("\\u%04x" % c)
            else:
                out.append(ch)
        out.append('"')
        return "".join(out)
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k.encode("utf-16-be"))  # UTF-16 code units
        return "{" + ",".join(jcs(k) + ":" + jcs(v[k]) for k in keys) + "}"
    raise Refused(f"no JCS form for {type(v).__name__}")


# --- Strict CBOR, only what a COSE_Key holds (§Step-up grants: definite, shortest, no tags or floats, no duplicates).
def cbor_item(b: bytes, i: int, depth=0):
    if i >= len(b):
        raise Refused("cbor: truncated")
    ib = b[i]
    major, info = ib >> 5, ib & 0x1F
    if major == 7 or major == 6:
        raise Refused("cbor: tags, floats and simple values are not in a COSE key")
    if info < 24:
        arg, i = info, i + 1
    elif info in (24, 25, 26, 27):
        w = {24: 1, 25: 2, 26: 4, 27: 8}[info]
        if i + 1 + w > len(b):
            raise Refused("cbor: truncated head")
        arg = int.from_bytes(b[i + 1 : i + 1 + w], "big")
        if arg < {1: 24, 2: 0x100, 4: 0x10000, 8: 0x100000000}[w]:
            raise Refused("cbor: non-minimal encoding")
        i += 1 + w
    else:
        raise Refused("cbor: indefinite or reserved length")
    if major == 0:
        return arg, i
    if major == 1:
        return -1 - arg, i
    if major in (2, 3):
        if i + arg > len(b):
            raise Refused("cbor: truncated string")
        s = b[i : i + arg]
        return (s if major == 2 else s.decode("utf-8")), i + arg
    if major == 5:
        if depth > 0:
            raise Refused("cbor: nested map in a COSE key")
        m = {}
        for _ in range(arg):
            k, i = cbor_item(b, i, depth + 1)
            if not isinstance(k, int) or isinstance(k, bool):
                raise Refused("cbor: COSE labels are integers here")
            if k in m:
                raise Refused(f"cbor: duplicate label {k}")
            m[k], i = cbor_item(b, i, depth + 1)
        return m, i
    raise Refused("cbor: arrays are not in a COSE key")


COSE = {  # alg: (kty, crv, coordinate length)
    -7: (2, 1, 32),
    -35: (2, 2, 48),
    -36: (2, 3, 66),
    -8: (1, 6, 32),
    -257: (3, None, None),
}


def cose_key(raw: bytes):
    m, end = cbor_item(raw, 0)
    if end != len(raw) or not isinstance(m, dict):
        raise Refused("cose: not exactly one map")
    alg = m.get(3)
    if alg not in COSE:
        raise Refused(f"cose: alg {alg!r} not accepted")
    kty, crv, n = COSE[alg]
    if m.get(1) != kty:
        raise Refused("cose: kty does not fit alg")
    labels = {1: [1, 3, -1, -2], 2: [1, 3, -1, -2, -3], 3: [1, 3, -1, -2]}[kty]
    if sorted(m) != sorted(labels):
        raise Refused(f"cose: labels {sorted(m)} are not exactly {sorted(labels)}")
    if kty == 3:
        nb, eb = m[-1], m[-2]
        if not isinstance(nb, bytes) or not isinstance(eb, bytes) or not nb or not eb or nb[0] == 0 or eb[0] == 0:
            raise Refused("cose: RSA n, e must be minimal byte strings")
        if not 256 <= len(nb) <= 1024 or len(eb) > 4 or eb[-1] & 1 == 0:
            raise Refused("cose: RSA size or exponent")
        return alg, rsa.RSAPublicNumbers(int.from_bytes(eb, "big"), int.from_bytes(nb, "big")).public_key()
    if m[-1] != crv:
        raise Refused("cose: crv does not fit alg")
    x = m[-2]
    if not isinstance(x, bytes) or len(x) != n:
        raise Refused("cose: x length")
    if kty == 1:
        return alg, ed25519.Ed25519PublicKey.from_public_bytes(x)
    y = m[-3]
    if not isinstance(y, bytes) or len(y) != n:
        raise Refused("cose: y must be a byte string of the curve's size (no compressed points)")
    curve = {1: ec.SECP256R1(), 2: ec.SECP384R1(), 3: ec.SECP521R1()}[crv]
    return alg, ec.EllipticCurvePublicKey.from_encoded_point(curve, b"\x04" + x + y)


def verify_assertion(w: dict, req: dict):
    alg, key = cose_key(b64d(w["cose_key"]))
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if spki != b64d(w["spki"]):
        raise Refused("webauthn: spki is not the SubjectPublicKeyInfo of cose_key")
    challenge = hashlib.sha256(jcs(req).encode("utf-8")).digest()

    cdj = b64d(w["client_data_json"])
    if len(cdj) > 4096 or cdj.startswith(b"\xef\xbb\xbf"):
        raise Refused("webauthn: client data too long or has a byte order mark")
    cd = strict_json(cdj.decode("utf-8"))
    if not isinstance(cd, dict):
        raise Refused("webauthn: client data is not an object")
    if cd.get("type") != "webauthn.get":
        raise Refused("webauthn: client data type is not webauthn.get")
    c = cd.get("challenge")
    if not isinstance(c, str) or not hmac.compare_digest(b64d(c), challenge):
        raise Refused("webauthn: challenge is not SHA-256 of the approval request")
    if cd.get("origin") != w["origin"]:
        raise Refused("webauthn: origin is not the grant's origin")
    if cd.get("crossOrigin", False) is not False or "topOrigin" in cd:
        raise Refused("webauthn: cross-origin assertion")

    ad = b64d(w["authenticator_data"])
    if len(ad) < 37:
        raise Refused("webauthn: authenticator data too short")
    flags = ad[32]
    if not hmac.compare_digest(ad[:32], hashlib.sha256(w["rp_id"].encode()).digest()):
        raise Refused("webauthn: rpIdHash is not SHA-256 of rp_id")
    if not flags & 0x01:
        raise Refused("webauthn: user not present")
    if not flags & 0x04:
        raise Refused("webauthn: user not verified")
    if flags & 0x40:
        raise Refused("webauthn: attested credential data in an assertion")
    if flags & 0x10 and not flags & 0x08:
        raise Refused("webauthn: BS without BE")
    if not flags & 0x80 and len(ad) != 37:
        raise Refused("webauthn: trailing bytes in authenticator data")
    if flags & 0x80:
        _, end = cbor_item_any(ad, 37)
        if end != len(ad):
            raise Refused("webauthn: trailing bytes after extensions")

    signed = ad + hashlib.sha256(cdj).digest()
    sig = b64d(w["signature"])
    try:
        if alg == -8:
            key.verify(sig, signed)
        elif alg == -257:
            key.verify(sig, signed, padding.PKCS1v15(), hashes.SHA256())
        else:
            if sig[:1] != b"\x30":
                raise Refused("webauthn: ECDSA signature is not DER")
            key.verify(sig, signed, ec.ECDSA({-7: hashes.SHA256, -35: hashes.SHA384, -36: hashes.SHA512}[alg]()))
    except InvalidSignature:
        raise Refused("webauthn: signature does not verify")
    return {-7: "ES256", -35: "ES384", -36: "ES512", -8: "EdDSA", -257: "RS256"}[alg]


def cbor_item_any(b: bytes, i: int):
    """Skips one well-formed CBOR item of extension outputs (maps, arrays, strings, ints, true/false/null)."""
    ib = b[i]
    major, info = ib >> 5, ib & 0x1F
    if major == 7:
        if info in (20, 21, 22):
            return None, i + 1
        raise Refused("cbor: float or simple value")
    if major == 6 or info > 27:
        raise Refused("cbor: tag or indefinite length")
    if info < 24:
        arg, i = info, i + 1
    else:
        w = {24: 1, 25: 2, 26: 4, 27: 8}[info]
        arg = int.from_bytes(b[i + 1 : i + 1 + w], "big")
        i += 1 + w
    if major in (0, 1):
        return None, i
    if major in (2, 3):
        return None, i + arg
    for _ in range(arg * (2 if major == 5 else 1)):
        _, i = cbor_item_any(b, i)
    return None, i


def verify_jws(compact: str, bundle: dict):
    if len(compact) > 8192:
        raise Refused("jws: longer than 8 KiB")
    parts = compact.split(".")
    if len(parts) != 3:
        raise Refused("jws: not three parts")
    header = strict_json(b64d(parts[0]).decode("utf-8"))
    claims = strict_json(b64d(parts[1]).decode("utf-8"))
    sig = b64d(parts[2])
    if header.get("typ") != "writ-step-up+jwt":
        raise Refused("jws: typ is not writ-step-up+jwt")
    if any(h in header for h in ("jwk", "x5c", "jku", "x5u", "crit", "b64")):
        raise Refused("jws: header carries a key, a key location or crit")
    alg = header.get("alg")
    if alg not in JWS_ALGS:
        raise Refused("jws: algorithm not allowed")
    keys = {k["kid"]: k for k in bundle["keys"] if k.get("use") == "writ" and "kid" in k}
    jwk = keys.get(header.get("kid"))
    if jwk is None:
        raise Refused("jws: kid is not a writ key of the bundle")
    kind, h, curve, size = JWS_ALGS[alg]
    data = (parts[0] + "." + parts[1]).encode("ascii")
    try:
        if kind == "ec":
            if jwk.get("kty") != "EC" or CURVES.get(jwk.get("crv")).name != curve or len(sig) != 2 * size:
                raise Refused("jws: key does not fit the algorithm")
            pub = ec.EllipticCurvePublicNumbers(int.from_bytes(b64d(jwk["x"]), "big"), int.from_bytes(b64d(jwk["y"]), "big"), CURVES[jwk["crv"]]).public_key()
            der = encode_dss_signature(int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big"))
            pub.verify(der, data, ec.ECDSA(h()))
        else:
            if jwk.get("kty") != "RSA":
                raise Refused("jws: key does not fit the algorithm")
            pub = rsa.RSAPublicNumbers(int.from_bytes(b64d(jwk["e"]), "big"), int.from_bytes(b64d(jwk["n"]), "big")).public_key()
            pad = padding.PKCS1v15() if kind == "rsa" else padding.PSS(padding.MGF1(h()), h().digest_size)
            pub.verify(sig, data, pad, h())
    except InvalidSignature:
        raise Refused("jws: issuer signature does not verify")
    return claims


def main() -> int:
    bundle_file, grant_file, trust_domain, now = sys.argv[1:5]
    task_id = sys.argv[5] if len(sys.argv) > 5 else None
    agent_jkt = sys.argv[6] if len(sys.argv) > 6 else None
    now = int(now)
    bundle = json.load(open(bundle_file))
    compact = open(grant_file).read().strip()

    c = members(verify_jws(compact, bundle), "claims", ["iss", "jti", "iat", "exp", "req", "webauthn"])
    req = members(c["req"], "req", ["v", "id", "iss", "task", "principal", "agent", "permission", "inherit", "reason", "approver", "exp"])
    w = members(c["webauthn"], "webauthn", ["rp_id", "origin", "cred_id", "authenticator_data", "client_data_json", "signature", "cose_key", "spki"])
    members(req["task"], "req.task", ["id", "goal", "exp"])
    members(req["agent"], "req.agent", ["sub", "jkt", "grant"])
    members(req["permission"], "req.permission", ["action", "resource"])
    members(req["approver"], "req.approver", ["iss", "sub"])
    members(req["principal"], "req.principal", ["iss", "sub"])
    if req["v"] != "writ-approval-v1" or not isinstance(req["inherit"], bool):
        raise Refused("req: v or inherit")
    if c["iss"] != trust_domain or req["iss"] != c["iss"]:
        raise Refused("iss is not the trusted issuer")
    ints = [c["iat"], c["exp"], req["exp"], req["task"]["exp"]]
    if any(not isinstance(x, int) or isinstance(x, bool) for x in ints):
        raise Refused("times are not integers")
    if not (c["iat"] < c["exp"] <= req["exp"] <= req["task"]["exp"]):
        raise Refused("times: iat < exp <= req.exp <= task.exp does not hold")
    if c["iat"] > now + SKEW or c["exp"] <= now - SKEW:
        raise Refused("not valid now (expired or issued in the future)")
    if task_id is not None and req["task"]["id"] != task_id:
        raise Refused("granted for another task")
    if agent_jkt is not None and req["agent"]["jkt"] != agent_jkt:
        raise Refused("granted to another agent")
    origin = w["origin"]
    if not re.fullmatch(r"https://[^/?#\s]+|http://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?", origin):
        raise Refused("webauthn: origin must be https")

    alg = verify_assertion(w, req)
    a, p = req["approver"], req["permission"]
    print(f"approved by {a['iss']}#{a['sub']}: {p['action']} on {p['resource']} ({alg} passkey)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (Refused, KeyError, ValueError, UnicodeDecodeError, TypeError) as e:
        print(f"refused: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
