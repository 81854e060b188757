#!/usr/bin/env bash
# The GPU benchmark, in one command on a machine with an NVIDIA GPU and pip's
# CUDA torch (no network needed): builds the daemons with deploy/gpu/build.sh,
# runs the CUDA tests, then on cuda:0 with GPT-2 small (the shapes of
# deploy/examples/gpt2-small.textproto, GPT-2 BPE of the Brown Corpus in
# data/brown-gpt2, bfloat16 compute, a batch that fills the GPU):
#   1. the worker's training step (worker_step_bench) at keep 1, 1/2, 1/4
#   2. a plain eager PyTorch loop on the same GPU, model and batch
#      (bench/python_step.py: torch.autocast bfloat16, scaled_dot_product_attention)
#   3. a coordinator and one worker on cuda:0 training the example for a few
#      rounds at keep 1, 1/2, 1/4: the worker's tokens/s over its local steps
#      and its peak GPU memory
#   4. two workers sharing the GPU, keep 1/2 each
# It writes OUT_DIR/gpu.jsonl ("JSON" lines as the other benchmarks print) as
# it goes, and at the end OUT_DIR/logs.tar.gz: the round records of every job
# and every log, kept in runs/bench-gpu; bench/summarize.py OUT_DIR/gpu.jsonl
# docs/bench/results.json turns them into the `gpu` section.
#
#   bash deploy/gpu/make-prefix.sh            # once, on a Debian 12 machine with network
#   bash bench/gpu.sh [OUT_DIR]               # on the GPU machine (8 minutes or less)
#
# Environment: TWIST_GPU_BUILD_DIR (default build-gpu), TWIST_GPU_BATCH
# (sequences of 1024 tokens per step, default 16), TWIST_GPU_SKIP_BUILD=1 to
# reuse a build, TWIST_GPU_PARTS to run only some of "tests steps pytorch
# daemons shared" (all by default), TWIST_GPU_KEEPS the daemons' keep ratios
# ("0.25 0.5 1"). On a machine without a GPU it stops at once, saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/local_cluster.sh
results=$(realpath -m "${1:-runs/bench-gpu}")
out=$(realpath -m runs/bench-gpu)

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "bench/gpu.sh: no NVIDIA GPU here (nvidia-smi finds none). Run it on a GPU machine" \
       "with pip's CUDA torch, after bash deploy/gpu/make-prefix.sh on a Debian 12 machine;" \
       "CPU figures come from bash bench/run.sh." >&2
  exit 2
fi
data=$(realpath -m data/brown-gpt2)
if [ ! -f "$data/meta.json" ]; then
  echo "bench/gpu.sh: $data is missing: prepare it where the tokenizer can be fetched" \
       "(bash bench/run.sh, or twistctl prepare --tokenizer=gpt2 ...) and bring it along" >&2
  exit 2
fi

