#!/usr/bin/env bash
# Benchmark 6: where the local optimizer's state lives (fresh, worker-resident,
# coordinator-kept) and how units are dealt (random, rolling), against the
# plain PyTorch training loop users would run instead. One model (4 layers x 4
# heads x 128 wide, context 64, batch 12), 2000 steps per worker (40 rounds of
# 50 local steps), AdamW lr 1e-3 with 100 warm-up steps and a cosine to 1e-4,
# beta2 0.99, weight decay 0.1, clipping at 1.0, on the Brown Corpus. Every run
# starts from the same weights and takes the same batch windows (slot 0 of a
# job takes the plain loop's); every final model is scored on the same 200
# validation batches by the same code. Equal threads in total: 1 worker x 2
# threads against 2 workers x 1 thread.
#
# Screens every option with seed 1, then runs the best two twist settings
# with seeds 2 and 3. Appends to docs/bench/optimizer_state.csv (runs already
# there are skipped; TWIST_FRESH=1 starts over).
#
#   bash bench/optimizer_state.sh BUILD_DIR DATA_DIR   (about 70 minutes)
set -euo pipefail
build=$(readlink -f "${1:?usage: optimizer_state.sh BUILD_DIR DATA_DIR}")
data=$(readlink -f "${2:?usage: optimizer_state.sh BUILD_DIR DATA_DIR}")
cd "$(dirname "$0")/.."
out=docs/bench
work=runs/bench/optimizer_state
mkdir -p "$out" "$work"
summary=$out/optimizer_state.csv
rounds_csv=$work/rounds.csv
[ "${TWIST_FRESH:-0}" = 1 ] && rm -f "$summary" "$rounds_csv"
# The recipe these figures were measured with: random deal, plain merging
# (the defaults until the rolling deal and Nesterov's outer step replaced
# them); a run's own options below override it.
model=(--n_layer=4 --n_head=4 --n_embd=128 --block_size=64 --batch_size=12
       --lr=1e-3 --warmup_steps=100 --min_lr_ratio=0.1 --beta2=0.99
       --weight_decay=0.1 --grad_clip=1.0 --eval_every=10 --eval_batches=8
       --checkpoint_every=-1 --deal=random --outer_lr=1 --outer_momentum=0)
done_already() { [ -f "$summary" ] && grep -q "^$1,$2," "$summary"; }
run() {  # label workers threads seed [options...]
  local label=$1 workers=$2 threads=$3 seed=$4; shift 4
  if done_already "$label" "$seed"; then echo "$label seed $seed: in $summary"; return; fi
  "$build/bench/learning_bench" run --data="$data" --workers="$workers" \
    --threads="$threads" --label="$label" --seed="$seed" "${model[@]}" \
    --score_batches=200 --summary="$summary" --csv="$rounds_csv" "$@"
}
plain() {  # seed
  local seed=$1
  if done_already pytorch-loop "$seed"; then echo "pytorch-loop seed $seed: in $summary"; return; fi
  "$build/bench/learning_bench" init --data="$data" "${model[@]}" --seed="$seed" \
    --out="$work/init-$seed.safetensors"
  local start end loss
  start=$(date +%s.%N)
  /usr/bin/python3 bench/plain_loop.py --init="$work/init-$seed.safetensors" \
    --data="$data" --out="$work/plain-$seed.safetensors" --steps=2000 \
    --local_steps=50 --seed="$seed" --batch_size=12 --lr=1e-3 --warmup_steps=100 \
    --min_lr_ratio=0.1 --beta2=0.99 --weight_decay=0.1 --grad_clip=1.0 --threads=2
  end=$(date +%s.%N)
  loss=$("$build/bench/learning_bench" score --model="$work/plain-$seed.safetensors" \
    --data="$data" --batches=200 --batch_size=12)
  [ -f "$summary" ] || echo "label,seed,workers,threads,mode,optimizer_state,deal,local_steps,final_val_loss,bytes_sent,bytes_received,worker_seconds,wall_seconds" >"$summary"
  echo "pytorch-loop,$seed,1,2,plain,,,50,$loss,0,0,,$(echo "$end - $start" | bc)" >>"$summary"
  echo "pytorch-loop seed $seed: final val loss $loss"
}

twist=(--rounds=40 --local_steps=50)
plain 1
run single-fresh 1 2 1 "${twist[@]}" --optimizer_state=fresh
run single-worker 1 2 1 "${twist[@]}" --optimizer_state=worker
for state in fresh worker coordinator; do
  run "twist-2w-$state" 2 1 1 "${twist[@]}" --optimizer_state=$state
  run "twist-4w-$state" 4 1 1 "${twist[@]}" --optimizer_state=$state
  run "local_sgd-2w-$state" 2 1 1 "${twist[@]}" --mode=local_sgd --optimizer_state=$state
done
for state in worker coordinator; do
  run "twist-2w-$state-rolling" 2 1 1 "${twist[@]}" --optimizer_state=$state --deal=rolling
  run "twist-4w-$state-rolling" 4 1 1 "${twist[@]}" --optimizer_state=$state --deal=rolling
done
# The Nesterov outer optimizer with persistent state and longer rounds.
run twist-2w-worker-rolling-nesterov-L50 2 1 1 --rounds=40 --local_steps=50 \
  --optimizer_state=worker --deal=rolling --outer_lr=0.7 --outer_momentum=0.9
run twist-2w-worker-rolling-nesterov-L100 2 1 1 --rounds=20 --local_steps=100 \
  --optimizer_state=worker --deal=rolling --outer_lr=0.7 --outer_momentum=0.9

# The best two twist-2w settings of the screen, with two more seeds.
best=$(grep '^twist-2w-[a-z-]*,1,' "$summary" | grep -v nesterov | sort -t, -k9 -g | head -2 | cut -d, -f1)
for label in $best; do
  for seed in 2 3; do
    case $label in
      *-fresh*) state=fresh ;; *-coordinator*) state=coordinator ;; *) state=worker ;;
    esac
    deal=random; case $label in *rolling*) deal=rolling ;; esac
    run "$label" 2 1 "$seed" "${twist[@]}" --optimizer_state=$state --deal=$deal
  done
  run single-worker 1 2 2 "${twist[@]}" --optimizer_state=worker
  run single-worker 1 2 3 "${twist[@]}" --optimizer_state=worker
done
plain 2
plain 3
/usr/bin/python3 bench/plot.py optimizer_state "$summary" "$rounds_csv" "$out"
