#!/usr/bin/env bash
# bfloat16 compute (compute_dtype) against float32 on this machine's CPU, and
# against PyTorch's own mixed precision:
#   steps  the worker's training step (bench/worker_step_bench) in float32 and
#          in bfloat16, and bench/python_step.py under
#          torch.autocast("cpu", dtype=torch.bfloat16), on the GPT-2-small
#          example's shapes (12 layers, width 768, context 1024, vocabulary
#          50304, tanh GELU, batch 1) at keep 1 and 1/2, on 1 and 2 threads.
#          Prints "JSON" lines (bench "compute_dtype") for bench/summarize.py.
#   loss   the 2000-step Brown run of bench/optimizer_state.sh in its best
#          recipe (2 workers, worker-kept state, rolling deal, Nesterov outer
#          step), float32 against bfloat16, for the seeds given; appends to
#          docs/bench/compute_dtype_loss.csv.
#
#   bash bench/compute_dtype.sh BUILD_DIR steps [STEPS]        (about 10 minutes on 2 cores)
#   bash bench/compute_dtype.sh BUILD_DIR loss DATA_DIR SEED... (about 4 minutes a seed)
set -euo pipefail
build=$(readlink -f "${1:?usage: compute_dtype.sh BUILD_DIR steps|loss ...}")
what=${2:?usage: compute_dtype.sh BUILD_DIR steps|loss ...}
cd "$(dirname "$0")/.."
if [ "$what" = steps ]; then
  steps=${3:-2}
  gpt2=(--n_layer=12 --n_head=12 --n_embd=768 --block_size=1024 --vocab_size=50304
        --batch_size=1 --activation=gelu_tanh --steps="$steps" --warmup=1
        --bench=compute_dtype)
  for threads in 1 2; do
    for keep in 1 0.5; do
      for dtype in float32 bfloat16; do
        "$build/bench/worker_step_bench" --keep=$keep --threads=$threads \
          --compute_dtype=$dtype "${gpt2[@]}"
      done
      /usr/bin/python3 bench/python_step.py --keep=$keep --threads=$threads --autocast \
        "${gpt2[@]}"
    done
  done
  exit 0
fi
[ "$what" = loss ] || { echo "compute_dtype.sh: unknown part '$what' (steps or loss)" >&2; exit 2; }
data=$(readlink -f "${3:?usage: compute_dtype.sh BUILD_DIR loss DATA_DIR SEED...}")
shift 3
csv=docs/bench/compute_dtype_loss.csv
work=runs/bench/compute_dtype
mkdir -p "$work"
recipe=(--n_layer=4 --n_head=4 --n_embd=128 --block_size=64 --batch_size=12
        --lr=1e-3 --warmup_steps=100 --min_lr_ratio=0.1 --beta2=0.99
        --weight_decay=0.1 --grad_clip=1.0 --eval_every=10 --eval_batches=8
        --checkpoint_every=-1 --rounds=40 --local_steps=50 --optimizer_state=worker
        --deal=rolling --outer_lr=0.7 --outer_momentum=0.9)
for seed in "$@"; do
  for dtype in float32 bfloat16; do
    label=twist-2w-best-$dtype
    if [ -f "$csv" ] && grep -q "^$label,$seed," "$csv"; then
      echo "$label seed $seed: in $csv"; continue
    fi
    "$build/bench/learning_bench" run --data="$data" --workers=2 --threads=1 \
      --label="$label" --seed="$seed" "${recipe[@]}" --compute_dtype="$dtype" \
      --score_batches=200 --summary="$csv" --csv="$work/rounds.csv"
  done
done
