#!/usr/bin/env bash
# Byte-level against GPT-2 BPE on the same text: the quickstart's job (4
# layers, 4 heads, width 128, context 128, batch 16, 2 workers; ROUNDS rounds
# of 20 steps, 15 by default, a quarter of the quickstart's, to keep the BPE
# run near a quarter of an hour) on the Brown Corpus prepared both ways (tags
# stripped), each
# scored at the end on 100 fixed validation batches. Losses per token do not
# compare across tokenizers, so the table divides each by the validation
# text's bytes per token: nats per byte of text. The BPE model's vocabulary
# is padded to 50304.
# Writes docs/bench/tokenizers.csv.
#
#   bash bench/tokenizers.sh BUILD_DIR [ROUNDS]   (about 20 minutes on 2 cores)
set -euo pipefail
build=$(readlink -f "${1:?usage: tokenizers.sh BUILD_DIR [ROUNDS]}")
rounds=${2:-15}
cd "$(dirname "$0")/.."
out=docs/bench/tokenizers.csv
work=runs/bench/tokenizers
mkdir -p "$work"
source bench/brown_data.sh
for tokenizer in bytes gpt2; do
  data=$(brown_dataset "$build" $tokenizer)
  vocab=()
  [ "$tokenizer" = gpt2 ] && vocab=(--vocab_size=50304)
  "$build/bench/learning_bench" run --data="$data" --workers=2 --threads=1 \
    --label="quickstart-$tokenizer" --seed=1 --rounds="$rounds" --local_steps=20 --batch_size=16 \
    --n_layer=4 --n_head=4 --n_embd=128 --block_size=128 --lr=2e-3 --warmup_steps=30 \
    --eval_every=10 --eval_batches=8 --checkpoint_every=-1 "${vocab[@]}" \
    --deal=random --outer_lr=1 --outer_momentum=0 \
    --csv="$work/rounds.csv" --score_batches=100 --summary="$work/summary-$tokenizer.csv"
done
/usr/bin/python3 - "$work" data/brown data/brown-gpt2 data/tokenizers/gpt2 "$out" "$rounds" <<'PY'
import csv, json, sys
work, bytes_data, gpt2_data, gpt2_dir, out, rounds = sys.argv[1:]

def val_bytes_per_token(data, tokenizer):
    """Bytes of text per validation token (the end-of-text id counts 0)."""
    if tokenizer == "bytes":
        return 1.0
    encoder = json.load(open(f"{gpt2_dir}/encoder.json", encoding="utf-8"))
    printable = [b for b in range(256)
                 if 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF]
    to_byte = {chr(b): b for b in printable}
    extra = 0
    for b in range(256):
        if b not in printable:
            to_byte[chr(0x100 + extra)] = b
            extra += 1
    length = [0] * len(encoder)
    for token, i in encoder.items():
        length[i] = 0 if token == "<|endoftext|>" else len(token)
    ids = memoryview(open(f"{data}/val.bin", "rb").read()).cast("H")
    return sum(length[i] for i in ids) / len(ids)

rows = []
for tokenizer, data in (("bytes", bytes_data), ("gpt2", gpt2_data)):
    meta = json.load(open(f"{data}/meta.json"))
    summary = list(csv.DictReader(open(f"{work}/summary-{tokenizer}.csv")))[-1]
    bpt = val_bytes_per_token(data, tokenizer)
    loss = float(summary["final_val_loss"])
    rows.append({"tokenizer": tokenizer, "vocab_size": meta["vocab_size"],
                 "train_tokens": meta["train_tokens"], "val_tokens": meta["val_tokens"],
                 "rounds": int(rounds),
                 "local_steps": int(summary["local_steps"]),
                 "val_bytes_per_token": round(bpt, 4), "val_loss_per_token": loss,
                 "val_loss_per_byte": round(loss / bpt, 4),
                 "wall_seconds": summary["wall_seconds"]})
with open(out, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
for r in rows:
    print(r)
PY
