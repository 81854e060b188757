# shellcheck shell=bash disable=SC2034  # sets $grpc, $http and $pids for the caller
# Sourced by the benchmarks that run the real daemons: starts a coordinator
# (one thread unless told, ports chosen by the kernel) and N workers (one thread each) on
# loopback, with their logs and state in DIR. Sets $grpc, $http and appends
# the process ids to the array $pids (coordinator first). bench/gpu.sh starts
# its coordinator with start_coordinator and its own workers.
#
#   source bench/local_cluster.sh
#   pids=(); start_local_cluster BUILD_DIR DIR N NAME_PREFIX [COORDINATOR_THREADS]
# stop_local_cluster: kills the processes in $pids, waits for them, and
# removes the folder $tmp (when set); for `trap stop_local_cluster EXIT` and
# between runs.
stop_local_cluster() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${tmp:-}" ]; then rm -rf "$tmp"; fi
}

start_local_cluster() {
  local build=$1 dir=$2 workers=$3 prefix=$4 threads=${5:-1}
  start_coordinator "$build" "$dir" "$threads"
  for w in $(seq 1 "$workers"); do
    "$build/worker/twist-worker" --coordinator="127.0.0.1:$grpc" --name="$prefix-$w" \
      --threads=1 >"$dir/worker-$w.log" 2>&1 &
    pids+=($!)
  done
}

# start_coordinator BUILD_DIR DIR THREADS: the coordinator alone, on ports the
# kernel chooses, its state in DIR/state and its log in DIR/coordinator.log;
# sets $grpc and $http and appends its process id to $pids.
start_coordinator() {
  local build=$1 dir=$2 threads=$3
  "$build/coordinator/twist-coordinator" --listen=127.0.0.1:0 --http=127.0.0.1:0 \
    --state_dir="$dir/state" --threads="$threads" >"$dir/coordinator.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do grep -q "ready" "$dir/coordinator.log" && break; sleep 0.1; done
  grpc=$(sed -n 's/.*ready grpc_port=\([0-9]*\) http_port=\([0-9]*\).*/\1/p' "$dir/coordinator.log")
  http=$(sed -n 's/.*ready grpc_port=\([0-9]*\) http_port=\([0-9]*\).*/\2/p' "$dir/coordinator.log")
}
