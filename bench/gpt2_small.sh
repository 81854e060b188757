#!/usr/bin/env bash
# GPT-2 small (deploy/examples/gpt2-small.textproto) with the real daemons on
# this machine: a coordinator and 2 workers (one thread each) on the Brown
# Corpus prepared with GPT-2's BPE. Three jobs, each with fresh daemons so
# that every peak is its own:
#   keep1-f32     local_sgd: each worker trains the whole model, float32
#   keep0.5-f32   twist: each worker trains half of every layer, float32
#   keep0.5-bf16  twist, bfloat16 transport
# For each round: the peak resident memory (VmHWM) of the coordinator and of
# the larger worker, bytes to and from a worker, seconds per local step, and
# the coordinator's round overhead (the round's wall time minus the slowest
# worker's time from assignment to update). Prints "JSON {...}" lines.
#
#   bash bench/gpt2_small.sh BUILD_DIR [ROUNDS] [LOCAL_STEPS]   (about 25 minutes on 2 cores)
set -euo pipefail
build=$(readlink -f "${1:?usage: gpt2_small.sh BUILD_DIR [ROUNDS] [LOCAL_STEPS]}")
rounds=${2:-2}; steps=${3:-3}
cd "$(dirname "$0")/.."
source bench/local_cluster.sh
source bench/brown_data.sh
data=$(brown_dataset "$build" gpt2)
peak() { awk '/VmHWM/ {printf "%.0f\n", $2 * 1024}' "/proc/$1/status"; }
pids=()
tmp=
trap stop_local_cluster EXIT

run() {  # label options...
  local label=$1; shift
  tmp=$(mktemp -d)
  pids=()
  start_local_cluster "$build" "$tmp" 2 gpt2
  "$build/client/twistctl" --coordinator="127.0.0.1:$grpc" submit \
    --spec=deploy/examples/gpt2-small.textproto --data="$data" --rounds="$rounds" \
    --local_steps="$steps" --eval_every="$rounds" "$@" --watch >/dev/null
  local coordinator_peak worker1_peak worker2_peak
  coordinator_peak=$(peak "${pids[0]}")
  worker1_peak=$(peak "${pids[1]}")
  worker2_peak=$(peak "${pids[2]}")
  /usr/bin/python3 - "$http" "$label" "$coordinator_peak" "$worker1_peak" "$worker2_peak" \
    "$steps" <<'PY'
import json, sys, urllib.request
http, label, coordinator, w1, w2, steps = sys.argv[1:]
job = json.load(urllib.request.urlopen(f"http://127.0.0.1:{http}/api/v1/jobs/1"))
params = job["parameters"]
for r in job["rounds"]:
    if r["round"] == 0:
        continue
    ws = r["workers"]
    slowest = max(ws, key=lambda w: w["seconds"])
    print("JSON " + json.dumps({
        "bench": "gpt2_small", "label": label, "round": r["round"],
        "parameters": params, "model_bytes_f32": 4 * params,
        "duration_s": r["duration_s"], "slowest_worker_s": slowest["seconds"],
        "coordinator_overhead_s": r["duration_s"] - slowest["seconds"],
        "merge_s": r["merge_s"], "eval_s": r["eval_s"],
        "step_s": slowest["compute_s"] / int(steps),
        "worker_parameters": max(w["parameters"] for w in ws),
        "bytes_to_worker": max(w["bytes_sent"] for w in ws),
        "bytes_from_worker": max(w["bytes_received"] for w in ws),
        "coordinator_peak_bytes": int(coordinator),
        "worker_peak_bytes": max(int(w1), int(w2))}))
PY
  stop_local_cluster
  pids=()
  tmp=
}

run keep1-f32 --mode=local_sgd --transport_dtype=float32
run keep0.5-f32 --transport_dtype=float32
run keep0.5-bf16 --transport_dtype=bfloat16
