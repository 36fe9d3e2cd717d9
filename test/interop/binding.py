#!/usr/bin/python3
"""The binding digest of docs/writ-format.md, reimplemented from the text alone.
usage: binding.py JSON  (the writ-vectors block); prints chain digest and B, hex."""
import base64
import hashlib
import json
import struct
import sys

v = json.loads(sys.argv[1])


def field(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


chain = hashlib.sha256(b"writ-grant-chain-v1\x00" + struct.pack(">I", len(v["grants"])) + b"".join(field(g.encode("ascii")) for g in v["grants"])).digest()
jkt = base64.urlsafe_b64decode(v["jkt"] + "=" * (-len(v["jkt"]) % 4))
pre = b"writ-binding-v1\x00" + field(jkt) + field(chain) + field(bytes.fromhex(v["policySnapshot"])) + field(v["taskId"].encode("ascii")) + field(bytes.fromhex(v["nonce"]))
print(chain.hex())
print(hashlib.sha256(pre).hexdigest())
