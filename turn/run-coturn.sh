#!/bin/sh
# Run coturn with Confide's configuration, keeping all its state in one folder.
#
#   turn/run-coturn.sh RUN_DIR [turnserver options...]
#
# Renders turn/turnserver.conf.template into RUN_DIR/turnserver.conf (mode
# 0600: it holds the secret) and then execs turnserver in the foreground, so
# the caller's pid is coturn's and a signal to it stops coturn. The pid file,
# the (unused but always opened) SQLite user database and the log live in
# RUN_DIR instead of /var/run and /var/lib/turn. Options after RUN_DIR go to
# turnserver as they are (e.g. -v).
#
# Settings come from the environment (defaults in brackets):
#   TURN_SECRET_FILE      file holding the shared secret (what the Confide
#                         server's --turn-secret-file reads); or
#   TURN_SECRET           the secret itself (at least 16 characters of
#                         A-Z a-z 0-9 . _ ~ + / = -)
#   TURN_REALM            [confide]
#   TURN_PORT             listening port, UDP and TCP [3478]
#   TURN_TLS_PORT         TLS and DTLS port, with TURN_TLS_CERT [5349]
#   TURN_MIN_PORT, TURN_MAX_PORT   relay port range [49152, 65535]
#   TURN_LISTEN_IPS       addresses to listen on, comma-separated [all]
#   TURN_RELAY_IPS        addresses to relay from, comma-separated [automatic]
#   TURN_EXTERNAL_IP      public address, or public/private, behind a 1:1 NAT
#   TURN_ALLOWED_PEER_IPS denied ranges to open, comma-separated
#                         (an address, or first-last)
#   TURN_TLS_CERT, TURN_TLS_KEY    PEM files; TLS on TURN_TLS_PORT when given
#   TURN_USER_QUOTA       allocations per username at once [100]
#   TURN_TOTAL_QUOTA      allocations at once [2000]
#   TURN_MAX_BPS          bytes/s per allocation and direction [12500000]
#   TURN_LOG_FILE         [RUN_DIR/turnserver.log]; "stdout" in containers
#   TURNSERVER            the binary [turnserver from PATH, /usr/bin, /usr/sbin]

set -euf
umask 077

die() {
  printf 'run-coturn.sh: %s\n' "$*" >&2
  exit 2
}

[ $# -ge 1 ] || die "usage: run-coturn.sh RUN_DIR [turnserver options...]"
run_dir=$1
shift
mkdir -p "$run_dir"
run_dir=$(cd "$run_dir" && pwd -P)
here=$(cd "$(dirname "$0")" && pwd -P)
template=$here/turnserver.conf.template
conf=$run_dir/turnserver.conf

# --- the secret: from a file or the environment, never from git -------------
if [ -n "${TURN_SECRET_FILE:-}" ]; then
  [ -r "$TURN_SECRET_FILE" ] || die "TURN_SECRET_FILE: cannot read $TURN_SECRET_FILE"
  # Surrounding white space goes, as the Confide server strips it too.
  secret=$(sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' "$TURN_SECRET_FILE")
elif [ -n "${TURN_SECRET:-}" ]; then
  secret=$TURN_SECRET
else
  die "set TURN_SECRET_FILE (or TURN_SECRET): the TURN REST API shared secret"
fi
# The secret goes into a config line, so it must be one plain token.
case $secret in
  *[!A-Za-z0-9._~+/=-]*) die "the secret may hold only A-Z a-z 0-9 . _ ~ + / = -" ;;
esac
[ "${#secret}" -ge 16 ] || die "the secret must be at least 16 characters"

# --- plain values --------------------------------------------------------------
realm=${TURN_REALM:-confide}
port=${TURN_PORT:-3478}
tls_port=${TURN_TLS_PORT:-5349}
min_port=${TURN_MIN_PORT:-49152}
max_port=${TURN_MAX_PORT:-65535}
user_quota=${TURN_USER_QUOTA:-100}
total_quota=${TURN_TOTAL_QUOTA:-2000}
max_bps=${TURN_MAX_BPS:-12500000}
log_file=${TURN_LOG_FILE:-$run_dir/turnserver.log}

for pair in "TURN_PORT=$port" "TURN_TLS_PORT=$tls_port" "TURN_MIN_PORT=$min_port" \
  "TURN_MAX_PORT=$max_port" "TURN_USER_QUOTA=$user_quota" \
  "TURN_TOTAL_QUOTA=$total_quota" "TURN_MAX_BPS=$max_bps"; do
  case ${pair#*=} in
    '' | *[!0-9]*) die "${pair%%=*} must be a whole number, not '${pair#*=}'" ;;
  esac
done
[ "$min_port" -le "$max_port" ] || die "TURN_MIN_PORT is above TURN_MAX_PORT"
case $realm in
  '' | *[!A-Za-z0-9.-]*) die "TURN_REALM must be a host-name-like word, not '$realm'" ;;
