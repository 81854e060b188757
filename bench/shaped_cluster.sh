#!/usr/bin/env bash
# Benchmark: compressed communication on a cluster whose coordinator link is
# slow. The coordinator and 2 workers run in their own network namespaces,
# joined by veth pairs to a bridge; `tc tbf` shapes both directions of the
# coordinator's veth to RATE (default 27mbit each way). The job is the
# 2000-step Brown Corpus run of bench/compression.sh quality (4 layers x 4
# heads x 128 wide, 2 workers of one thread, worker-resident optimizer state,
# rolling deal, Nesterov outer step 0.7 / 0.9, 40 rounds of 50 local steps,
# float32 transport, seed 1) through the real daemons, once per compression
# mode (none, int8, int4, topk), each without and with overlapping rounds
# (OVERLAP_STEPS, default 10, of each round's 50 local steps trained ahead).
# At 27mbit, `none` spends about 45% of a round on the link, the share of
# the GPT-2-small 8-GPU keep-1/2 bfloat16 extrapolation in
# docs/benchmarks.md.
#
# Writes one JSON line per round to docs/bench/shaped.jsonl (round time,
# the slowest worker's compute, each worker's idle fraction, bytes, the
# validation loss and the wall time at which the round was recorded), then
# `bench/summarize.py --csv shaped` and `bench/plot.py shaped` turn it into
# results.json keys and docs/bench/shaped_loss_vs_time.png. About 25 minutes.
# Needs root (network namespaces); exits 77 where they cannot be made.
#
#   bash bench/shaped_cluster.sh BUILD_DIR [RATE]
set -euo pipefail
build=$(readlink -f "${1:?usage: shaped_cluster.sh BUILD_DIR [RATE]}")
rate=${2:-27mbit}
overlap_steps=${OVERLAP_STEPS:-10}
cd "$(dirname "$0")/.."
source tests/support/netns_hosts.sh
netns_probe
id=$$

source bench/brown_data.sh
data=$(brown_dataset "$build" byte)
out=docs/bench/shaped.jsonl
tmp=$(mktemp -d /tmp/twist-shaped.XXXXXX)
hosts=(c a b)
declare -A addr=([c]=10.214.0.1 [a]=10.214.0.2 [b]=10.214.0.3)
pids=()
stop_daemons() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  stop_daemons
  netns_teardown ts "$id" "${hosts[@]}"
  rm -rf "$tmp"
}
trap cleanup EXIT

netns_hosts ts "$id" c="${addr[c]}" a="${addr[a]}" b="${addr[b]}"
# The coordinator's link: its veth's egress (to the workers) and the bridge
# port's egress (to the coordinator).
ip netns exec "tsc$id" tc qdisc add dev "tsvc$id" root tbf rate "$rate" burst 256kb latency 1s
tc qdisc add dev "tspc$id" root tbf rate "$rate" burst 256kb latency 1s
on() { local h=$1; shift; ip netns exec "ts$h$id" "$@"; }
start_on() { local h=$1; shift; ip netns exec "ts$h$id" "$@" & pids+=($!); }
on a ping -c 1 -W 2 "${addr[c]}" >/dev/null || { echo "the namespaces cannot reach each other"; exit 1; }

coordinator="${addr[c]}:7070"
model=(--n_layer=4 --n_head=4 --n_embd=128 --block_size=64 --batch_size=12
       --lr=1e-3 --warmup_steps=100 --min_lr_ratio=0.1 --beta2=0.99
       --weight_decay=0.1 --grad_clip=1.0 --eval_every=5 --eval_batches=8
       --checkpoint_every=-1 --rounds=40 --local_steps=50 --seed=1
       --optimizer_state=worker --deal=rolling --outer_lr=0.7
       --outer_momentum=0.9 --min_workers=2)
: >"$out"
for run in none:0 int8:0 int4:0 topk:0 none:"$overlap_steps" int8:"$overlap_steps" \
           int4:"$overlap_steps" topk:"$overlap_steps"; do
  compression=${run%:*} ahead=${run#*:} name=shaped-${run/:/-}
  start_on c "$build/coordinator/twist-coordinator" --listen="$coordinator" \
    --http="${addr[c]}:8080" --state_dir="$tmp/state-$name" --threads=1 --insecure \
    >"$tmp/coordinator-$name.log" 2>&1
  for _ in $(seq 1 100); do grep -q "ready" "$tmp/coordinator-$name.log" && break; sleep 0.1; done
  for w in a b; do
    start_on "$w" "$build/worker/twist-worker" --coordinator="$coordinator" \
      --name="worker-$w" --threads=1 >"$tmp/worker-$w-$name.log" 2>&1
  done
  on c "$build/client/twistctl" --coordinator="$coordinator" submit --data="$data" \
    "${model[@]}" --compression="$compression" --overlap_steps="$ahead" \
    --name="$name" --watch >/dev/null
  on c /usr/bin/python3 - "${addr[c]}" "$compression" "$rate" "$ahead" >>"$out" <<'PY'
import json, sys, urllib.request
host, compression, rate, ahead = sys.argv[1:]
job = json.load(urllib.request.urlopen(f"http://{host}:8080/api/v1/jobs/1"))
rounds = job["rounds"]
start = rounds[0]["finished_at"]
for r in rounds:
    workers = r["workers"]
    print(json.dumps({
        "bench": "shaped", "compression": compression, "overlap": int(ahead) > 0,
        "overlap_steps": int(ahead), "rate": rate,
        "round": r["round"], "duration_s": r["duration_s"], "merge_s": r["merge_s"],
        "slowest_compute_s": max([w.get("compute_s", 0) for w in workers] or [0]),
        "idle_fraction": [w.get("idle_fraction", 0) for w in workers],
        "steps_ahead": [w.get("steps_ahead", 0) for w in workers],
        "bytes_sent": r["bytes_sent"], "bytes_received": r["bytes_received"],
        "val_loss": r["val_loss"], "wall_s": r["finished_at"] - start}))
PY
  tail -1 "$out"
  stop_daemons
done
/usr/bin/python3 bench/plot.py shaped "$out" docs/bench
