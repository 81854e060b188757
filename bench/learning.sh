#!/usr/bin/env bash
# Benchmark 5: learning quality per unit of cost on the Brown Corpus. Trains
# the same model (4 layers, 4 heads, width 128, context 64) with twist (2 and
# 4 workers, several units-per-worker and local-step settings, the outer
# optimizer, the shift correction, bfloat16 transport), local_sgd (2 and 4
# workers) and a single full-model worker, each for the same steps per worker
# (R*L = 600), plus single workers for 2*R*L and 4*R*L steps, with 3 seeds
# each. Appends to docs/bench/learning.csv, saves the seed-1 models for the
# golden-ticket benchmark, and draws the figures (bench/plot.py). Runs already
# in the CSV (label and seed) are skipped, so an interrupted run resumes; set
# TWIST_FRESH=1 to start over.
#
#   bash bench/learning.sh BUILD_DIR DATA_DIR   (about 70 minutes on 2 cores)
set -euo pipefail
build=$(readlink -f "${1:?usage: learning.sh BUILD_DIR DATA_DIR}")
data=$(readlink -f "${2:?usage: learning.sh BUILD_DIR DATA_DIR}")
cd "$(dirname "$0")/.."
out=docs/bench
models=runs/bench/models
mkdir -p "$out" "$models"
csv=$out/learning.csv
[ "${TWIST_FRESH:-0}" = 1 ] && rm -f "$csv"
# The recipe these figures were measured with: random deal, plain merging
# (the defaults until the rolling deal and Nesterov's outer step replaced
# them); a run's own options below override it.
model=(--n_layer=4 --n_head=4 --n_embd=128 --block_size=64 --batch_size=16 --lr=2e-3
       --eval_every=5 --eval_batches=8 --checkpoint_every=-1
       --deal=random --outer_lr=1 --outer_momentum=0)
run() {  # label workers seed [options...]
  local label=$1 workers=$2 seed=$3; shift 3
  if [ -f "$csv" ] && grep -q "^$label,$seed," "$csv"; then
    echo "$label seed $seed: already in $csv"
    return
  fi
  local keep=()
  [ "$seed" = 1 ] && keep=(--model_out="$models/$label.safetensors")
  "$build/bench/learning_bench" run --data="$data" --workers="$workers" --label="$label" \
    --seed="$seed" --csv="$csv" "${model[@]}" "${keep[@]}" "$@"
}
for seed in 1 2 3; do
  run twist-2w 2 "$seed" --rounds=30 --local_steps=20
  run twist-2w-3of4 2 "$seed" --rounds=30 --local_steps=20 --heads_per_worker=3 --ffn_columns_per_worker=384
  run twist-2w-L10 2 "$seed" --rounds=60 --local_steps=10
  run twist-4w 4 "$seed" --rounds=30 --local_steps=20
  run twist-4w-2of4 4 "$seed" --rounds=30 --local_steps=20 --heads_per_worker=2 --ffn_columns_per_worker=256
  run twist-2w-nesterov 2 "$seed" --rounds=30 --local_steps=20 --outer_lr=0.7 --outer_momentum=0.9
  run twist-2w-correction 2 "$seed" --rounds=30 --local_steps=20 --scaling=correction
  run twist-2w-bf16 2 "$seed" --rounds=30 --local_steps=20 --transport_dtype=bfloat16
  run local_sgd-2w 2 "$seed" --mode=local_sgd --rounds=30 --local_steps=20
  run local_sgd-4w 4 "$seed" --mode=local_sgd --rounds=30 --local_steps=20
  # Single workers use one core each: two at a time.
  run single-RL 1 "$seed" --mode=local_sgd --rounds=30 --local_steps=20 &
  pair=$!
  run single-2RL 1 "$seed" --mode=local_sgd --rounds=60 --local_steps=20
  wait "$pair"
  run single-4RL 1 "$seed" --mode=local_sgd --rounds=120 --local_steps=20
done
/usr/bin/python3 bench/plot.py learning "$csv" "$out"
