#!/usr/bin/env bash
# Benchmark 7: which recipe a job gets when the spec says nothing, and how it
# holds at 2, 4 and 8 workers. The 2000-step Brown setting of
# bench/optimizer_state.sh (4 layers x 4 heads x 128 wide, context 64, batch
# 12, AdamW lr 1e-3, 100 warm-up steps, cosine to 1e-4, beta2 0.99, weight
# decay 0.1, clipping at 1.0; 2000 local steps per worker), one thread per
# worker, every run on the same 2 cores, every final model scored on the same
# 200 validation batches by the same code.
#
#   bash bench/default_recipe.sh BUILD_DIR DATA_DIR SECTION...
#
# Sections (each appends to docs/bench/default_recipe.csv and skips the runs
# already there; per-round curves go to runs/bench/default_recipe/rounds.csv):
#   grid   the outer step and local steps, rolling deal, seeds 1-2, at 2 and 4
#          workers (about 50 minutes), then grid4
#   grid4  the second pass at 4 workers, and the first pass's recipe scored
#          (about 55 minutes)
#   score  the defaults (no recipe option given) at 2 and 4 workers, seeds
#          3-5, and at 8 workers, seed 3; the recipe they replace (random
#          deal, plain merging, disjoint subnetworks) at 2 and 4 workers,
#          seed 3 (about 30 minutes)
#   split  subnetworks past 2 workers: half of each layer per worker (the
#          default since) against the disjoint quarters and eighths (1/n)
#          the runs above that name --keep_ratio measured, seeds 1-2 at 4
#          workers (about 15 minutes); the disjoint split scored like
#          `score` (quarters-4w, eighths-8w)
#   diloco local_sgd on the same workers with the same outer step, worker-
#          resident state, seed 3 (about 10 minutes)
#   plain  the plain PyTorch loop, seeds 3-5, with its model scored every 500
#          steps for the wall-time curve; one thread, its fastest setting on
#          this machine (about 15 minutes)
#   plot   docs/default_recipe_*.png and the markdown table
set -euo pipefail
build=$(readlink -f "${1:?usage: default_recipe.sh BUILD_DIR DATA_DIR SECTION...}")
data=$(readlink -f "${2:?usage: default_recipe.sh BUILD_DIR DATA_DIR SECTION...}")
shift 2
cd "$(dirname "$0")/.."
out=docs/bench
work=runs/bench/default_recipe
mkdir -p "$out" "$work"
summary=$out/default_recipe.csv
rounds_csv=$work/rounds.csv
model=(--n_layer=4 --n_head=4 --n_embd=128 --block_size=64 --batch_size=12
       --lr=1e-3 --warmup_steps=100 --min_lr_ratio=0.1 --beta2=0.99
       --weight_decay=0.1 --grad_clip=1.0 --eval_every=4 --eval_batches=8
       --checkpoint_every=-1)
done_already() { [ -f "$summary" ] && grep -q "^$1,$2," "$summary"; }
run() {  # label workers seed [options...]
  local label=$1 workers=$2 seed=$3; shift 3
  if done_already "$label" "$seed"; then echo "$label seed $seed: in $summary"; return; fi
  "$build/bench/learning_bench" run --data="$data" --workers="$workers" \
    --threads=1 --label="$label" --seed="$seed" "${model[@]}" \
    --score_batches=200 --summary="$summary" --csv="$rounds_csv" "$@"
}
# The seeds that score and plain run (TWIST_SEEDS overrides: "4 5" first
# and 3, whose curves the plot draws, on a quiet machine).
seeds=${TWIST_SEEDS:-3 4 5}
# The disjoint split of N workers (each 1/N of every layer), the default
# before half of each layer: the grid's, the first pass's and the old
# recipe's runs measured it.
disjoint() { echo "--keep_ratio=$(awk "BEGIN { print 1 / $1 }")"; }
# Rounds of L local steps, 2000 steps per worker in all.
steps() { echo "--rounds=$((2000 / $1)) --local_steps=$1"; }

