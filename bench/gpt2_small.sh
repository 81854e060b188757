#!/usr/bin/env bash
# GPT-2 small (deploy/examples/gpt2-small.textproto) with the real daemons on
# this machine: a coordinator and 2 workers (one thread each) on the Brown
# Corpus prepared with GPT-2's BPE. Three jobs, each with fresh daemons so
# that every peak is its own:
#   keep1-f32     local_sgd: each worker trains the whole model, float32
#   keep0.5-f32   twist: each worker trains half of every layer, float32
#   keep0.5-bf16  twist, bfloat16 transport
# For each round (bench/round_memory.py): the peak resident memory (VmHWM,
# reset after each round) of the coordinator and of the larger worker, bytes
# to and from a worker, seconds per local step, and the coordinator's round
# overhead (the round's wall time minus the slowest worker's time from
# assignment to update); and each process's resident memory before the job.
# Prints "JSON {...}" lines. Every job uses the spec's recipe, which is the
# default one: no update compression; in twist mode the rolling deal and
# Nesterov's outer step (learning rate 1, momentum 0.7: a bfloat16
# velocity on the coordinator, half the model's bytes), in local_sgd mode plain averaging. The
# coordinator merges on COORDINATOR_THREADS threads (default 2: the workers
# wait for the merge, so its cores are free then). ROW... runs only the rows
# named (keep1-f32, keep0.5-f32, keep0.5-bf16).
#
#   bash bench/gpt2_small.sh BUILD_DIR [ROUNDS] [LOCAL_STEPS] [COORDINATOR_THREADS] [ROW...]
#   (about 20 minutes on 2 cores)
set -euo pipefail
build=$(readlink -f "${1:?usage: gpt2_small.sh BUILD_DIR [ROUNDS] [LOCAL_STEPS] [COORDINATOR_THREADS]}")
rounds=${2:-6}; steps=${3:-2}; coordinator_threads=${4:-2}
shift $(($# < 4 ? $# : 4))
rows=("$@")
cd "$(dirname "$0")/.."
source bench/local_cluster.sh
source bench/brown_data.sh
data=$(brown_dataset "$build" gpt2)
pids=()
tmp=
trap stop_local_cluster EXIT

run() {  # label options...
  local label=$1; shift
  if [ ${#rows[@]} -gt 0 ] && [[ " ${rows[*]} " != *" $label "* ]]; then return; fi
  tmp=$(mktemp -d)
  pids=()
  start_local_cluster "$build" "$tmp" 2 gpt2 "$coordinator_threads"
  (sleep 1; "$build/client/twistctl" --coordinator="127.0.0.1:$grpc" submit \
    --spec=deploy/examples/gpt2-small.textproto --data="$data" --rounds="$rounds" \
    --local_steps="$steps" --eval_every=3 "$@" >/dev/null) &
  /usr/bin/python3 bench/round_memory.py "$http" "$label" "$steps" "${pids[@]}"
  wait $!
  stop_local_cluster
  pids=()
  tmp=
}

run keep1-f32 --mode=local_sgd --transport_dtype=float32
run keep0.5-f32 --transport_dtype=float32
run keep0.5-bf16 --transport_dtype=bfloat16
