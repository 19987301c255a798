#!/usr/bin/env bash
# `make run-turn`: coturn and the Confide server together; Ctrl-C stops both.
#
#   bash turn/run-with-server.sh HOST PORT
#
# The shared secret lives in turn/secret (git-ignored; TURN_SECRET_FILE names
# another file), made on first use; the server mints per-client credentials
# from it and coturn checks them with it.
# Environment: TURN_PORT (default 3479: the server's own STUN responder keeps
# 3478), TURN_PUBLIC_HOST (the address put in the TURN URLs when HOST is
# 0.0.0.0; default the first address `hostname -I` lists), and every TURN_*
# setting of turn/run-coturn.sh.
#
# This is for local use. A deployment runs coturn on a public address with the
# defaults of the template: see turn/README.md.

set -euo pipefail

host=${1:-127.0.0.1}
port=${2:-8080}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
root=$(dirname "$here")
confide=$root/.venv/bin/confide
secret_file=${TURN_SECRET_FILE:-$here/secret}
turn_port=${TURN_PORT:-3479}

die() {
  printf 'run-with-server.sh: %s\n' "$*" >&2
  exit 2
}

[[ -x $confide ]] || die "no $confide: run 'make run-turn' (it installs the server)"

# --- the shared secret -----------------------------------------------------------
TURN_SECRET_FILE=$secret_file sh "$here/make-secret.sh"

# --- where coturn listens and what it may relay to ---------------------------------
# Two browsers on this machine that both take the relay send to each other's
# relayed address, which is coturn's own address: allowed-peer-ip opens exactly
# that address and nothing else of its (denied, private) range.
case $host in
  127.* | localhost | ::1)
    turn_host=127.0.0.1
    export TURN_LISTEN_IPS=127.0.0.1 TURN_RELAY_IPS=127.0.0.1
    export TURN_ALLOWED_PEER_IPS=${TURN_ALLOWED_PEER_IPS:-127.0.0.1}
    # Loopback peers need their own switch as well. Harmless here: coturn listens
    # on 127.0.0.1 only, so only users of this machine can reach it at all.
    extra_args=(--allow-loopback-peers)
    ;;
  0.0.0.0 | ::)
    turn_host=${TURN_PUBLIC_HOST:-$(hostname -I 2>/dev/null | awk '{print $1}')}
    [[ -n $turn_host ]] || die "cannot tell this machine's address: set TURN_PUBLIC_HOST"
    export TURN_RELAY_IPS=${TURN_RELAY_IPS:-$turn_host}
    export TURN_ALLOWED_PEER_IPS=${TURN_ALLOWED_PEER_IPS:-$turn_host}
    extra_args=()
    ;;
  *)
    turn_host=$host
    export TURN_LISTEN_IPS=$host TURN_RELAY_IPS=${TURN_RELAY_IPS:-$host}
    export TURN_ALLOWED_PEER_IPS=${TURN_ALLOWED_PEER_IPS:-$host}
    extra_args=()
    ;;
esac
export TURN_SECRET_FILE=$secret_file TURN_PORT=$turn_port

# coturn sets SO_REUSEPORT: a second one on a busy port would start and share it.
if command -v ss >/dev/null &&
  [[ -n $(ss -Hlnut "( sport = :$turn_port )" 2>/dev/null) ]]; then
  die "port $turn_port is in use (another coturn?): set TURN_PORT"
fi

url_host=$turn_host
[[ $url_host == *:* ]] && url_host="[$url_host]"
turn_urls="turn:$url_host:$turn_port?transport=udp,turn:$url_host:$turn_port?transport=tcp"

# --- run both; stop both ------------------------------------------------------------
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/confide-turn.XXXXXX")
coturn_pid=""
server_pid=""

# shellcheck disable=SC2317  # called by the trap
stop() {
  trap - INT TERM EXIT
  for pid in $server_pid $coturn_pid; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in $server_pid $coturn_pid; do
    wait "$pid" 2>/dev/null || true
  done
  # The rendered config holds the secret; the log stays for reading.
  rm -f "$run_dir/turnserver.conf"
  echo "stopped coturn and the server (coturn's log: $run_dir/turnserver.log)"
}
trap stop INT TERM EXIT

sh "$here/run-coturn.sh" "$run_dir" "${extra_args[@]}" &
coturn_pid=$!
echo "coturn on $turn_host:$turn_port (udp, tcp), relay ports ${TURN_MIN_PORT:-49152}-${TURN_MAX_PORT:-65535}"

"$confide" serve --host "$host" --port "$port" \
  --turn-urls "$turn_urls" --turn-secret-file "$secret_file" &
server_pid=$!

# Whichever ends first (Ctrl-C, a crash, a bad option) ends the other too.
set +e
wait -n "$coturn_pid" "$server_pid"
status=$?
set -e
exit "$status"
