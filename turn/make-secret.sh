#!/bin/sh
# Make turn/secret, the TURN REST API shared secret, unless it exists.
#
#   sh turn/make-secret.sh [OWNER]
#
# TURN_SECRET_FILE names another file. 32 random bytes as hex (a plain token, as coturn's config needs), mode 0600.
# OWNER (e.g. 65534:65534 for the containers of docker-compose.yml, which run
# as that uid) is given the file when running as root. Rotate by deleting the
# file and restarting both servers: credentials already handed out stop working.
set -eu
umask 077
secret=${TURN_SECRET_FILE:-$(dirname "$0")/secret}
if [ ! -s "$secret" ]; then
  od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$secret.tmp"
  printf '\n' >>"$secret.tmp"
  mv "$secret.tmp" "$secret"
  echo "made $secret"
fi
if [ $# -ge 1 ]; then
  chown "$1" "$secret"
fi
