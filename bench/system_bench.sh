#!/usr/bin/env bash
# Benchmark 4: where a round's time goes for a 2-worker job on loopback, with
# the real daemons: the quickstart model and 20 local steps on the Brown
# Corpus. Per round, the slowest worker: its compute, and the rest of its
# time from assignment to update (transfers, waiting), as the coordinator
# measured it that round. Prints one JSON line per round (bench/summarize.py
# reads them).
#
#   bash bench/system_bench.sh BUILD_DIR DATA_DIR [ROUNDS]
set -euo pipefail
build=$(readlink -f "$1"); data=$(readlink -f "$2"); rounds=${3:-12}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait || true; rm -rf "$tmp"; }
trap cleanup EXIT
source bench/local_cluster.sh
start_local_cluster "$build" "$tmp" 2 bench
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
    # The slowest worker sets the round's pace: its time from assignment to
    # update (measured by the coordinator, this round) is its compute plus
    # the transfers and waiting around it.
    slowest = max(ws, key=lambda w: w["seconds"])
    compute = slowest["compute_s"]
    transfer = slowest["seconds"] - compute
    print("JSON " + json.dumps({
        "bench": "system", "round": r["round"], "duration_s": r["duration_s"],
        "compute_s": compute, "transfer_s": transfer, "merge_s": r["merge_s"],
        "eval_s": r["eval_s"], "bytes_per_worker": r["bytes_sent"] / len(ws),
        "overhead_share": 1 - compute / r["duration_s"]}))
PY
