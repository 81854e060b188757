#!/usr/bin/env bash
# Golden tickets with GPT-2's BPE: a model small enough to train 2000 steps
# here in minutes (4 layers, 4 heads, width 128, context 64, vocabulary 50257
# padded to 50304, batch 8) on the Brown Corpus prepared with GPT-2's BPE.
# Both runs start from the same init_from weights and take 2000 steps per
# worker: TwIST with 2 workers (40 rounds of 50 local steps), and plain
# training (one worker holding the whole model: the plain training loop,
# bit for bit). Then bench/ticket_bench cuts each to keep 1/2 and 1/4 with no
# fine-tuning: random subnetworks, and structured pruning by weight magnitude
# and by FLAP's fluctuation. Appends to docs/bench/bpe_tickets.csv.
#
#   bash bench/bpe_tickets.sh BUILD_DIR   (about 40 minutes on 2 cores)
set -euo pipefail
build=$(readlink -f "${1:?usage: bpe_tickets.sh BUILD_DIR}")
cd "$(dirname "$0")/.."
source bench/brown_data.sh
data=$(brown_dataset "$build" gpt2)
work=runs/bench/bpe_tickets
out=docs/bench/bpe_tickets.csv
mkdir -p "$work"
rm -f "$out"
model=(--n_layer=4 --n_head=4 --n_embd=128 --block_size=64 --vocab_size=50304
       --batch_size=8 --lr=1e-3 --warmup_steps=100 --min_lr_ratio=0.1 --beta2=0.99
       --weight_decay=0.1 --grad_clip=1.0 --eval_every=10 --eval_batches=8
       --checkpoint_every=-1 --seed=1
       --deal=random --outer_lr=1 --outer_momentum=0)  # the recipe measured
"$build/bench/learning_bench" init --data="$data" "${model[@]}" --out="$work/init.safetensors"
init=$(readlink -f "$work/init.safetensors")
"$build/bench/learning_bench" run --data="$data" --workers=2 --threads=1 --label=bpe-twist-2w \
  "${model[@]}" --init_from="$init" --rounds=40 --local_steps=50 \
  --csv="$work/rounds.csv" --model_out="$work/twist.safetensors"
"$build/bench/learning_bench" run --data="$data" --workers=1 --threads=2 --label=bpe-plain \
  --mode=local_sgd "${model[@]}" --init_from="$init" --rounds=40 --local_steps=50 \
  --csv="$work/rounds.csv" --model_out="$work/plain.safetensors"
for m in twist plain; do
  "$build/bench/ticket_bench" --model="$work/$m.safetensors" --label="bpe-$m" \
    --data="$data" --csv="$out"
done
