#!/usr/bin/python3
"""An independent relying party for writ revocation by Token Status List, written from
docs/writ-format.md (section "Revocation: status lists") alone, with Python's standard library
(urllib, ssl, zlib) and Debian's python3-jwt.

It verifies the writ's issuer signature (so the status URI it names is the issuer's), fetches
the status list token that `status.status_list.uri` names over https (trusting only the
issuer's X.509 authorities, redirects refused, Accept: application/statuslist+jwt) or reads a
saved one, verifies it with a `use: "writ"` key of the bundle (typ statuslist+jwt, kid,
signature, sub equal to the URI, iat not in the future, exp not passed, at most MAX_AGE_S
old), inflates `lst`
(ZLIB, bounded), and reads the writ's entry (`bits` bits per entry, entry 0 in the least
significant bits of byte 0).

usage: status_list.py BUNDLE_JWKS BUNDLE_PEM WRIT_FILE [TOKEN_FILE]
prints STATUS URI IAT (STATUS is VALID, INVALID, SUSPENDED or 0xNN) and exits 0 when the
check was made; exits 1 with the reason when it could not be.
"""
import base64
import json
import ssl
import sys
import time
import urllib.request
import zlib

import jwt
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ALLOWED = ["ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512"]
MAX_TOKEN_BYTES = 1024 * 1024
MAX_LIST_BYTES = 2 * 1024 * 1024
SKEW = 5
# Step 6: the relying party's maximum age of a list (writ's library and CLI default: 5 minutes).
MAX_AGE_S = 300
NAMES = {0: "VALID", 1: "INVALID", 2: "SUSPENDED"}


def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def key_from_jwk(jwk: dict):
    text = json.dumps({k: v for k, v in jwk.items() if k not in ("use", "kid", "alg")})
    return ECAlgorithm.from_jwk(text) if jwk["kty"] == "EC" else RSAAlgorithm.from_jwk(text)


def verify(token: str, typ: str, keys: dict, options: dict) -> dict:
    header = jwt.get_unverified_header(token)
    if header.get("typ") != typ:
        raise SystemExit(f"{typ}: typ is {header.get('typ')!r}")
    if header.get("kid") not in keys:
        raise SystemExit(f"{typ}: kid is not a writ key of the bundle")
    if header.get("alg") not in ALLOWED:
        raise SystemExit(f"{typ}: algorithm {header.get('alg')!r} refused")
    return jwt.decode(token, key_from_jwk(keys[header["kid"]]), algorithms=[header["alg"]], options=options)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise SystemExit(f"status list: {req.full_url} redirects to {newurl}; redirects are not followed")


def fetch(uri: str, ca_file: str) -> str:
    if not uri.startswith("https://"):
        raise SystemExit("status list: the URI is not https")
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), NoRedirect)
    req = urllib.request.Request(uri, headers={"Accept": "application/statuslist+jwt"})
    with opener.open(req, timeout=5) as res:
        ctype = res.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if res.status != 200 or ctype != "application/statuslist+jwt":
            raise SystemExit(f"status list: HTTP {res.status}, content type {ctype!r}")
        body = res.read(MAX_TOKEN_BYTES + 1)
    if len(body) > MAX_TOKEN_BYTES:
        raise SystemExit("status list: token too large")
    return body.decode("ascii")


def main() -> int:
    bundle_file, bundle_pem, writ_file = sys.argv[1:4]
    token_file = sys.argv[4] if len(sys.argv) > 4 else None
    bundle = json.load(open(bundle_file))
    keys = {k["kid"]: k for k in bundle["keys"] if k.get("use") == "writ"}

    # 1. The writ, so that the status list it names is the issuer's.
    writ = verify(open(writ_file).read().strip(), "writ+jwt", keys, {"verify_aud": False, "require": ["exp", "iat", "iss"]})
    ref = writ.get("status", {}).get("status_list")
    if not isinstance(ref, dict) or not isinstance(ref.get("idx"), int) or not isinstance(ref.get("uri"), str):
        raise SystemExit("writ: no status.status_list {idx, uri}")
    idx, uri = ref["idx"], ref["uri"]

    # 2. The status list token: fetched from the URI, or a saved copy.
    token = open(token_file).read().strip() if token_file else fetch(uri, bundle_pem)
    claims = verify(token, "statuslist+jwt", keys, {"verify_exp": False, "verify_iat": False, "require": ["sub", "iat"]})
    if claims["sub"] != uri:
        raise SystemExit(f"status list: made for {claims['sub']}, not {uri}")
    now = int(time.time())
    if claims["iat"] > now + SKEW:
        raise SystemExit("status list: issued in the future")
    if "exp" in claims and claims["exp"] <= now - SKEW:
        raise SystemExit("status list: expired")
    if now - claims["iat"] > MAX_AGE_S:
        raise SystemExit(f"status list: {now - claims['iat']} s old; at most {MAX_AGE_S} s accepted")

    # 3. The list: bits per entry, ZLIB-compressed bytes, entry idx.
    sl = claims["status_list"]
    bits = sl["bits"]
    if bits not in (1, 2, 4, 8):
        raise SystemExit("status list: bits must be 1, 2, 4 or 8")
    d = zlib.decompressobj()
    raw = d.decompress(b64url_decode(sl["lst"]), MAX_LIST_BYTES)
    if d.unconsumed_tail or not d.eof:
        raise SystemExit("status list: lst is not a complete ZLIB stream within the size limit")
    if idx < 0 or idx >= len(raw) * 8 // bits:
        raise SystemExit(f"status list: index {idx} is outside the list ({len(raw) * 8 // bits} entries)")
    bit = idx * bits
    value = (raw[bit // 8] >> (bit % 8)) & ((1 << bits) - 1)
    print(NAMES.get(value, f"0x{value:02x}"), uri, claims["iat"])
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except jwt.PyJWTError as e:
        print(f"jwt: {e}", file=sys.stderr)
        sys.exit(1)
    except (OSError, ValueError, KeyError, zlib.error) as e:
        print(f"status list: {e}", file=sys.stderr)
        sys.exit(1)
