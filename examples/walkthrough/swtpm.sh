#!/usr/bin/env bash
# FOR THE WALKTHROUGH, not for production: two software TPMs on loopback, manufactured the way
# writ's tests manufacture theirs (test/helpers/swtpm.ts). `swtpm_setup --create-ek-cert` writes
# an EK certificate into each; swtpm_localca issues it from a local CA made here, which plays the
# TPM manufacturer. One CA for both TPMs, so one root and one intermediate:
#   DIR/localca/swtpm-localca-rootca-cert.pem   the "manufacturer" root (TPM_ROOTS)
#   DIR/localca/issuercert.pem                  the CA that signed the EK certificates (TPM_INTERMEDIATES)
#
#   swtpm.sh start [DIR]   manufacture (first time only) and start TPM A on PORT_A (default 2321)
#                          and TPM B on PORT_B (default 2323); each also uses the next port for
#                          its control channel
#   swtpm.sh stop [DIR]    TPM2_Shutdown (tpm2_shutdown, when tpm2-tools is installed), then stop them
# DIR defaults to ./swtpm. Needs swtpm and swtpm-tools (Debian/Ubuntu: apt-get install swtpm swtpm-tools).
set -euo pipefail
cmd=${1:-start}
dir=${2:-swtpm}
ports=("${PORT_A:-2321}" "${PORT_B:-2323}")

start() {
  mkdir -p "$dir/localca"
  dir=$(cd "$dir" && pwd)
  printf 'statedir = %s\nsigningkey = %s\nissuercert = %s\ncertserial = %s\n' \
    "$dir/localca" "$dir/localca/signkey.pem" "$dir/localca/issuercert.pem" "$dir/localca/certserial" >"$dir/swtpm-localca.conf"
  printf -- '--platform-manufacturer writ-walkthrough\n--platform-version 2.1\n--platform-model swtpm\n' >"$dir/swtpm-localca.options"
  printf 'create_certs_tool = %s\ncreate_certs_tool_config = %s\ncreate_certs_tool_options = %s\n' \
    "$(command -v swtpm_localca)" "$dir/swtpm-localca.conf" "$dir/swtpm-localca.options" >"$dir/swtpm_setup.conf"
  local i name port
  for i in 0 1; do
    name=$([ "$i" = 0 ] && echo a || echo b)
    port=${ports[$i]}
    if [ ! -d "$dir/$name" ]; then
      mkdir -p "$dir/$name"
      swtpm_setup --tpm2 --tpmstate "$dir/$name" --create-ek-cert --config "$dir/swtpm_setup.conf" >"$dir/$name.setup.log" 2>&1 ||
        { cat "$dir/$name.setup.log" >&2; rm -rf "${dir:?}/$name"; exit 1; }
    fi
    swtpm socket --tpm2 --tpmstate "dir=$dir/$name" --daemon --pid "file=$dir/$name.pid" \
      --server "type=tcp,port=$port,bindaddr=127.0.0.1" --ctrl "type=tcp,port=$((port + 1)),bindaddr=127.0.0.1" \
      --flags not-need-init,startup-clear
    echo "TPM $name: swtpm:host=127.0.0.1,port=$port (pid $(cat "$dir/$name.pid"))"
  done
  echo "TPM_ROOTS=$dir/localca/swtpm-localca-rootca-cert.pem"
  echo "TPM_INTERMEDIATES=$dir/localca/issuercert.pem"
}

stop() {
  local i name port pid
  for i in 0 1; do
    name=$([ "$i" = 0 ] && echo a || echo b)
    port=${ports[$i]}
    [ -f "$dir/$name.pid" ] || continue
    pid=$(cat "$dir/$name.pid")
    # An orderly TPM2_Shutdown first, or the next start counts a dictionary-attack strike.
    if command -v tpm2_shutdown >/dev/null; then tpm2_shutdown -T "swtpm:host=127.0.0.1,port=$port" 2>/dev/null || true; fi
    kill "$pid" 2>/dev/null || true
    rm -f "$dir/$name.pid"
    echo "TPM $name stopped (pid $pid)"
  done
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop [DIR]" >&2; exit 2 ;;
esac
