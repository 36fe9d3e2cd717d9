"""A SPIFFE Workload API client writ did not write: Debian's python3-grpcio with stubs compiled
from the upstream workload.proto (../shared/interop) by python3-grpc-tools at test time, and
python3-cryptography for the checks. Used by test/e2e/sidecar-python.test.ts.

usage: workload_api.py STUBS_DIR SOCKET_PATH AUDIENCE ROTATIONS

Prints one JSON object: what it saw on the X.509-SVID stream (each message's SPIFFE ID, leaf
serial, notAfter, whether the key matches the leaf, whether the chain verifies to the bundle),
the JWT-SVID it fetched and what ValidateJWTSVID said, and the status codes of the refusals.
"""
import json
import sys
import time

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
import workload_pb2  # noqa: E402
import workload_pb2_grpc  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

SOCKET, AUDIENCE, ROTATIONS = sys.argv[2], sys.argv[3], int(sys.argv[4])
HEADER = (("workload.spiffe.io", "true"),)
DEADLINE = 60


def split_der(blob):
    """Concatenated DER certificates (the proto's x509_svid and bundle) -> list of DER."""
    out, i = [], 0
    while i < len(blob):
        if blob[i] != 0x30:
            raise ValueError("not a DER SEQUENCE")
        n = blob[i + 1]
        if n < 0x80:
            length, hdr = n, 2
        else:
            k = n & 0x7F
            length, hdr = int.from_bytes(blob[i + 2 : i + 2 + k], "big"), 2 + k
        out.append(blob[i : i + hdr + length])
        i += hdr + length
    return out


def pub_der(key):
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def check_svid(svid):
    chain = [x509.load_der_x509_certificate(d) for d in split_der(svid.x509_svid)]
    roots = [x509.load_der_x509_certificate(d) for d in split_der(svid.bundle)]
    key = serialization.load_der_private_key(svid.x509_svid_key, password=None)
    leaf = chain[0]
    uris = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier
    )
    # The chain's last certificate is signed by a bundle root.
    issuer = chain[-1]
    signed_by_root = False
    for r in roots:
        try:
            r.public_key().verify(issuer.signature, issuer.tbs_certificate_bytes, ec.ECDSA(issuer.signature_hash_algorithm))
            signed_by_root = True
        except Exception:  # noqa: BLE001
            pass
    return {
        "spiffe_id": svid.spiffe_id,
        "uris": uris,
        "serial": format(leaf.serial_number, "x"),
        "not_after": int(leaf.not_valid_after.timestamp() * 1000),
        "received_at": int(time.time() * 1000),
        "key_matches_leaf": pub_der(key.public_key()) == pub_der(leaf.public_key()),
        "chain_to_bundle": signed_by_root,
    }


def main():
    result = {}
    with grpc.insecure_channel("unix:" + SOCKET) as channel:
        stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)

        seen = []
        stream = stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=HEADER, timeout=DEADLINE)
        for msg in stream:
            seen.append(check_svid(msg.svids[0]))
            result["federated_bundles"] = len(msg.federated_bundles)
            if len(seen) > ROTATIONS:
                break
        stream.cancel()
        result["x509"] = seen

        r = stub.FetchJWTSVID(workload_pb2.JWTSVIDRequest(audience=[AUDIENCE]), metadata=HEADER, timeout=DEADLINE)
        token = r.svids[0].svid
        result["jwt"] = {"spiffe_id": r.svids[0].spiffe_id, "token": token}
        v = stub.ValidateJWTSVID(workload_pb2.ValidateJWTSVIDRequest(audience=AUDIENCE, svid=token), metadata=HEADER, timeout=DEADLINE)
        result["validated"] = {"spiffe_id": v.spiffe_id, "aud": list(v.claims["aud"]), "sub": v.claims["sub"]}

        b = next(iter(stub.FetchJWTBundles(workload_pb2.JWTBundlesRequest(), metadata=HEADER, timeout=DEADLINE)))
        result["jwt_bundles"] = {k: json.loads(val) for k, val in b.bundles.items()}

        refusals = {}
        try:
            next(iter(stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), timeout=DEADLINE)))
        except grpc.RpcError as e:
            refusals["x509_no_header"] = [e.code().name, e.details()]
        try:
            stub.FetchJWTSVID(workload_pb2.JWTSVIDRequest(audience=[AUDIENCE]), timeout=DEADLINE)
        except grpc.RpcError as e:
            refusals["jwt_no_header"] = [e.code().name, e.details()]
        try:
            stub.ValidateJWTSVID(workload_pb2.ValidateJWTSVIDRequest(audience="someone-else", svid=token), metadata=HEADER, timeout=DEADLINE)
        except grpc.RpcError as e:
            refusals["validate_wrong_audience"] = [e.code().name, e.details()]
        result["refusals"] = refusals
    print(json.dumps(result))


if __name__ == "__main__":
    main()
