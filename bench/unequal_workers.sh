#!/usr/bin/env bash
# Benchmark 8: workers of unequal speed. The real daemons on this machine: a
# coordinator and 2 workers of one thread each, the 2000-step Brown setting of
# bench/default_recipe.sh (default recipe, seed 3). Three jobs, each with
# fresh daemons:
#   equal          both workers at full speed, equal quotas
#   half-equal     worker 2 held to half a core (a cgroup's CPU quota: 1.5
#                  cores of work in all), equal quotas
#   half-learned   the same, quota: learned (units in proportion to the speeds
#                  the coordinator measures)
#   half-steps     the same, quota: learned with quota_in: local_steps (equal
#                  units, local steps in proportion to the speeds)
# For each: the median round time over rounds 2-40 (the first round has no
# measured speed), updates the straggler deadline rejected, each worker's
# median compute seconds and share of the parameters, and the final model's
# loss on the same 200 validation batches as bench/default_recipe.sh. Prints
# "JSON {...}" lines; `unequal_round_ratio` is half-learned's median round time
# over equal's (the floor is 2 / 1.5 = 1.33).
#
#   bash bench/unequal_workers.sh BUILD_DIR DATA_DIR   (about 12 minutes; root,
#   for the cgroup; exits 77 without)
#   TWIST_SEEDS="4 5" bash bench/unequal_workers.sh ...  (the half-learned and
#   half-steps jobs at other seeds only, about 6 minutes a seed)
set -euo pipefail
build=$(readlink -f "${1:?usage: unequal_workers.sh BUILD_DIR DATA_DIR}")
data=$(readlink -f "${2:?usage: unequal_workers.sh BUILD_DIR DATA_DIR}")
cd "$(dirname "$0")/.."
cgroup=/sys/fs/cgroup/cpu/twist-half-core
[ -d /sys/fs/cgroup/cpu ] || cgroup=/sys/fs/cgroup/twist-half-core  # cgroup v2
if ! mkdir -p "$cgroup" 2>/dev/null; then
  echo "unequal_workers: cannot create the cgroup $cgroup (needs root)" >&2
  exit 77
fi
half_core() {  # PID: at most half a core from now on
  if [ -f "$cgroup/cpu.cfs_quota_us" ]; then
    echo 100000 >"$cgroup/cpu.cfs_period_us"
    echo 50000 >"$cgroup/cpu.cfs_quota_us"
  else
    echo "50000 100000" >"$cgroup/cpu.max"
  fi
  echo "$1" >"$cgroup/cgroup.procs"
}
source bench/local_cluster.sh
pids=()
tmp=
finish() { stop_local_cluster; rmdir "$cgroup" 2>/dev/null || true; }
trap finish EXIT

run() {  # label half|full options...
  local label=$1 speed=$2; shift 2
  tmp=$(mktemp -d)
  pids=()
  start_local_cluster "$build" "$tmp" 2 "$label"
  [ "$speed" = half ] && half_core "${pids[2]}"
  "$build/client/twistctl" --coordinator="127.0.0.1:$grpc" submit --name="$label" \
    --data="$data" --n_layer=4 --n_head=4 --n_embd=128 --block_size=64 \
    --batch_size=12 --lr=1e-3 --warmup_steps=100 --min_lr_ratio=0.1 --beta2=0.99 \
    --weight_decay=0.1 --grad_clip=1.0 --rounds=40 --local_steps=50 --eval_every=10 \
    --eval_batches=8 --checkpoint_every=-1 --min_workers=2 --seed=3 "$@" --watch >/dev/null
  local loss
  loss=$("$build/bench/learning_bench" score --model="$tmp/state/jobs/1/model.safetensors" \
    --data="$data" --batches=200 --batch_size=12)
  python3 - "$http" "$label" "$speed" "$loss" <<'PY'
import json, statistics, sys, urllib.request
http, label, speed, loss = sys.argv[1:]
job = json.load(urllib.request.urlopen(f"http://127.0.0.1:{http}/api/v1/jobs/1"))
rounds = [r for r in job["rounds"] if r["round"] >= 2]
per_worker = {}
for r in rounds:
    total = sum(w["parameters"] for w in r["workers"])
    for w in r["workers"]:
        d = per_worker.setdefault(w["worker_name"], {"compute_s": [], "share": [], "steps": []})
        d["compute_s"].append(w["compute_s"])
        d["share"].append(w["parameters"] / total)
        d["steps"].append(int(w["tokens"]) // (12 * 64))
print("JSON " + json.dumps({
    "bench": "unequal_workers", "label": label, "worker_2_speed": speed,
    "quota": job["spec"]["quota"], "quota_in": job["spec"].get("quota_in", "QUOTA_IN_UNITS"),
    "median_round_s": statistics.median(r["duration_s"] for r in rounds),
    "rejected_updates": job["rejected_updates_total"],
    "final_val_loss": float(loss),
    "workers": {name: {"median_compute_s": round(statistics.median(d["compute_s"]), 3),
                       "median_parameter_share": round(statistics.median(d["share"]), 3),
                       "median_local_steps": statistics.median(d["steps"])}
                for name, d in sorted(per_worker.items())},
    "rounds": [{"round": r["round"], "duration_s": r["duration_s"],
                "compute_s": [w["compute_s"] for w in r["workers"]],
                "parameters": [w["parameters"] for w in r["workers"]]} for r in rounds]}), flush=True)
PY
  stop_local_cluster
  pids=()
  tmp=
}

# TWIST_SEEDS="4 5" runs only the half-learned job, at those seeds (its loss
# against the equal-speed seeds' spread, bench/default_recipe.sh's default-2w).
for seed in ${TWIST_SEEDS:-3}; do
  if [ "$seed" = 3 ]; then
    run equal full
    run half-equal half
    run half-learned half --quota=learned
    run half-steps half --quota=learned --quota_in=local_steps
  else
    run "half-learned-seed$seed" half --quota=learned --seed="$seed"
    run "half-steps-seed$seed" half --quota=learned --quota_in=local_steps --seed="$seed"
  fi
done
