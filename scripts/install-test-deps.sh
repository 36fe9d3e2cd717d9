#!/usr/bin/env bash
# Installs the outside tools the tests use: openssl and Debian's python3-jwt +
# python3-cryptography for /usr/bin/python3 (independent checks of what writ mints), Debian's
# python3-grpcio + python3-grpc-tools (a SPIFFE Workload API client we did not write), Debian's
# chromium (the console's browser tests, driven by playwright-core; never a downloaded browser), and a real
# software TPM: swtpm, swtpm-tools (swtpm_setup, swtpm_localca) and tpm2-tools, and tpm2-openssl
# (the OpenSSL 3 provider that lets `openssl s_server` sign a TLS handshake with a TPM-resident
# key, test/e2e/sidecar-tpm.test.ts). Where they cannot be
# installed the tests that need them skip loudly, except in CI (CI set), where this fails.
set -u
# tpm2-openssl is a provider module, not a command: found as tpm2.so in OpenSSL's MODULESDIR.
have_tpm2_provider() {
  local dir
  dir=$(openssl version -m 2>/dev/null | sed -n 's/^MODULESDIR: "\(.*\)"$/\1/p')
  [ -n "$dir" ] && [ -e "$dir/tpm2.so" ]
}
missing=()
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
/usr/bin/python3 -c 'import jwt, cryptography' >/dev/null 2>&1 || missing+=(python3 python3-jwt python3-cryptography)
/usr/bin/python3 -c 'import grpc, grpc_tools.protoc' >/dev/null 2>&1 || missing+=(python3-grpcio python3-grpc-tools)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v swtpm >/dev/null 2>&1 || missing+=(swtpm)
command -v swtpm_setup >/dev/null 2>&1 || missing+=(swtpm-tools)
command -v tpm2_checkquote >/dev/null 2>&1 || missing+=(tpm2-tools)
have_tpm2_provider || missing+=(tpm2-openssl)
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "install-test-deps: installing ${missing[*]}"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || true
fi
still=()
command -v openssl >/dev/null 2>&1 || still+=(openssl)
/usr/bin/python3 -c 'import jwt, cryptography' >/dev/null 2>&1 || still+=(python3-jwt python3-cryptography)
/usr/bin/python3 -c 'import grpc, grpc_tools.protoc' >/dev/null 2>&1 || still+=(python3-grpcio python3-grpc-tools)
command -v chromium >/dev/null 2>&1 || still+=(chromium)
command -v swtpm_setup >/dev/null 2>&1 || still+=(swtpm swtpm-tools)
command -v tpm2_checkquote >/dev/null 2>&1 || still+=(tpm2-tools)
have_tpm2_provider || still+=(tpm2-openssl)
if [ ${#still[@]} -gt 0 ]; then
  if [ -n "${CI:-}" ]; then
    echo "install-test-deps: could not install ${still[*]} and CI is set" >&2
    exit 1
  fi
  echo "install-test-deps: WARNING: ${still[*]} unavailable; tests that need them will be skipped" >&2
fi
exit 0