grid() {
  local workers seed lr momentum L
  for seed in 1 2; do
    # 2 workers: the outer learning rate and momentum, and the round length.
    for lr in 0.5 0.7 1.0; do
      # shellcheck disable=SC2046
      run "grid-2w-lr$lr-m0.9-L50" 2 "$seed" $(steps 50) \
        --deal=rolling --outer_lr=$lr --outer_momentum=0.9
    done
    for momentum in 0.6 0.7 0.8 0.95; do
      # shellcheck disable=SC2046
      run "grid-2w-lr0.7-m$momentum-L50" 2 "$seed" $(steps 50) \
        --deal=rolling --outer_lr=0.7 --outer_momentum=$momentum
    done
    # shellcheck disable=SC2046
    run "grid-2w-lr1.0-m0.8-L50" 2 "$seed" $(steps 50) \
      --deal=rolling --outer_lr=1.0 --outer_momentum=0.8
  done
  # Rounds of 25 and 100 steps, seed 1 only (100 ends well behind).
  for L in 25 100; do
    # shellcheck disable=SC2046
    run "grid-2w-lr0.7-m0.9-L$L" 2 1 $(steps "$L") \
      --deal=rolling --outer_lr=0.7 --outer_momentum=0.9
  done
  # 4 workers: the momentum at the learning rate 2 workers prefer.
  for seed in 1 2; do
    for momentum in 0.7 0.8 0.9; do
      # shellcheck disable=SC2046
      run "grid-4w-lr0.7-m$momentum-L50" 4 "$seed" $(steps 50) \
        --deal=rolling --outer_lr=0.7 --outer_momentum=$momentum $(disjoint 4)
    done
  done
  grid4
}

# The second pass at 4 workers: the outer learning rate 1.0 (at 2 workers
# too), rounds of 25 steps, coordinator-kept state and the subnetworks'
# scaling; seed 1 unless said. Then the first pass's recipe (learning rate
# 0.7, momentum 0.7) scored as `score` and `diloco` score today's default
# (about 55 minutes).
grid4() {
  local seed
  for seed in 1 2; do
    for workers in 2 4; do
      # shellcheck disable=SC2046
      run "grid-${workers}w-lr1.0-m0.7-L50" "$workers" "$seed" $(steps 50) \
        --deal=rolling --outer_lr=1.0 --outer_momentum=0.7 $(disjoint "$workers")
    done
  done
  # shellcheck disable=SC2046
  {
    run grid-4w-lr1.0-m0.6-L50 4 1 $(steps 50) --deal=rolling --outer_lr=1.0 --outer_momentum=0.6 $(disjoint 4)
    run grid-4w-lr0.7-m0.7-L25 4 1 $(steps 25) --deal=rolling --outer_lr=0.7 --outer_momentum=0.7 $(disjoint 4)
    run grid-4w-lr1.0-m0.7-L25 4 1 $(steps 25) --deal=rolling --outer_lr=1.0 --outer_momentum=0.7 $(disjoint 4)
    run grid-4w-lr0.7-m0.7-L50-coordinator-state 4 1 $(steps 50) --deal=rolling \
      --outer_lr=0.7 --outer_momentum=0.7 --optimizer_state=coordinator $(disjoint 4)
    for scaling in none correction; do
      run "grid-4w-lr0.7-m0.7-L50-scaling-$scaling" 4 1 $(steps 50) --deal=rolling \
        --outer_lr=0.7 --outer_momentum=0.7 --scaling=$scaling $(disjoint 4)
    done
    for seed in 3 4 5; do
      for workers in 2 4; do
        run "score-${workers}w-lr0.7-m0.7" "$workers" "$seed" $(steps 50) \
          --outer_lr=0.7 --outer_momentum=0.7 $(disjoint "$workers")
      done
    done
    run score-8w-lr0.7-m0.7 8 3 $(steps 50) --outer_lr=0.7 --outer_momentum=0.7 $(disjoint 8)
    for workers in 2 4; do
      run "diloco-${workers}w-lr0.7-m0.7" "$workers" 3 $(steps 50) --mode=local_sgd \
        --optimizer_state=worker --outer_lr=0.7 --outer_momentum=0.7
    done
  }
}

