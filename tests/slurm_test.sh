#!/usr/bin/env bash
# Runs deploy/slurm/twist.sbatch on a real single-node Slurm cluster started
# here: munged with a temporary key, slurmctld and slurmd in the foreground
# with a generated slurm.conf (proctrack/linuxproc, task/none), all in a
# temporary folder and stopped by their process ids at the end.
#
#   tests/slurm_test.sh BIN_DIR SOURCE_DIR
# Exits 77 (skipped) only where Slurm or root is missing.
set -euo pipefail
bin=$(readlink -f "$1"); src=$(readlink -f "$2")
for tool in slurmctld slurmd munged sbatch sinfo scontrol; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed (deploy/install-deps.sh installs slurm-wlm and munge)"; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "SKIP: starting slurmd needs root"; exit 77; }
# slurmd (22.05) always initialises its cgroup plugin, even with
# proctrack/linuxproc: without a cgroup file system (some chroots) it cannot
# start.
if ! grep -qs " /sys/fs/cgroup " /proc/mounts; then
  echo "SKIP: no cgroup file system at /sys/fs/cgroup, which slurmd needs"; exit 77
fi

tmp=$(mktemp -d /tmp/twist-slurm.XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${keep:-0}" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
keep=1

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# munge, with a key of its own.
mkdir -p "$tmp/munge"; chmod 700 "$tmp/munge"
dd if=/dev/urandom of="$tmp/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$tmp/munge/munge.key"
munged --force --foreground --key-file="$tmp/munge/munge.key" --socket="$tmp/munge/munge.socket" \
  --pid-file="$tmp/munge/munged.pid" --log-file="$tmp/munge/munged.log" \
  --seed-file="$tmp/munge/munge.seed" &
pids+=($!)

host=$(hostname -s)
cpus=$(nproc)
mkdir -p "$tmp/state" "$tmp/spool" "$tmp/work"
cat >"$tmp/slurm.conf" <<CONF
ClusterName=twisttest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
AuthType=auth/munge
AuthInfo=socket=$tmp/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
export SLURM_CONF="$tmp/slurm.conf"
for _ in $(seq 1 50); do [ -S "$tmp/munge/munge.socket" ] && break; sleep 0.1; done

slurmctld -D -i -f "$SLURM_CONF" >"$tmp/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" -N "$host" >"$tmp/slurmd.out" 2>&1 &
pids+=($!)
for i in $(seq 1 100); do
  state=$(sinfo -h -N -o %T 2>/dev/null | head -n 1 || true)
  [ "$state" = idle ] && break
  [ "$i" = 100 ] && { echo "slurm did not come up (node state: '$state')"; tail -n 5 "$tmp"/slurm*.log; exit 1; }
  sleep 0.2
done
echo "slurm is up: $(sinfo -h -o '%P %D %T %C')"

# A small dataset, then the job script as a user would submit it.
python3 -c 'import random; random.seed(3); w="the a cat dog sees runs and with big small red".split(); print("\n".join(" ".join(random.choice(w) for _ in range(12)) + " ." for _ in range(4000)))' >"$tmp/corpus.txt"
"$bin/twistctl" prepare --input="$tmp/corpus.txt" --output="$tmp/data" >/dev/null
start=$(date +%s)
(cd "$tmp/work" &&
  TWIST_BIN_DIR=$bin TWIST_DATA=$tmp/data TWIST_SOURCE_DIR=$src TWIST_PORT=$(free_port) \
  TWIST_SUBMIT_ARGS="--n_layer=1 --n_embd=32 --n_head=2 --block_size=32 --batch_size=4 --rounds=4 --local_steps=5" \
  sbatch --wait --ntasks=2 --cpus-per-task=1 --output="$tmp/work/job.out" "$src/deploy/slurm/twist.sbatch") ||
  { echo "sbatch failed:"; cat "$tmp/work/job.out"; tail -20 "$tmp"/work/twist-*/coordinator.log 2>/dev/null; exit 1; }
cat "$tmp/work/job.out"
grep -q "completed" "$tmp/work/job.out" || { echo "the job did not complete"; exit 1; }
grep -q "model in" "$tmp/work/job.out" || { echo "no model exported"; exit 1; }
echo "slurm test: job finished in $(( $(date +%s) - start )) s"
keep=0