esac
# They go into sed replacements and config lines.
newline='
'
case $run_dir$log_file in
  *'|'* | *'&'* | *\\* | *"$newline"*)
    die "RUN_DIR and TURN_LOG_FILE may not contain | & \\ or a newline"
    ;;
esac

# --- one instance per folder ---------------------------------------------------
if [ -s "$run_dir/turnserver.pid" ]; then
  old=$(cat "$run_dir/turnserver.pid")
  if [ -n "$old" ] && kill -0 "$old" 2>/dev/null; then
    die "coturn (pid $old) already runs in $run_dir"
  fi
  rm -f "$run_dir/turnserver.pid"
fi

# --- the binary ----------------------------------------------------------------
turnserver=${TURNSERVER:-}
if [ -z "$turnserver" ]; then
  turnserver=$(command -v turnserver || true)
  for candidate in /usr/bin/turnserver /usr/sbin/turnserver /usr/local/bin/turnserver; do
    [ -n "$turnserver" ] && break
    [ -x "$candidate" ] && turnserver=$candidate
  done
fi
if [ -z "$turnserver" ] || [ ! -x "$turnserver" ]; then
  die "no turnserver found (Debian: apt-get install coturn; or set TURNSERVER)"
fi

# --- render ----------------------------------------------------------------------
# Written to a temporary name and moved, so coturn never reads half a file.
sed -e "s|@REALM@|$realm|g" \
  -e "s|@PORT@|$port|g" \
  -e "s|@MIN_PORT@|$min_port|g" \
  -e "s|@MAX_PORT@|$max_port|g" \
  -e "s|@RUN_DIR@|$run_dir|g" \
  -e "s|@LOG_FILE@|$log_file|g" \
  -e "s|@USER_QUOTA@|$user_quota|g" \
  -e "s|@TOTAL_QUOTA@|$total_quota|g" \
  -e "s|@MAX_BPS@|$max_bps|g" \
  -e "s|@SECRET@|$secret|g" \
  "$template" >"$conf.tmp"

# One "option=value" line per comma- or space-separated item of $2.
lines() {
  for item in $(printf '%s' "$2" | tr ',' ' '); do
    case $item in
      *[!0-9A-Fa-f.:/-]*) die "$1: '$item' is not an address or range" ;;
    esac
    printf '%s=%s\n' "$1" "$item"
  done
}

{
  lines listening-ip "${TURN_LISTEN_IPS:-}"
  lines relay-ip "${TURN_RELAY_IPS:-}"
  lines external-ip "${TURN_EXTERNAL_IP:-}"
  lines allowed-peer-ip "${TURN_ALLOWED_PEER_IPS:-}"
  if [ -n "${TURN_TLS_CERT:-}" ] || [ -n "${TURN_TLS_KEY:-}" ]; then
    [ -r "${TURN_TLS_CERT:-}" ] || die "TURN_TLS_CERT: cannot read '${TURN_TLS_CERT:-}'"
    [ -r "${TURN_TLS_KEY:-}" ] || die "TURN_TLS_KEY: cannot read '${TURN_TLS_KEY:-}'"
    printf 'tls-listening-port=%s\ncert=%s\npkey=%s\n' \
      "$tls_port" "$TURN_TLS_CERT" "$TURN_TLS_KEY"
  else
    # No certificate: no TLS or DTLS listener at all (coturn would otherwise
    # make up a self-signed certificate that no browser accepts).
    printf 'no-tls\nno-dtls\n'
  fi
} >>"$conf.tmp"
mv -f "$conf.tmp" "$conf"

exec "$turnserver" -c "$conf" "$@"
