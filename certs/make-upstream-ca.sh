#!/usr/bin/env bash
# Makes a throwaway upstream CA (root + issuing CA, EC P-256) for trying writ's ca.upstream.
# Development only.
set -euo pipefail
dir=${1:?usage: make-upstream-ca.sh DIR}
mkdir -p "$dir"
cd "$dir"
openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out root.key
openssl req -x509 -new -key root.key -days 30 -subj "/O=dev upstream/CN=dev upstream root" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out root.pem
openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out issuing.key
openssl req -new -key issuing.key -subj "/O=dev upstream/CN=dev upstream issuing" -out issuing.csr
printf 'basicConstraints=critical,CA:TRUE,pathlen:1\nkeyUsage=critical,keyCertSign,cRLSign\n' > ext.cnf
openssl x509 -req -in issuing.csr -CA root.pem -CAkey root.key -CAcreateserial -days 20 -extfile ext.cnf -out issuing.pem
rm -f issuing.csr ext.cnf root.srl
chmod 600 root.key issuing.key
echo "upstream CA in $dir: issuing.pem issuing.key root.pem"
