#!/usr/bin/python3
"""An independent verifier of writ's audit log, written from docs/audit.md alone, with Python's
standard library and the stock `cryptography` package (Ed25519).

usage:
  verify_audit.py checkpoint VKEY NOTE_FILE         prints ORIGIN SIZE ROOT_HEX
  verify_audit.py inclusion VKEY PROOF_BUNDLE       prints SEQ SIZE EVENT
  verify_audit.py consistency VKEY CONSISTENCY_BUNDLE   prints OLD_SIZE NEW_SIZE
Exits 0 when the check passed; 1 with the reason on stderr when it did not.
"""
import base64
import binascii
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

DASH = "\u2014 "
MAX_NOTE = 16 * 1024
MAX_SIGS = 32
MAX_PROOF = 64


class Fail(Exception):
    pass


def b64(s):
    try:
        b = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise Fail("not base64: %r" % s[:40])
    if base64.b64encode(b).decode() != s:
        raise Fail("not canonical base64")
    return b


def parse_vkey(vkey):
    name, sep, rest = vkey.partition("+")
    kid, sep2, key = rest.partition("+")
    if not name or not sep or not sep2 or len(kid) != 8 or kid != kid.lower():
        raise Fail("malformed verifier key")
    raw = b64(key)
    if len(raw) != 33 or raw[0] != 1:
        raise Fail("verifier key is not Ed25519")
    want = hashlib.sha256(name.encode() + b"\x0a\x01" + raw[1:]).digest()[:4]
    if want.hex() != kid:
        raise Fail("verifier key ID does not match")
    return name, want, Ed25519PublicKey.from_public_bytes(raw[1:])


def open_checkpoint(note, vkey):
    name, kid, pub = parse_vkey(vkey)
    raw = note.encode("utf-8")
    if len(raw) > MAX_NOTE or not note.endswith("\n"):
        raise Fail("note too large or without final newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise Fail("no blank line")
    text, sigs = note[: cut + 1], note[cut + 2 : -1].split("\n")
    if any(ord(c) < 0x20 and c != "\n" or ord(c) == 0x7F for c in text):
        raise Fail("control character in note text")
    if len(sigs) > MAX_SIGS:
        raise Fail("too many signatures")
    ok = False
    for line in sigs:
        if not line.startswith(DASH):
            raise Fail("bad signature line")
        who, _, blob = line[len(DASH) :].rpartition(" ")
        sig = b64(blob)
        if who != name or sig[:4] != kid:
            continue
        if ok:
            raise Fail("two signatures by the audit key")
        try:
            pub.verify(sig[4:], text.encode("utf-8"))
        except InvalidSignature:
            raise Fail("signature does not verify")
        ok = True
    if not ok:
        raise Fail("no signature by the audit key")
    lines = text.split("\n")
    if len(lines) != 4 or lines[3] != "":
        raise Fail("a checkpoint is three lines")
    origin, size, root = lines[0], lines[1], b64(lines[2])
    if origin != name:
        raise Fail("origin is not the key name")
    if not size.isdigit() or (size != "0" and size[0] == "0") or len(root) != 32:
        raise Fail("bad size or root")
    return origin, int(size), root


def lh(d):
    return hashlib.sha256(b"\x00" + d).digest()


def nh(l, r):
    return hashlib.sha256(b"\x01" + l + r).digest()


def hashes(v):
    if not isinstance(v, list) or len(v) > MAX_PROOF:
        raise Fail("bad proof")
    out = [b64(h) for h in v]
    if any(len(h) != 32 for h in out):
        raise Fail("a proof hash is not 32 bytes")
    return out


def verify_inclusion(m, n, h, proof, root):
    if m >= n:
        raise Fail("index outside the tree")
    fn, sn, r = m, n - 1, h
    for p in proof:
        if sn == 0:
            raise Fail("inclusion proof too long")
        if fn & 1 or fn == sn:
            r = nh(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = nh(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise Fail("inclusion proof does not lead to the root")


def verify_consistency(m, n, proof, r1, r2):
    if m > n:
        raise Fail("sizes go back")
    if m == n:
        if proof or r1 != r2:
            raise Fail("equal sizes need equal roots and no proof")
        return
    if m == 0:
        if proof:
            raise Fail("proof from the empty tree must be empty")
        return
    if not proof:
        raise Fail("empty consistency proof")
    if m & (m - 1) == 0:
        proof = [r1] + proof
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            raise Fail("consistency proof too long")
        if fn & 1 or fn == sn:
            fr, sr = nh(c, fr), nh(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = nh(sr, c)
        fn >>= 1
        sn >>= 1
    if fr != r1 or sr != r2 or sn != 0:
        raise Fail("consistency proof does not verify")


def canonical(v):
    """RFC 8785 for the record subset (strings, integers, null, lists, objects)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        out = []
        for c in v:
            if c in '"\\':
                out.append("\\" + c)
            elif c in "\b\t\n\f\r":
                out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}[c])
            elif ord(c) < 0x20:
                out.append("\\u%04x" % ord(c))
            else:
                out.append(c)
        return '"' + "".join(out) + '"'
    if isinstance(v, list):
        return "[" + ",".join(canonical(e) for e in v) + "]"
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(canonical(k) + ":" + canonical(v[k]) for k in keys) + "}"
    raise Fail("not a record value")


def load(path):
    with open(path, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


def main(argv):
    if len(argv) != 4:
        raise Fail(__doc__)
    verb, vkey, path = argv[1], argv[2], argv[3]
    if verb == "checkpoint":
        with open(path, encoding="utf-8") as f:
            origin, size, root = open_checkpoint(f.read(), vkey)
        print(origin, size, root.hex())
    elif verb == "inclusion":
        b = load(path)
        if sorted(b) != ["checkpoint", "inclusion", "record", "seq", "v"] or b["v"] != 1:
            raise Fail("not a proof bundle")
        _, size, root = open_checkpoint(b["checkpoint"], vkey)
        record = b64(b["record"])
        r = json.loads(record.decode("utf-8"))
        if canonical(r).encode("utf-8") != record:
            raise Fail("record is not in canonical form")
        if r.get("seq") != b["seq"]:
            raise Fail("record is not at the bundle's seq")
        verify_inclusion(b["seq"], size, lh(record), hashes(b["inclusion"]), root)
        print(b["seq"], size, r["event"])
    elif verb == "consistency":
        b = load(path)
        if sorted(b) != ["consistency", "new", "old", "v"] or b["v"] != 1:
            raise Fail("not a consistency bundle")
        _, m, r1 = open_checkpoint(b["old"], vkey)
        _, n, r2 = open_checkpoint(b["new"], vkey)
        verify_consistency(m, n, hashes(b["consistency"]), r1, r2)
        print(m, n)
    else:
        raise Fail("unknown verb " + verb)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except Fail as e:
        print("audit verification failed:", e, file=sys.stderr)
        sys.exit(1)
