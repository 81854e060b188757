#!/usr/bin/env bash
# Benchmark: compressed updates (job spec `compression`), in two parts.
#
# quality: the 2000-step Brown Corpus setting of bench/optimizer_state.sh (4
#   layers x 4 heads x 128 wide, context 64, batch 12, 2 workers of one
#   thread) in its best recipe (worker-resident state, rolling deal,
#   Nesterov outer step 0.7 / 0.9, 40 rounds of 50 local steps), float32
#   transport. Every mode (none, int8, int4, topk) runs seeds 1-3 from the
#   same weights and batches and is scored on the same 200 validation
#   batches. Appends to docs/bench/communication.csv (runs already there are
#   skipped; TWIST_FRESH=1 starts over). About 25 minutes.
# gpt2: the real daemons (a coordinator and 2 workers of one thread) on
#   deploy/examples/gpt2-small.textproto with the rolling deal for 6 rounds of
#   one local step, once uncompressed and once with top-k; writes a JSON
#   line per round with the bytes (headers and tensors) to and from one keep-1/2
#   worker to docs/bench/communication_gpt2.jsonl; and bench/codec_bench (the
#   same worker's update in each codec: bytes, encode and decode seconds on
#   one thread) to docs/bench/communication_codec.jsonl. About 10 minutes.
#
# Then `bench/summarize.py --csv communication docs/bench/results.json`.
#
#   bash bench/compression.sh quality BUILD_DIR DATA_DIR
#   bash bench/compression.sh gpt2 BUILD_DIR
set -euo pipefail
part=${1:?usage: compression.sh quality|gpt2 BUILD_DIR [DATA_DIR]}
build=$(readlink -f "${2:?usage: compression.sh quality|gpt2 BUILD_DIR [DATA_DIR]}")
cd "$(dirname "$0")/.."

quality() {
  local data out=docs/bench work=runs/bench/compression summary
  data=$(readlink -f "${1:?the quality part needs DATA_DIR}")
  summary=$out/communication.csv
  mkdir -p "$out" "$work"
  [ "${TWIST_FRESH:-0}" = 1 ] && rm -f "$summary"
  local model=(--n_layer=4 --n_head=4 --n_embd=128 --block_size=64 --batch_size=12
               --lr=1e-3 --warmup_steps=100 --min_lr_ratio=0.1 --beta2=0.99
               --weight_decay=0.1 --grad_clip=1.0 --eval_every=10 --eval_batches=8
               --checkpoint_every=-1 --rounds=40 --local_steps=50
               --optimizer_state=worker --deal=rolling --outer_lr=0.7
               --outer_momentum=0.9)
  for seed in 1 2 3; do
    for compression in none int8 int4 topk; do
      local label="compression-$compression"
      if [ -f "$summary" ] && grep -q "^$label,$seed," "$summary"; then
        echo "$label seed $seed: in $summary"; continue
      fi
      "$build/bench/learning_bench" run --data="$data" --workers=2 --threads=1 \
        --label="$label" --seed="$seed" "${model[@]}" --compression="$compression" \
        --score_batches=200 --summary="$summary" --csv="$work/rounds.csv"
    done
  done
}

gpt2() {
  source bench/local_cluster.sh
  source bench/brown_data.sh
  local data
  data=$(brown_dataset "$build" gpt2)
  pids=()
  tmp=
  trap stop_local_cluster EXIT
  "$build/bench/codec_bench" --threads=1 --repeats=3 | tee /dev/stderr |
    sed -n 's/^JSON //p' >docs/bench/communication_codec.jsonl
  : >docs/bench/communication_gpt2.jsonl
  for compression in none topk; do
    tmp=$(mktemp -d)
    pids=()
    start_local_cluster "$build" "$tmp" 2 gpt2
    "$build/client/twistctl" --coordinator="127.0.0.1:$grpc" submit \
      --spec=deploy/examples/gpt2-small.textproto --data="$data" --rounds=6 \
      --local_steps=1 --eval_every=6 --deal=rolling --compression="$compression" \
      --watch >/dev/null
    (/usr/bin/python3 - "$http" "$compression" <<'PY'
import json, sys, urllib.request
http, compression = sys.argv[1:]
job = json.load(urllib.request.urlopen(f"http://127.0.0.1:{http}/api/v1/jobs/1"))
for r in job["rounds"]:
    if r["round"] == 0:
        continue
    w = r["workers"][0]
    print(json.dumps({
        "bench": "communication_gpt2", "compression": compression, "round": r["round"],
        "worker_parameters": w["parameters"], "bytes_to_worker": w["bytes_sent"],
        "bytes_from_worker": w["bytes_received"], "val_loss": r.get("val_loss")}))
PY
    ) | tee -a docs/bench/communication_gpt2.jsonl
    stop_local_cluster
    pids=()
    tmp=
  done
}

case $part in
  quality) quality "${3:-}" ;;
  gpt2) gpt2 ;;
  *) echo "usage: compression.sh quality|gpt2 BUILD_DIR [DATA_DIR]" >&2; exit 2 ;;
esac
