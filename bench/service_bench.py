"""Benchmark 5: the service under stress, with real daemons on loopback.

  restart  a coordinator killed with SIGKILL mid-job and started again, with
           3 workers, checkpoint_every 1 and rounds of about a second, on a
           machine kept busy by `stress-ng --cpu 2`: seconds from the
           restart to the end of the first new round (median of 3)
  eval     a job's wall time with evaluation every 5 rounds against
           evaluation only at its end, interleaved repeats (median of 3):
           evaluation runs beside the next round, so the difference should
           be small

Prints a table and "JSON {...}" lines for bench/summarize.py.

  /usr/bin/python3 bench/service_bench.py BUILD_DIR DATA_DIR
"""
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

BUILD, DATA = sys.argv[1], sys.argv[2]
COORDINATOR = os.path.join(BUILD, "coordinator", "twist-coordinator")
WORKER = os.path.join(BUILD, "worker", "twist-worker")
TWISTCTL = os.path.join(BUILD, "client", "twistctl")
# Rounds of about a second on these machines.
MODEL = ["--n_layer=2", "--n_embd=64", "--n_head=4", "--block_size=64",
         "--batch_size=8", "--local_steps=40"]


class Cluster:
    def __init__(self, workers):
        self.dir = tempfile.mkdtemp(prefix="twist_service_bench_")
        self.procs = []
        self.start_coordinator()
        for i in range(workers):
            self.procs.append(subprocess.Popen(
                [WORKER, f"--coordinator=127.0.0.1:{self.grpc}",
                 f"--name=w{i}", "--threads=1", "--device=cpu"],
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, f"w{i}.log"), "w")))

    def start_coordinator(self, ports=None):
        grpc, http = ports or (0, 0)
        log = open(os.path.join(self.dir, "coordinator.log"), "a")
        self.coordinator = subprocess.Popen(
            [COORDINATOR, f"--listen=127.0.0.1:{grpc}",
             f"--http=127.0.0.1:{http}", f"--state_dir={self.dir}/state",
             "--threads=1", "--heartbeat_interval_s=0.25",
             "--heartbeat_timeout_s=2"],
            stdout=subprocess.PIPE, stderr=log, text=True)
        for line in self.coordinator.stdout:
            m = re.search(r"ready grpc_port=(\d+) http_port=(\d+)", line)
            if m:
                self.grpc, self.http = int(m[1]), int(m[2])
                return

    def job(self, job_id):
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.http}/api/v1/jobs/{job_id}",
                    timeout=5) as r:
                return json.load(r)
        except OSError:
            return None

    def submit(self, extra):
        out = subprocess.run(
            [TWISTCTL, f"--coordinator=127.0.0.1:{self.grpc}", "submit",
             f"--data={DATA}"] + MODEL + extra,
            check=True, capture_output=True, text=True).stdout
        return int(re.search(r"submitted job (\d+)", out)[1])

    def wait(self, job_id, done, timeout=600):
        start = time.time()
        while time.time() - start < timeout:
            j = self.job(job_id)
            if j and done(j):
                return j
            time.sleep(0.05)
        raise TimeoutError(f"job {job_id}: {self.job(job_id)}")

    def close(self):
        for p in self.procs + [self.coordinator]:
            p.send_signal(signal.SIGTERM)
        for p in self.procs + [self.coordinator]:
            p.wait()
        shutil.rmtree(self.dir)


def restart_seconds():
    cluster = Cluster(workers=3)
    try:
        job = cluster.submit(["--rounds=200", "--checkpoint_every=1",
                              "--eval_every=50", "--min_workers=3"])
        cluster.wait(job, lambda j: j["round"] >= 5)
        cluster.coordinator.send_signal(signal.SIGKILL)
        cluster.coordinator.wait()
        start = time.time()
        cluster.start_coordinator((cluster.grpc, cluster.http))
        resumed = cluster.wait(job, lambda j: j["state"] == "running" and
                               j.get("notice"))["round"]
        cluster.wait(job, lambda j: j["round"] > resumed)
        return time.time() - start
    finally:
        cluster.close()


def job_seconds(cluster, eval_every):
    job = cluster.submit(["--rounds=20", f"--eval_every={eval_every}",
                          "--min_workers=2", "--checkpoint_every=-1"])
    j = cluster.wait(job, lambda j: j["state"] in ("completed", "failed"))
    assert j["state"] == "completed", j
    return j["finished_at"] - j["started_at"]


def main():
    stress = None
    if shutil.which("stress-ng"):
        stress = subprocess.Popen(["stress-ng", "--cpu", "2", "--quiet"])
    try:
        restarts = [restart_seconds() for _ in range(3)]
    finally:
        if stress:
            stress.send_signal(signal.SIGTERM)
            stress.wait()
    busy = "stress-ng --cpu 2" if stress else "no stress-ng: machine idle"
    print(f"{'restart to next round':24s} {statistics.median(restarts):6.2f} s"
          f"  ({', '.join(f'{t:.2f}' for t in restarts)}; {busy})")
    print("JSON " + json.dumps({
        "bench": "service", "measure": "restart_to_next_round_s",
        "median_s": statistics.median(restarts), "runs_s": restarts,
        "load": busy}))

    cluster = Cluster(workers=2)
    try:
        with_eval, without = [], []
        for _ in range(3):
            with_eval.append(job_seconds(cluster, 5))
            without.append(job_seconds(cluster, 20))
    finally:
        cluster.close()
    ratio = statistics.median(with_eval) / statistics.median(without)
    print(f"{'job with eval every 5':24s} {statistics.median(with_eval):6.2f} s"
          f"  against {statistics.median(without):.2f} s without:"
          f" {100 * (ratio - 1):+.1f}%")
    print("JSON " + json.dumps({
        "bench": "service", "measure": "evaluation_overhead",
        "with_eval_s": with_eval, "without_eval_s": without,
        "ratio": ratio}))


if __name__ == "__main__":
    main()
