#!/usr/bin/env bash
# Makes what a coordinator reachable beyond loopback needs: a private CA, a
# server certificate for the given host names, a worker client certificate
# (for --require_worker_cert), and one bearer token per role.
#
#   deploy/make-credentials.sh DIR HOST [HOST ...]
#
# Then:  twist-coordinator --tls_cert=DIR/server.pem --tls_key=DIR/server.key \
#          --tls_client_ca=DIR/ca.pem --client_token_file=DIR/client.token \
#          --worker_token_file=DIR/worker.token ...
#        twist-worker --tls_ca=DIR/ca.pem --tls_cert=DIR/worker.pem \
#          --tls_key=DIR/worker.key --token_file=DIR/worker.token ...
#        twistctl --tls_ca=DIR/ca.pem --token_file=DIR/client.token ...
# Keep DIR private (mode 0700): the keys and tokens are secrets.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DIR HOST [HOST ...]" >&2; exit 2; }
dir=$1; shift
mkdir -p "$dir"; chmod 700 "$dir"; cd "$dir"
san="IP:127.0.0.1,DNS:localhost"
for h in "$@"; do
  if [[ $h =~ ^[0-9.]+$ ]]; then san="$san,IP:$h"; else san="$san,DNS:$h"; fi
done
key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1.key"; chmod 600 "$1.key"; }
key ca
openssl req -x509 -new -key ca.key -subj /CN=twist-ca -days 365 -out ca.pem
for name in server worker; do
  key "$name"
  openssl req -new -key "$name.key" -subj "/CN=twist-$name" -out "$name.csr"
  printf 'subjectAltName=%s\n' "$san" >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 \
    -extfile "$name.ext" -out "$name.pem" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
done
for role in client worker; do
  (umask 077; openssl rand -hex 32 >"$role.token")
done
echo "credentials for $* in $dir"
