#!/usr/bin/env bash
# Benchmark 4: where a round's time goes for a 2-worker job on loopback, with
# the real daemons: the quickstart model and 20 local steps on the Brown
# Corpus. Prints one JSON line per round (bench/summarize.py reads them).
#
#   bash bench/system_bench.sh BUILD_DIR DATA_DIR [ROUNDS]
set -euo pipefail
build=$(readlink -f "$1"); data=$(readlink -f "$2"); rounds=${3:-12}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait || true; rm -rf "$tmp"; }
trap cleanup EXIT
"$build/coordinator/twist-coordinator" --listen=127.0.0.1:0 --http=127.0.0.1:0 \
  --state_dir="$tmp/state" --threads=1 >"$tmp/coordinator.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q "ready" "$tmp/coordinator.log" && break; sleep 0.1; done
grpc=$(sed -n 's/.*ready grpc_port=\([0-9]*\) http_port=\([0-9]*\).*/\1/p' "$tmp/coordinator.log")
http=$(sed -n 's/.*ready grpc_port=\([0-9]*\) http_port=\([0-9]*\).*/\2/p' "$tmp/coordinator.log")
for w in 1 2; do
  "$build/worker/twist-worker" --coordinator="127.0.0.1:$grpc" --name="bench-$w" --threads=1 \
    >"$tmp/worker-$w.log" 2>&1 &
  pids+=($!)
done
"$build/client/twistctl" --coordinator="127.0.0.1:$grpc" submit \
  --spec=deploy/examples/quickstart.textproto --data="$data" --rounds="$rounds" \
  --eval_every=4 --checkpoint_every=-1 --watch >/dev/null
python3 - "$http" <<'PY'
import json, sys, urllib.request
job = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/v1/jobs/1"))
for r in job["rounds"]:
    if r["round"] == 0:
        continue
    ws = r["workers"]
    compute = sum(w["compute_s"] for w in ws) / len(ws)
    transfer = sum(w["receive_s"] + w["send_s"] for w in ws) / len(ws)
    print("JSON " + json.dumps({
        "bench": "system", "round": r["round"], "duration_s": r["duration_s"],
        "compute_s": compute, "transfer_s": transfer, "merge_s": r["merge_s"],
        "eval_s": r["eval_s"], "bytes_per_worker": r["bytes_sent"] / len(ws),
        "overhead_share": 1 - compute / r["duration_s"]}))
PY
