#!/usr/bin/python3
"""An independent relying party for writs, written from docs/writ-format.md alone with the
stock JOSE library of Debian (python3-jwt + python3-cryptography). It verifies the writ's
issuer signature with a key of `use` "writ" from the SPIFFE bundle JWKS, and the proof of
possession: signed by the key whose RFC 7638 thumbprint is the writ's cnf.jkt, for this
audience and method, bound to the SHA-256 of the writ, fresh.

usage: verify_writ.py BUNDLE_JWKS WRIT_FILE PROOF_FILE AUDIENCE METHOD
prints the writ's sub and the act chain on success; exits 1 with the reason otherwise.
"""
import base64
import hashlib
import json
import sys
import time

import jwt
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ALLOWED = ["ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512"]


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def thumbprint(jwk: dict) -> str:
    # RFC 7638: required members only, lexicographic order, no whitespace.
    if jwk["kty"] == "EC":
        members = {"crv": jwk["crv"], "kty": "EC", "x": jwk["x"], "y": jwk["y"]}
    elif jwk["kty"] == "RSA":
        members = {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}
    else:
        raise ValueError("unsupported kty")
    return b64url(hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest())


def key_from_jwk(jwk: dict):
    text = json.dumps(jwk)
    return ECAlgorithm.from_jwk(text) if jwk["kty"] == "EC" else RSAAlgorithm.from_jwk(text)


def main() -> int:
    bundle_file, writ_file, proof_file, audience, method = sys.argv[1:6]
    bundle = json.load(open(bundle_file))
    writ = open(writ_file).read().strip()
    proof = open(proof_file).read().strip()

    # 1. The writ: typ writ+jwt, kid names a `use: writ` key of the bundle, signature.
    header = jwt.get_unverified_header(writ)
    if header.get("typ") != "writ+jwt":
        raise SystemExit("writ: typ is not writ+jwt")
    keys = {k["kid"]: k for k in bundle["keys"] if k.get("use") == "writ"}
    if header.get("kid") not in keys:
        raise SystemExit("writ: kid is not a writ key of the bundle")
    issuer_key = key_from_jwk({k: v for k, v in keys[header["kid"]].items() if k not in ("use", "kid", "alg")})
    claims = jwt.decode(writ, issuer_key, algorithms=[header["alg"]] if header["alg"] in ALLOWED else [],
                        options={"verify_aud": False, "require": ["exp", "iat", "sub", "iss", "cnf", "jti"]})
    if claims.get("aud") is not None and audience not in claims["aud"]:
        raise SystemExit("writ: not for this audience")
    now = int(time.time())
    if claims["task"]["exp"] <= now:
        raise SystemExit("writ: task ended")

    # 2. The proof: typ writ-pop+jwt, jwk header whose thumbprint is cnf.jkt, signature by it.
    ph = jwt.get_unverified_header(proof)
    if ph.get("typ") != "writ-pop+jwt" or "jwk" not in ph or ph.get("alg") not in ALLOWED:
        raise SystemExit("proof: bad header")
    if thumbprint(ph["jwk"]) != claims["cnf"]["jkt"]:
        raise SystemExit("proof: not signed by the writ's cnf key")
    pc = jwt.decode(proof, key_from_jwk(ph["jwk"]), algorithms=[ph["alg"]], audience=audience, options={"require": ["exp", "iat", "jti", "aud"]})
    if pc["htm"] != method:
        raise SystemExit("proof: other method")
    if pc["wth"] != b64url(hashlib.sha256(writ.encode("ascii")).digest()):
        raise SystemExit("proof: made for another writ")
    if not (pc["iat"] <= now + 5 and pc["exp"] - pc["iat"] <= 300):
        raise SystemExit("proof: not fresh")

    chain = []
    act = claims["act"]
    while act:
        chain.append(act["sub"])
        act = act.get("act")
    print(claims["sub"])
    print(" <- ".join(chain))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except jwt.PyJWTError as e:
        print(f"jwt: {e}", file=sys.stderr)
        sys.exit(1)