build=$(realpath -m "${TWIST_GPU_BUILD_DIR:-build-gpu}")
batch=${TWIST_GPU_BATCH:-16}
rm -rf "$out"
mkdir -p "$out" "$results"
jsonl=$results/gpu.jsonl
sampler=""
pids=()
cleanup() {
  kill "$sampler" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  tar czf "$results/logs.tar.gz" -C "$out" --exclude=state . 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 143' TERM INT

: >"$jsonl"
started=$(date +%s)
parts=" ${TWIST_GPU_PARTS:-tests steps pytorch daemons shared} "
part() { [[ $parts == *" $1 "* ]]; }
elapsed() { echo $(( $(date +%s) - started )); }
emit() { echo "JSON $1" | tee -a "$jsonl"; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
gpu_name=$(head -1 "$out/gpu.txt" | cut -d, -f1)

echo "== build ($(elapsed) s)"
if [ "${TWIST_GPU_SKIP_BUILD:-0}" != 1 ]; then
  build_start=$(date +%s)
  TWIST_GPU_TARGETS="twist-coordinator twist-worker twistctl worker_step_bench twist_model_test" \
    bash deploy/gpu/build.sh "$build" >"$out/build.log" 2>&1 ||
    { tail -40 "$out/build.log"; echo "bench/gpu.sh: build failed ($out/build.log)" >&2; exit 1; }
  emit "{\"bench\": \"gpu_build\", \"seconds\": $(( $(date +%s) - build_start ))}"
fi
# The daemons need the prefix's libraries; Python keeps the machine's own.
plain_ld_library_path=${LD_LIBRARY_PATH:-}
plain_ld_preload=${LD_PRELOAD:-}
# shellcheck disable=SC1091
source "$build/gpu-env.sh"
plain_python() {
  LD_LIBRARY_PATH=$plain_ld_library_path LD_PRELOAD=$plain_ld_preload python3 "$@"
}

if part tests; then
echo "== CUDA tests ($(elapsed) s)"
timeout 300 "$build/tests/twist_model_test" \
  --gtest_filter='SubnetCudaTest.*:GptTest.*Attention*:AutocastGuardTest.*:ComputeDtypeTest.*' \
  >"$out/cuda_tests.log" 2>&1 || true
tail -3 "$out/cuda_tests.log"
passed=$(grep -c '^\[       OK \]' "$out/cuda_tests.log" || true)
failed=$(grep -c '^\[  FAILED  \].*ms)' "$out/cuda_tests.log" || true)
emit "{\"bench\": \"gpu_tests\", \"passed\": $passed, \"failed\": $failed}"
fi

# Peak GPU memory of a process: nvidia-smi sampled every 200 ms into a file
# per pid while the process runs (MiB).
sample_memory() {  # FILE: samples "pid, MiB" lines until killed
  while true; do
    nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits >>"$1" 2>/dev/null || true
    sleep 0.2
  done
}
peak_mib() {  # FILE PID
  awk -F', *' -v pid="$2" '$1 == pid && $2 > m {m = $2} END {print m + 0}' "$1"
}
samples=$out/memory_samples.txt
: >"$samples"
sample_memory "$samples" &
sampler=$!

gpt2=(--n_layer=12 --n_head=12 --n_embd=768 --block_size=1024 --vocab_size=50304
      --batch_size="$batch" --activation=gelu_tanh)
echo "== 1. worker step on cuda:0, bfloat16 ($(elapsed) s)"
part steps || echo "(not asked for)"
for keep in 1 0.5 0.25; do
  part steps || break
  "$build/bench/worker_step_bench" --device=cuda:0 --compute_dtype=bfloat16 --keep=$keep \
    --steps=10 --warmup=3 --bench=gpu_step "${gpt2[@]}" >"$out/step_$keep.log" 2>&1 &
  p=$!; wait $p || { cat "$out/step_$keep.log"; continue; }
  line=$(grep '^JSON ' "$out/step_$keep.log" | sed 's/^JSON //')
  emit "${line%\}}, \"gpu_peak_mib\": $(peak_mib "$samples" $p)}"
done

echo "== 2. plain PyTorch loop, torch.autocast bfloat16 ($(elapsed) s)"
if part pytorch; then
LD_LIBRARY_PATH=$plain_ld_library_path LD_PRELOAD=$plain_ld_preload \
  python3 bench/python_step.py --device=cuda --autocast --sdpa --keep=1 --steps=10 \
  --warmup=3 --bench=gpu_step "${gpt2[@]}" >"$out/pytorch.log" 2>&1 &
p=$!
if wait $p; then
  line=$(grep '^JSON ' "$out/pytorch.log" | sed 's/^JSON //')
  emit "${line%\}}, \"gpu_peak_mib\": $(peak_mib "$samples" $p)}"
else
  cat "$out/pytorch.log"
fi
fi

echo "== 3. the daemons: a coordinator and a worker on cuda:0 ($(elapsed) s)"
start_coordinator "$build" "$out" 8
start_worker() {  # NAME
  "$build/worker/twist-worker" --coordinator="127.0.0.1:$grpc" --name="$1" --device=cuda:0 \
    --threads=4 >"$out/$1.log" 2>&1 &
  pids+=($!)
  worker_pid=$!
}
start_worker gpu-1
first_worker=$worker_pid
job=0
run_job() {  # LABEL KEEP WORKERS
  local label=$1 keep=$2 workers=$3
  job=$((job + 1))
  timeout 240 "$build/client/twistctl" --coordinator="127.0.0.1:$grpc" submit \
    --spec=deploy/examples/gpt2-small.textproto --data="$data" --name="$label" \
    --rounds=3 --local_steps=8 --batch_size="$batch" --keep_ratio="$keep" \
    --compute_dtype=bfloat16 --transport_dtype=bfloat16 --eval_every=3 --eval_batches=1 \
    --min_workers="$workers" --max_workers="$workers" --watch >"$out/job_$label.log" 2>&1 ||
    { tail -5 "$out/job_$label.log"; return 0; }
  curl -s "http://127.0.0.1:$http/api/v1/jobs/$job" >"$out/job_$label.json"
  local peaks=""
  for p in "${pids[@]:1}"; do peaks="$peaks $(peak_mib "$samples" "$p")"; done
  plain_python - "$out/job_$label.json" "$label" "$keep" "$workers" "$gpu_name" "$peaks" \
    <<'PY' | tee -a "$jsonl"
import json, sys
path, label, keep, workers, gpu, peaks = sys.argv[1:]
job = json.load(open(path))
spec = job["spec"]
rounds = [r for r in job["rounds"] if r["round"] >= 2]  # round 1 warms the GPU up
tokens = sum(w["tokens"] for r in rounds for w in r["workers"])
compute = sum(w["compute_s"] for r in rounds for w in r["workers"])
per_worker = [w for r in rounds for w in r["workers"]]
print("JSON " + json.dumps({
    "bench": "gpu_daemons", "label": label, "keep": float(keep), "workers": int(workers),
    "gpu": gpu, "state": job["state"], "rounds_measured": len(rounds),
    "batch_size": spec["batch_size"], "context": spec["model"]["block_size"],
    "n_layer": spec["model"]["n_layer"], "n_embd": spec["model"]["n_embd"],
    "parameters": max(w["parameters"] for w in per_worker),
    # Each worker's own rate, over its local steps; with several workers on
    # one GPU, their sum is the GPU's.
    "tokens_per_s": tokens / compute * len(rounds[0]["workers"]) if compute else 0,
    "worker_tokens_per_s": tokens / compute if compute else 0,
    "round_s": sorted(r["duration_s"] for r in rounds)[len(rounds) // 2],
    "val_loss": job.get("last_val_loss"),
    "bytes_to_worker": max(w["bytes_sent"] for w in per_worker),
    "gpu_peak_mib": max(int(p) for p in peaks.split())}))
PY
}
# Smallest first: the worker's peak so far is then this job's peak.
if part daemons; then
  for keep in ${TWIST_GPU_KEEPS:-0.25 0.5 1}; do run_job "keep$keep" "$keep" 1; done
fi
echo "== 4. two workers sharing the GPU ($(elapsed) s)"
if part shared; then
  start_worker gpu-2
  run_job keep0.5-2w 0.5 2
  kill "$first_worker" 2>/dev/null || true
fi

echo "== done in $(elapsed) s"
emit "{\"bench\": \"gpu_total\", \"seconds\": $(elapsed)}"
