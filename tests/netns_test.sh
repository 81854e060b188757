#!/usr/bin/env bash
# Three hosts on one machine: the coordinator and two workers each in their
# own network namespace, joined by veth pairs to a bridge, with their own
# addresses. Runs a job across them with TLS and tokens (the coordinator is
# not on loopback), cuts one worker's link mid-job and restores it: the job
# must finish and the worker must rejoin and train again.
#
#   tests/netns_test.sh BIN_DIR SOURCE_DIR
# Exits 77 (skipped) only where network namespaces cannot be made.
set -euo pipefail
bin=$(readlink -f "$1"); src=$(readlink -f "$2")
source "$src/tests/support/netns_hosts.sh"
netns_probe
id=$$

tmp=$(mktemp -d /tmp/twist-netns.XXXXXX)
hosts=(c a b)             # coordinator, worker a, worker b
declare -A addr=([c]=10.213.0.1 [a]=10.213.0.2 [b]=10.213.0.3)
pids=()
keep=1
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  netns_teardown tw "$id" "${hosts[@]}"
  if [ "$keep" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

netns_hosts tw "$id" c="${addr[c]}" a="${addr[a]}" b="${addr[b]}"
on() { local h=$1; shift; ip netns exec "tw$h$id" "$@"; }
# A daemon on host $1, in the background: `ip netns exec` itself is the
# background job (it execs the daemon), so $! is the daemon and cleanup's
# kill reaches it.
start_on() { local h=$1; shift; ip netns exec "tw$h$id" "$@" & pids+=($!); }
on a ping -c 1 -W 2 "${addr[c]}" >/dev/null || { echo "the namespaces cannot reach each other"; exit 1; }

bash "$src/deploy/make-credentials.sh" "$tmp/creds" "${addr[c]}" >/dev/null
python3 -c 'import random; random.seed(5); w="the a cat dog sees runs and with big small red old new".split(); print("\n".join(" ".join(random.choice(w) for _ in range(12)) + " ." for _ in range(6000)))' >"$tmp/corpus.txt"
"$bin/twistctl" prepare --input="$tmp/corpus.txt" --output="$tmp/data" >/dev/null

coordinator="${addr[c]}:7070"
start_on c "$bin/twist-coordinator" --listen="$coordinator" --http="${addr[c]}:8080" \
  --state_dir="$tmp/state" --threads=1 --heartbeat_interval_s=0.3 --heartbeat_timeout_s=2 \
  --tls_cert="$tmp/creds/server.pem" --tls_key="$tmp/creds/server.key" \
  --tls_client_ca="$tmp/creds/ca.pem" --require_worker_cert \
  --client_token_file="$tmp/creds/client.token" --worker_token_file="$tmp/creds/worker.token" \
  >"$tmp/coordinator.log" 2>&1
for w in a b; do
  start_on "$w" "$bin/twist-worker" --coordinator="$coordinator" --name="worker-$w" --threads=1 \
    --tls_ca="$tmp/creds/ca.pem" --tls_cert="$tmp/creds/worker.pem" \
    --tls_key="$tmp/creds/worker.key" --token_file="$tmp/creds/worker.token" \
    >"$tmp/worker-$w.log" 2>&1
done
ctl() { on c "$bin/twistctl" --coordinator="$coordinator" --tls_ca="$tmp/creds/ca.pem" \
          --token_file="$tmp/creds/client.token" "$@"; }
json() { ctl status "$1" --json | python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$2"; }
live() { ctl workers 2>/dev/null | awk -v n="$1" '$2 == n && $4 == "yes" {found=1} END {exit !found}'; }
for _ in $(seq 1 100); do live worker-a && live worker-b && break; sleep 0.2; done
if ! live worker-a || ! live worker-b; then
  echo "workers did not join"; tail -5 "$tmp"/*.log; exit 1
fi

out=$(ctl submit --data="$tmp/data" --n_layer=2 --n_embd=32 --n_head=2 --block_size=32 \
      --batch_size=4 --rounds=150 --local_steps=40 --min_workers=1 --name=netns)
job=$(echo "$out" | sed -n 's/^submitted job \([0-9]*\).*/\1/p')
for _ in $(seq 1 300); do [ "$(json "$job" "d.get('round', 0)")" -ge 3 ] && break; sleep 0.1; done

echo "cutting worker-a's link at round $(json "$job" "d.get('round', 0)")"
cut=$(date +%s.%N)
ip link set "twpa$id" down
for _ in $(seq 1 100); do live worker-a || break; sleep 0.1; done
live worker-a && { echo "worker-a still live 10 s after its link was cut"; exit 1; }
detected=$(date +%s.%N)
sleep 2
ip link set "twpa$id" up
restored=$(date +%s.%N)
for _ in $(seq 1 200); do live worker-a && break; sleep 0.1; done
live worker-a || { echo "worker-a did not rejoin"; tail -5 "$tmp/worker-a.log"; exit 1; }
rejoined=$(date +%s.%N)

ctl watch "$job" >/dev/null
state=$(json "$job" "d['state']")
[ "$state" = JOB_STATE_COMPLETED ] || { echo "job ended $state"; exit 1; }
# Rounds without worker-a, and later ones where it trained again.
without=$(json "$job" "[r.get('round', 0) for r in d['rounds'] if r.get('round', 0) > 0 and not any(w['worker_name'] == 'worker-a' and w.get('accepted') for w in r.get('workers', []))][0]")
again=$(json "$job" "[r.get('round', 0) for r in d['rounds'] if r.get('round', 0) > $without and any(w['worker_name'] == 'worker-a' and w.get('accepted') for w in r.get('workers', []))][0]")
python3 -c "print('netns test: link cut -> worker-a dropped after %.1f s; link restored -> rejoined after %.1f s; rounds without it from %s, training again in round %s; job completed' % ($detected - $cut, $rejoined - $restored, '$without', '$again'))"
keep=0
