"""Watches job 1 of a coordinator until it ends and prints one "JSON {...}"
line per round: the round's record (durations, bytes, merge and evaluation
seconds) and the peak resident memory of each process during it.

Each process's peak (VmHWM) is read and reset (writing 5 to
/proc/PID/clear_refs) whenever a round's record appears, so a round's figure
is the peak since the previous record: what the process held at once while
the round was dealt, trained, merged and evaluated. Round 0 covers the job's
set-up and its first evaluation. `idle` lines give each process's resident
memory before the job was submitted (what the binaries and libraries take).
At the end, a `gpt2_small_breakdown` line splits the coordinator's peak into
what it is known to hold: the process before the job, the model, the round's
tensors (one pool: the slots' assignments, whose memory then receives the
updates, so the larger of all assignments and all updates), the merge's sums
(one tile of a tensor per merging thread: 128 KB), the outer step's velocity
(with momentum: one bfloat16 per parameter) and the rest (gRPC buffers, evaluation, the allocator's free blocks).

  python3 bench/round_memory.py HTTP_PORT LABEL LOCAL_STEPS COORDINATOR_PID WORKER_PID...
"""
import json
import sys
import time
import urllib.request

# How long the job may take to appear before the submission is taken to have
# failed.
SUBMIT_WAIT_S = 120


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} for process {pid}")


def take_peak(pid):
    peak = status(pid, "VmHWM")
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # the peak starts again from the current resident size
    return peak


def breakdown(label, job, last, idle, peak):
    """Where the coordinator's peak goes, in bytes."""
    ws = last["workers"]
    sent = [w["bytes_sent"] for w in ws]
    # local_sgd slots share one extraction.
    assignments = max(sent) if job["mode"] == "local_sgd" else sum(sent)
    updates = sum(w["bytes_received"] for w in ws)
    parts = {"idle": idle, "model": 4 * job["parameters"],
             "round_tensors": max(assignments, updates),
             # One tile of scratch (common/ist/slice_kernels.h,
             # kMergeTileBytes) on each of at most 2 merging threads.
             "merge_sums": 2 * 128 * 1024,
             # The outer step's momentum: one bfloat16 velocity per parameter.
             "velocity": 2 * job["parameters"] if job["spec"].get("outer_momentum", 0) > 0 else 0}
    parts["rest"] = peak - sum(parts.values())
    return {"bench": "gpt2_small_breakdown", "label": label,
            "coordinator_peak_bytes": peak, **parts}


def main():
    http, label, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    coordinator, workers = int(sys.argv[4]), [int(p) for p in sys.argv[5:]]
    url = f"http://127.0.0.1:{http}/api/v1/jobs/1"
    print("JSON " + json.dumps({
        "bench": "gpt2_small_idle", "label": label,
        "coordinator_rss_bytes": status(coordinator, "VmRSS"),
        "worker_rss_bytes": max(status(w, "VmRSS") for w in workers)}), flush=True)
    idle = status(coordinator, "VmRSS")
    seen = -1
    peak = 0
    last = None
    started = time.monotonic()
    while True:
        try:
            job = json.load(urllib.request.urlopen(url))
        except urllib.error.HTTPError:
            if time.monotonic() - started > SUBMIT_WAIT_S:
                sys.exit(f"{label}: no job 1 after {SUBMIT_WAIT_S} s: the submission "
                         "failed (twistctl's error above)")
            time.sleep(0.2)  # not submitted yet
            continue
        new = [r for r in job["rounds"] if r["round"] > seen]
        if new:
            coordinator_peak = take_peak(coordinator)
            worker_peaks = [take_peak(w) for w in workers]
            r = new[-1]  # several at once only when a poll came late
            seen = r["round"]
            row = {"bench": "gpt2_small", "label": label, "round": r["round"],
                   "parameters": job["parameters"], "model_bytes_f32": 4 * job["parameters"],
                   "coordinator_peak_bytes": coordinator_peak,
                   "worker_peak_bytes": max(worker_peaks),
                   "eval_s": r.get("eval_s", 0.0)}
            ws = r["workers"]
            if r["round"] > 0 and ws:
                slowest = max(ws, key=lambda w: w["seconds"])
                row.update({
                    "duration_s": r["duration_s"], "slowest_worker_s": slowest["seconds"],
                    "coordinator_overhead_s": r["duration_s"] - slowest["seconds"],
                    "merge_s": r["merge_s"], "step_s": slowest["compute_s"] / steps,
                    "worker_parameters": max(w["parameters"] for w in ws),
                    "bytes_to_worker": max(w["bytes_sent"] for w in ws),
                    "bytes_from_worker": max(w["bytes_received"] for w in ws)})
            print("JSON " + json.dumps(row), flush=True)
            peak = max(peak, coordinator_peak)
            if r["round"] > 0 and ws:
                last = r
        if job["state"] in ("completed", "failed", "cancelled"):
            if job["state"] != "completed":
                sys.exit(f"{label}: job {job['state']}: {job.get('reason', '')}")
            print("JSON " + json.dumps(breakdown(label, job, last, idle, peak)), flush=True)
            return
        time.sleep(0.2)


if __name__ == "__main__":
    main()
