#!/usr/bin/env bash
# The clients docs/clients.md shows, against a coordinator with TLS and
# tokens: the Python client (python3-grpcio, message modules from protoc)
# with and without the token, curl on the HTTP API with and without it, and
# the Prometheus configuration through promtool.
#
#   tests/clients_test.sh BIN_DIR SOURCE_DIR
set -euo pipefail
bin=$(readlink -f "$1"); src=$(readlink -f "$2")
tmp=$(mktemp -d /tmp/twist-clients.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; [ -f "$tmp/coordinator.log" ] && tail -20 "$tmp/coordinator.log"; exit 1; }

# Addresses by number: a machine without a DNS server (gRPC's resolver asks one
# even for localhost) still runs the test; the certificate names 127.0.0.1.
bash "$src/deploy/make-credentials.sh" "$tmp/creds" localhost >/dev/null 2>&1
creds=$tmp/creds
"$bin/twist-coordinator" --listen=127.0.0.1:0 --http=127.0.0.1:0 --state_dir="$tmp/state" \
  --tls_cert="$creds/server.pem" --tls_key="$creds/server.key" \
  --client_token_file="$creds/client.token" --worker_token_file="$creds/worker.token" \
  >"$tmp/coordinator.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "ready" "$tmp/coordinator.log" && break; sleep 0.1; done
grpc=$(sed -n 's/.*ready grpc_port=\([0-9]*\) http_port=\([0-9]*\).*/\1/p' "$tmp/coordinator.log")
http=$(sed -n 's/.*ready grpc_port=\([0-9]*\) http_port=\([0-9]*\).*/\2/p' "$tmp/coordinator.log")
[ -n "$grpc" ] || fail "the coordinator did not start"

# Python: the documented commands.
mkdir -p "$tmp/py"
protoc -I "$src/proto" --python_out="$tmp/py" "$src"/proto/twist/v1/*.proto
run_python() {
  PYTHONPATH="$tmp/py" /usr/bin/python3 "$src/client/python/twist_jobs.py" \
    --coordinator="127.0.0.1:$grpc" --tls_ca="$creds/ca.pem" "$@"
}
out=$(run_python --token_file="$creds/client.token" 2>&1) || fail "python client: $out"
[ "$out" = "0 jobs, 0 workers" ] || fail "python client printed: $out"
if out=$(run_python 2>&1); then fail "python client without a token succeeded: $out"; fi
grep -q UNAUTHENTICATED <<<"$out" || fail "python client without a token: $out"
if out=$(run_python --token_file="$creds/worker.token" 2>&1); then
  fail "python client with the worker token succeeded: $out"
fi
grep -q PERMISSION_DENIED <<<"$out" || fail "python client with the worker token: $out"
echo "python client: ok (token accepted; none: UNAUTHENTICATED; worker's: PERMISSION_DENIED)"

# curl: the documented commands.
token=$(head -1 "$creds/client.token")
code=$(curl -s -o "$tmp/jobs.json" -w '%{http_code}' --cacert "$creds/ca.pem" \
  -H "Authorization: Bearer $token" "https://127.0.0.1:$http/api/v1/jobs")
[ "$code" = 200 ] || fail "curl with the token: HTTP $code"
grep -q '"jobs"' "$tmp/jobs.json" || fail "curl: $(cat "$tmp/jobs.json")"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$creds/ca.pem" \
  "https://127.0.0.1:$http/metrics")
[ "$code" = 401 ] || fail "curl without the token: HTTP $code, expected 401"
echo "curl: ok (200 with the token, 401 without)"

# Prometheus: the shipped configuration, its files beside it.
cp "$src/deploy/prometheus/prometheus.yml" "$creds/ca.pem" "$creds/client.token" "$tmp/"
out=$(promtool check config "$tmp/prometheus.yml" 2>&1) || fail "promtool: $out"
echo "promtool: ok"