score() {
  local workers seed
  for seed in $seeds; do
    for workers in 2 4; do
      # shellcheck disable=SC2046
      run "default-${workers}w" "$workers" "$seed" $(steps 50)
    done
    [ "$seed" = 3 ] || continue
    # shellcheck disable=SC2046
    run default-8w 8 3 $(steps 50)
    for workers in 2 4; do
      # shellcheck disable=SC2046
      run "old-default-${workers}w" "$workers" 3 $(steps 50) \
        --deal=random --outer_lr=1 --outer_momentum=0 $(disjoint "$workers")
    done
  done
}

split() {
  local seed
  for seed in 1 2; do
    # shellcheck disable=SC2046
    run grid-4w-lr1.0-m0.7-L50-half 4 "$seed" $(steps 50) --keep_ratio=0.5
  done
  for seed in $seeds; do
    # shellcheck disable=SC2046
    run quarters-4w 4 "$seed" $(steps 50) $(disjoint 4)
  done
  # shellcheck disable=SC2046
  run eighths-8w 8 3 $(steps 50) $(disjoint 8)
}

diloco() {
  local workers
  for workers in 2 4; do
    # shellcheck disable=SC2046
    run "diloco-${workers}w" "$workers" 3 $(steps 50) --mode=local_sgd \
      --optimizer_state=worker --outer_lr=1 --outer_momentum=0.7
  done
}

plain() {
  local seed start loss
  for seed in $seeds; do
    if done_already pytorch-loop "$seed"; then echo "pytorch-loop seed $seed: in $summary"; continue; fi
    "$build/bench/learning_bench" init --data="$data" "${model[@]}" --seed="$seed" \
      --rounds=40 --local_steps=50 --out="$work/init-$seed.safetensors"
    start=$(date +%s.%N)
    /usr/bin/python3 bench/plain_loop.py --init="$work/init-$seed.safetensors" \
      --data="$data" --out="$work/plain-$seed.safetensors" --steps=2000 \
      --local_steps=50 --seed="$seed" --batch_size=12 --lr=1e-3 --warmup_steps=100 \
      --min_lr_ratio=0.1 --beta2=0.99 --weight_decay=0.1 --grad_clip=1.0 --threads=1 \
      --save_every=500 >"$work/plain-$seed.jsonl"
    local wall
    wall=$(echo "$(date +%s.%N) - $start" | bc)
    # The curve: every saved model scored like the jobs' final models.
    python3 - "$work/plain-$seed.jsonl" "$seed" "$build" "$data" >>"$rounds_csv" <<'EOF'
import json, subprocess, sys
path, seed, build, data = sys.argv[1:]
for line in open(path):
    r = json.loads(line)
    if r.get("bench") != "plain_loop_save":
        continue
    loss = subprocess.run([f"{build}/bench/learning_bench", "score", f"--model={r['path']}",
                           f"--data={data}", "--batches=8", "--batch_size=12"],
                          check=True, capture_output=True, text=True).stdout.strip()
    print(f"pytorch-loop,{seed},1,plain,50,{r['step'] // 50},{r['step']},,{loss},0,"
          f"{r['elapsed_s']:.3f},,,{r['elapsed_s']:.2f}")
EOF
    loss=$("$build/bench/learning_bench" score --model="$work/plain-$seed.safetensors" \
      --data="$data" --batches=200 --batch_size=12)
    [ -f "$summary" ] || echo "label,seed,workers,threads,mode,optimizer_state,deal,local_steps,final_val_loss,bytes_sent,bytes_received,worker_seconds,wall_seconds" >"$summary"
    echo "pytorch-loop,$seed,1,1,plain,,,50,$loss,0,0,,$wall" >>"$summary"
    echo "pytorch-loop seed $seed: final val loss $loss, $wall s"
  done
}

for section in "$@"; do
  case $section in
    grid) grid ;;
    grid4) grid4 ;;
    score) score ;;
    split) split ;;
    diloco) diloco ;;
    plain) plain ;;
    plot) /usr/bin/python3 bench/plot.py default_recipe "$summary" "$rounds_csv" "$out" ;;
    *) echo "unknown section $section: grid, grid4, score, split, diloco, plain or plot" >&2; exit 2 ;;
  esac
done
